import { cidrContains, cidrContainsIp, cidrLast, formatCidr, InvalidCidrError, parseCidr, parseIp, type Cidr, type IpAddr, type IpFamily } from "../lib/cidr.js";
import { compareText } from "../lib/order.js";

/** What the agent reads from one NodeCIDR (the controller mirrors node IPs into it). */
export interface ObservedNodeCidr {
  name: string;
  nodeName: string;
  cidr: string;
  nodeIPs: string[];
  phase?: string;
}

/** A route to another node's pod CIDR via its same-family node IP; all its node IPs for the overlay underlay. */
export interface DesiredRoute { dst: string; via: string; nodeName: string; nodeIPs: string[] }

/** A record the agent refuses to act on, with the reason it tells the user. */
export interface RejectedRecord { name: string; nodeName: string; reason: "InvalidNodeIP" | "NoNodeIPForFamily" | "OverlappingCIDR" | "InvalidCIDR"; message: string }

export interface DesiredNodeState {
  /** This node's pod CIDRs, IPv4 first (what the CNI config hands out). */
  ownCidrs: string[];
  /**
   * The cluster pod network for "pod traffic stays un-NATed inside it": the pools' ranges plus any live CIDR
   * outside them. It does not change when a node joins, so nodes never masquerade traffic to a new node's pods
   * while their nft set catches up, and a join costs no nft run on every node.
   */
  podNetwork: string[];
  routes: DesiredRoute[];
  rejected: RejectedRecord[];
  families: IpFamily[];
}

const live = (r: ObservedNodeCidr) => r.phase === "Allocated";

/**
 * Pure: all NodeCIDRs + this node's name → what the node should look like. Bad records are rejected
 * one by one with a reason; they never block the routes to other, healthy nodes.
 */
export function desiredNodeState(records: ObservedNodeCidr[], self: string, poolRanges: string[] = []): DesiredNodeState {
  const rejected: RejectedRecord[] = [];
  const parsed: Array<{ r: ObservedNodeCidr; c: Cidr }> = [];
  for (const r of records.filter(live)) {
    try {
      parsed.push({ r, c: parseCidr(r.cidr) });
    } catch (err) {
      rejected.push({ name: r.name, nodeName: r.nodeName, reason: "InvalidCIDR", message: err instanceof InvalidCidrError ? err.message : String(err) });
    }
  }
  const sorted = sortByNetwork(parsed);
  const overlapping = findOverlaps(sorted);
  for (const { r, c } of parsed.filter((p) => overlapping.has(p.r.name))) {
    rejected.push({ name: r.name, nodeName: r.nodeName, reason: "OverlappingCIDR", message: `${formatCidr(c)} of node ${r.nodeName} overlaps ${overlapping.get(r.name)}; routes to both are withheld` });
  }
  const usable = parsed.filter((p) => !overlapping.has(p.r.name));
  const podRanges = rangeIndex(sorted.filter((p) => !overlapping.has(p.r.name)).map((p) => p.c));
  const routes: DesiredRoute[] = [];
  // A record whose node IPs the controller has not mirrored yet is pending, not wrong: skip it quietly
  // (reporting it would make every agent write a condition and an Event for each joining node).
  for (const { r, c } of usable.filter((p) => p.r.nodeName !== self && p.r.nodeIPs.length > 0)) {
    const via = gatewayFor(r, c, podRanges);
    if ("reason" in via) rejected.push(via);
    else routes.push({ dst: formatCidr(c), via: via.ip, nodeName: r.nodeName, nodeIPs: r.nodeIPs });
  }
  const own = usable.filter((p) => p.r.nodeName === self).sort((a, b) => a.c.family - b.c.family);
  return {
    ownCidrs: own.map((p) => formatCidr(p.c)),
    podNetwork: podNetwork(poolRanges, usable.map((p) => p.c)),
    routes: routes.sort((a, b) => compareText(a.dst, b.dst)),
    rejected,
    families: [...new Set(own.map((p) => p.c.family))].sort(),
  };
}

/** Pool ranges (unparsable ones skipped) plus every node CIDR not inside one of them, canonical and sorted. */
function podNetwork(poolRanges: string[], nodeCidrs: Cidr[]): string[] {
  const ranges = poolRanges.flatMap((text) => { try { return [parseCidr(text)]; } catch { return []; } });
  const outside = nodeCidrs.filter((c) => !ranges.some((r) => cidrContains(r, c)));
  return [...new Set([...ranges, ...outside].map(formatCidr))].sort();
}

const sortByNetwork = <T extends { c: Cidr }>(list: T[]) =>
  [...list].sort((a, b) => a.c.family - b.c.family || (a.c.network < b.c.network ? -1 : a.c.network > b.c.network ? 1 : 0));

/**
 * Usable pod ranges are disjoint (overlaps were withheld), so "which range holds this IP?" is a binary
 * search over ranges sorted by network: O(log n) per node IP instead of a scan of every range.
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

function gatewayFor(r: ObservedNodeCidr, c: Cidr, podRangeOf: (ip: IpAddr) => Cidr | undefined): { ip: string } | RejectedRecord {
  const reject = (reason: RejectedRecord["reason"], message: string): RejectedRecord => ({ name: r.name, nodeName: r.nodeName, reason, message });
  let sameFamily: string | undefined;
  for (const text of r.nodeIPs) {
    let ip;
    try { ip = parseIp(text); } catch { return reject("InvalidNodeIP", `node ${r.nodeName} has an unparsable node IP "${text}"`); }
    if (ip.family !== c.family) continue;
    if (isLoopbackOrUnspecified(ip.value, ip.family)) return reject("InvalidNodeIP", `node ${r.nodeName} has node IP ${text}, which is loopback or unspecified`);
    const inside = podRangeOf(ip);
    if (inside) return reject("InvalidNodeIP", `node ${r.nodeName} has node IP ${text} inside pod CIDR ${formatCidr(inside)}; a route through it would loop`);
    sameFamily ??= text;
  }
  return sameFamily ? { ip: sameFamily } : reject("NoNodeIPForFamily", `node ${r.nodeName} has no IPv${c.family} node IP to route ${formatCidr(c)} through`);
}

function isLoopbackOrUnspecified(value: bigint, family: IpFamily): boolean {
  if (family === 4) return value >> 24n === 127n || value === 0n;
  return value === 1n || value === 0n;
}

/**
 * name → a CIDR it collides with, for every record overlapping another. Sweep over records sorted by network:
 * a range overlaps some earlier range exactly when it starts before the furthest end seen so far.
 */
function findOverlaps(sorted: Array<{ r: ObservedNodeCidr; c: Cidr }>): Map<string, string> {
  const out = new Map<string, string>();
  let reach: { r: ObservedNodeCidr; c: Cidr } | undefined;
  for (const cur of sorted) {
    if (reach && reach.c.family === cur.c.family && cur.c.network <= cidrLast(reach.c)) {
      out.set(reach.r.name, formatCidr(cur.c));
      out.set(cur.r.name, formatCidr(reach.c));
    }
    if (!reach || reach.c.family !== cur.c.family || cidrLast(cur.c) > cidrLast(reach.c)) reach = cur;
  }
  return out;
}
