import {
  cidrContains, cidrContainsIp, cidrLast, formatCidr, InvalidCidrError, maxNodeCidrPrefix, mergeCidrs, parseCidr, parseIp, specialPurposeOverlap, type Cidr, type IpAddr, type IpFamily,
} from "../lib/cidr.js";
import { compareText } from "../lib/order.js";

/** What the agent reads from one NodeCIDR (the controller mirrors node IPs into it). */
export interface ObservedNodeCidr {
  name: string;
  nodeName: string;
  cidr: string;
  nodeIPs: string[];
  phase?: string;
  /** creationTimestamp in ms, where the record still has it (this node's own records do). */
  created?: number;
}

/**
 * A route to another node's pod CIDR via its same-family node IP; all its node IPs for the overlay underlay.
 * `via` is the first of the CIDR's family; splitRoutes goes through another of that family where only that one
 * is on a local subnet. No `via` when the node has no IP of the CIDR's family (IPv6 pods on an IPv4-only node):
 * only the overlay, which carries both pod families over one underlay, can reach that CIDR.
 */
export interface DesiredRoute { dst: string; via?: string; nodeName: string; nodeIPs: string[] }

/** A record the agent refuses to act on, with the reason it tells the user. */
export interface RejectedRecord { name: string; nodeName: string; reason: "InvalidNodeIP" | "OverlappingCIDR" | "InvalidCIDR"; message: string }

export interface DesiredNodeState {
  /** This node's pod CIDRs, one per family, IPv4 first (what the CNI config hands out). */
  ownCidrs: string[];
  /** Further live CIDRs of a family this node already has one of: not handed out (see desiredNodeState). */
  unusedOwnCidrs: string[];
  /**
   * The cluster pod network for "pod traffic stays un-NATed inside it": the pools' ranges plus any live CIDR
   * outside them, merged into the fewest CIDRs. It does not change when a node joins, so nodes never masquerade
   * traffic to a new node's pods while their nft set catches up, and a join costs no nft run on every node.
   */
  podNetwork: string[];
  routes: DesiredRoute[];
  /**
   * Other nodes' live CIDRs, routed or not (node IPs not mirrored yet, or refused): who holds a range. Listed
   * only while this node has no live record of its own, for the conflist it may still have (see withoutPodCidr).
   */
  othersLive: Array<{ dst: string; nodeName: string; earlierNode?: boolean }>;
  rejected: RejectedRecord[];
  /** This node's own live records that are rejected: why it has no pod CIDR though the controller gave it one. */
  ownWithheld: RejectedRecord[];
  families: IpFamily[];
}

const live = (r: ObservedNodeCidr) => r.phase === "Allocated";

/**
 * Pure: all NodeCIDRs + this node's name → what the node should look like. Bad records are rejected
 * one by one with a reason; they never block the routes to other, healthy nodes.
 */
export function desiredNodeState(records: ObservedNodeCidr[], self: string, poolRanges: string[] = []): DesiredNodeState {
  const rejected: RejectedRecord[] = [];
  const parsed: Parsed[] = [];
  for (const r of records) {
    if (!live(r)) continue;
    const facts = factsOf(r);
    if ("invalid" in facts) rejected.push({ name: r.name, nodeName: r.nodeName, reason: "InvalidCIDR", message: facts.invalid });
    else parsed.push(facts);
  }
  const sorted = sortByNetwork(parsed);
  const overlapping = findOverlaps(sorted);
  for (const { r, dst } of parsed.filter((p) => overlapping.has(p.r.name))) {
    rejected.push({ name: r.name, nodeName: r.nodeName, reason: "OverlappingCIDR", message: `${dst} of node ${r.nodeName} overlaps ${overlapping.get(r.name)}; routes to both are withheld` });
  }
  // In network order: the range index needs it, and routes come out sorted by prefix without another sort.
  const usable = overlapping.size ? sorted.filter((p) => !overlapping.has(p.r.name)) : sorted;
  const podRanges = rangeIndex(usable.map((p) => p.c));
  const routes: DesiredRoute[] = [];
  for (const p of usable) {
    // A record whose node IPs the controller has not mirrored yet is pending, not wrong: skip it quietly
    // (reporting it would make every agent write a condition and an Event for each joining node).
    if (p.r.nodeName === self || p.r.nodeIPs.length === 0) continue;
    const via = gatewayFor(p, podRanges);
    if ("reason" in via) rejected.push(via);
    else routes.push(routeOf(p, via.ip));
  }
  // One CIDR per family: host-local gives pods a default route for each range, and two of one family make every
  // ADD fail ("file exists"). The oldest record's, then the first by name: the range pods already hold, as the
  // controller keeps the one the Node's podCIDRs name (quarantining a later second one); not the informer's
  // order, which a restart's list would change under running pods.
  const ownParsed = parsed.filter((p) => p.r.nodeName === self);
  const ownAll = ownParsed.filter((p) => !overlapping.has(p.r.name))
    .sort((a, b) => a.c.family - b.c.family || (a.r.created ?? Infinity) - (b.r.created ?? Infinity) || compareText(a.r.name, b.r.name));
  const own = ownAll.filter((p, i) => i === 0 || ownAll[i - 1]!.c.family !== p.c.family);
  return {
    ownCidrs: own.map((p) => p.dst),
    unusedOwnCidrs: ownAll.filter((p) => !own.includes(p)).map((p) => p.dst),
    podNetwork: podNetwork(poolRanges, usable.map((p) => p.c)),
    routes,
    // Only then: a node with its own record pays nothing for it at thousands of records.
    othersLive: ownParsed.length ? [] : sorted.flatMap((p) => (p.r.nodeName === self ? [] : [{ dst: p.dst, nodeName: p.r.nodeName }])),
    rejected,
    ownWithheld: rejected.filter((x) => x.nodeName === self),
    families: [...new Set(own.map((p) => p.c.family))].sort(),
  };
}

/** A record the controller allocated but the agent refuses (hand-made overlap, bad CIDR) is not "none yet". */
export function noPodCidrReason(state: DesiredNodeState): string {
  if (state.ownWithheld.length === 0) return "no NodeCIDR is allocated to this node yet";
  return `this node's NodeCIDRs are not used: ${state.ownWithheld.map((x) => `${x.name}: ${x.reason}: ${x.message}`).join("; ")}`;
}

/** A node IP as one record's route sees it, before the other records are considered. */
type NodeIpFact = { text: string; unparsable: true } | { text: string; ip: IpAddr; loopback: boolean };
/** What a record says on its own: its parsed CIDR and node IPs. */
interface Parsed {
  r: ObservedNodeCidr; c: Cidr; dst: string; ips: NodeIpFact[]; route?: DesiredRoute;
  /** The CIDR's last address, and a number that orders CIDRs by family and network (ties: compare `c`). */
  last: bigint; order: number;
}

/**
 * Records are immutable values (a changed NodeCIDR arrives as a new object), so what each says on its own is
 * worked out once per record object. Each pass then only relates records to each other: at thousands of
 * records, the per-record cache lookups of every pass cost more than the planning itself.
 */
const recordFacts = new WeakMap<ObservedNodeCidr, Parsed | { invalid: string }>();
function factsOf(r: ObservedNodeCidr): Parsed | { invalid: string } {
  let facts = recordFacts.get(r);
  if (!facts) {
    try {
      const c = parseCidr(r.cidr);
      const unroutable = unroutableRange(c);
      if (unroutable) throw new InvalidCidrError(`${r.cidr} of node ${r.nodeName} ${unroutable}; no route is installed for it`);
      // Every field from the start (route too), so all facts share one shape in V8.
      facts = { r, c, dst: formatCidr(c), ips: r.nodeIPs.map(nodeIpFact), route: undefined, last: cidrLast(c), order: networkOrder(c) };
    } catch (err) {
      facts = { invalid: err instanceof InvalidCidrError ? err.message : String(err) };
    }
    recordFacts.set(r, facts);
  }
  return facts;
}

/**
 * The API server refuses these (the NodeCIDR schema), but a record written before that rule, or under an edited
 * CRD, must still not make every node route a special range (the cloud's metadata address) to one node.
 */
function unroutableRange(c: Cidr): string | undefined {
  const special = specialPurposeOverlap(c);
  if (special) return `overlaps the special-purpose range ${special}`;
  if (c.prefix > maxNodeCidrPrefix(c.family)) return `is narrower than a node's pod CIDR can be (/${maxNodeCidrPrefix(c.family)})`;
  return undefined;
}

function nodeIpFact(text: string): NodeIpFact {
  try {
    const ip = parseIp(text);
    return { text, ip, loopback: isLoopbackOrUnspecified(ip.value, ip.family) };
  } catch { return { text, unparsable: true }; }
}

/** The same route object while the record and its gateway stay the same: less garbage on every pass. */
function routeOf(p: Parsed, via: string | undefined): DesiredRoute {
  if (!p.route || p.route.via !== via) p.route = { dst: p.dst, ...(via === undefined ? {} : { via }), nodeName: p.r.nodeName, nodeIPs: p.r.nodeIPs };
  return p.route;
}

/**
 * Pool ranges (unparsable ones skipped) plus every node CIDR not inside one of them, merged into the fewest
 * CIDRs (mergeCidrs' order). Merged because each becomes two rules that every forwarded packet walks, where the
 * host's FORWARD chain drops (forward-accept.ts), and pools grown range by range may hold thousands of adjacent
 * ones. A node CIDR is looked up in the merged pools by binary search, not against every range.
 */
function podNetwork(poolRanges: string[], nodeCidrs: Cidr[]): string[] {
  const pools = mergedPoolRanges(poolRanges);
  const outside = nodeCidrs.filter((c) => { const r = pools.holding({ family: c.family, value: c.network }); return !r || !cidrContains(r, c); });
  return outside.length ? mergeCidrs([...pools.cidrs, ...outside]).map(formatCidr) : [...pools.texts];
}

/** The pools' ranges change rarely: merged again only when they do, not on every node join. */
let lastPools: { ranges: string[]; cidrs: Cidr[]; texts: string[]; holding: (ip: IpAddr) => Cidr | undefined } | undefined;
function mergedPoolRanges(ranges: string[]): NonNullable<typeof lastPools> {
  if (lastPools && lastPools.ranges.length === ranges.length && lastPools.ranges.every((r, i) => r === ranges[i])) return lastPools;
  const cidrs = mergeCidrs(ranges.flatMap((text) => { try { return [parseCidr(text)]; } catch { return []; } }));
  lastPools = { ranges: [...ranges], cidrs, texts: cidrs.map(formatCidr), holding: rangeIndex(cidrs) };
  return lastPools;
}

// IPv4 networks exactly, IPv6 ones by their top 53 bits above every IPv4 one: sorting thousands of records by
// number on each pass, and by BigInt only where two IPv6 networks share those bits.
const networkOrder = (c: Cidr) => (c.family === 4 ? Number(c.network) : 2 ** 32 + Number(c.network >> 75n));
const sortByNetwork = (list: Parsed[]) =>
  [...list].sort((a, b) => a.order - b.order || (a.c.network < b.c.network ? -1 : a.c.network > b.c.network ? 1 : 0));

/**
 * Usable pod ranges are disjoint (overlaps were withheld), and so are merged pool ranges, so "which range holds
 * this IP?" is a binary search over ranges sorted by network: O(log n) per lookup instead of a scan of every range.
 */
function rangeIndex(sortedRanges: Cidr[]): (ip: IpAddr) => Cidr | undefined {
  const byFamily = new Map<number, Cidr[]>();
  for (const c of sortedRanges) {
    const list = byFamily.get(c.family);
    if (list) list.push(c);
    else byFamily.set(c.family, [c]);
  }
  return (ip) => {
    const list = byFamily.get(ip.family) ?? [];
    let lo = 0;
    let hi = list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.network <= ip.value) lo = mid + 1;
      else hi = mid - 1;
    }
    const candidate = list[hi];
    return candidate && cidrContainsIp(candidate, ip) ? candidate : undefined;
  };
}

const rejection = (r: ObservedNodeCidr, reason: RejectedRecord["reason"], message: string): RejectedRecord => ({ name: r.name, nodeName: r.nodeName, reason, message });

/**
 * The node IP a record's route goes through: its first IP of the CIDR's family, or none (overlay only) when it
 * has IPs of the other family alone. Those then become the tunnel's underlay, so they are checked too. Every IP
 * of the family is checked: a direct route may take a later one (the first one on a local subnet).
 */
function gatewayFor({ r, c, ips }: Parsed, podRangeOf: (ip: IpAddr) => Cidr | undefined): { ip?: string } | RejectedRecord {
  let sameFamily: string | undefined;
  const usable = (fact: Exclude<NodeIpFact, { unparsable: true }>): RejectedRecord | undefined => {
    if (fact.loopback) return rejection(r, "InvalidNodeIP", `node ${r.nodeName} has node IP ${fact.text}, which is loopback or unspecified`);
    const inside = podRangeOf(fact.ip);
    return inside ? rejection(r, "InvalidNodeIP", `node ${r.nodeName} has node IP ${fact.text} inside pod CIDR ${formatCidr(inside)}; a route through it would loop`) : undefined;
  };
  for (const fact of ips) {
    if ("unparsable" in fact) return rejection(r, "InvalidNodeIP", `node ${r.nodeName} has an unparsable node IP "${fact.text}"`);
    if (fact.ip.family !== c.family) continue;
    const bad = usable(fact);
    if (bad) return bad;
    sameFamily ??= fact.text;
  }
  if (sameFamily) return { ip: sameFamily };
  for (const fact of ips) {
    const bad = "unparsable" in fact ? undefined : usable(fact);
    if (bad) return bad;
  }
  return {};
}

function isLoopbackOrUnspecified(value: bigint, family: IpFamily): boolean {
  if (family === 4) return value >> 24n === 127n || value === 0n;
  return value === 1n || value === 0n;
}

/**
 * name → a CIDR it collides with, for every record overlapping another. Sweep over records sorted by network:
 * a range overlaps some earlier range exactly when it starts before the furthest end seen so far.
 */
function findOverlaps(sorted: Parsed[]): Map<string, string> {
  const out = new Map<string, string>();
  let reach: Parsed | undefined;
  for (const cur of sorted) {
    if (reach && reach.c.family === cur.c.family && cur.c.network <= reach.last) {
      out.set(reach.r.name, cur.dst);
      out.set(cur.r.name, reach.dst);
    }
    if (!reach || reach.c.family !== cur.c.family || cur.last > reach.last) reach = cur;
  }
  return out;
}
