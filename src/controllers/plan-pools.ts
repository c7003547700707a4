import { CidrSet } from "../lib/cidr-set.js";
import { cidrContainsIp, cidrsOverlap, formatCidr, InvalidCidrError, maxNodeCidrPrefix, parseCidr, specialPurposeOverlap, type Cidr, type IpAddr, type IpFamily } from "../lib/cidr.js";
import type { ConditionInput } from "../lib/conditions.js";
import type { Held, PlannerNode, PlannerRecord } from "./plan.js";
import { compareText } from "../lib/order.js";

export interface PlannerPool {
  name: string;
  nodeSelector: Record<string, string>;
  v4?: { cidrs: string[]; nodePrefix: number };
  v6?: { cidrs: string[]; nodePrefix: number };
}

/** One family of one pool after validation: only valid ranges get a CidrSet. */
export interface PoolFamilyState {
  prefix: number;
  sets: CidrSet[];
  problems: string[];
  exhaustedNodes: number;
}

export interface PoolState {
  pool: PlannerPool;
  families: Partial<Record<IpFamily, PoolFamilyState>>;
  /** The most pods any Node it selects admits, and that Node. */
  maxPods?: { pods: number; node: string };
}

/** Pure: per pool, the largest pod capacity among the Nodes it selects (for its PodAddresses condition). */
export function notePodCapacity(nodes: PlannerNode[], poolOf: Map<string, PoolState | undefined>): void {
  for (const node of nodes) {
    const state = poolOf.get(node.name);
    if (state && node.maxPods !== undefined && node.maxPods > (state.maxPods?.pods ?? -1)) state.maxPods = { pods: node.maxPods, node: node.name };
  }
}

/**
 * Pod addresses in one node slice: host-local hands out all but the network address, the bridge's gateway and,
 * for IPv4, the broadcast address. A BigInt: an IPv6 /64's 2^64 − 2 is past a float's exact integers.
 */
const podAddresses = (family: IpFamily, prefix: number) => (1n << BigInt((family === 4 ? 32 : 128) - prefix)) - (family === 4 ? 3n : 2n);

/**
 * Whether each node's slices hold as many addresses as its Nodes admit pods (kubelet's --max-pods, 110 by
 * default: a /26 holds 61). Past that, pods on a full node fail with "no IP addresses available".
 */
function podAddressesCondition(state: PoolState): ConditionInput {
  const fits = ([4, 6] as const).flatMap((f) => {
    const fam = state.families[f];
    return fam?.sets.length ? [{ family: f, pods: podAddresses(f, fam.prefix), prefix: fam.prefix }] : [];
  });
  const smallest = fits.sort((a, b) => (a.pods < b.pods ? -1 : a.pods > b.pods ? 1 : 0))[0];
  const max = state.maxPods;
  // Nothing to size: Valid=False names the ranges; whether Nodes report their capacity does not matter yet.
  if (!smallest) return { type: "PodAddresses", status: "Unknown", reason: "NoValidRange", message: "no valid range to size: fix what the Valid condition names" };
  if (!max) return { type: "PodAddresses", status: "True", reason: "NoNodeCapacityKnown", message: "no selected Node reports its pod capacity yet" };
  // bigint against number: compared exactly.
  if (smallest.pods >= max.pods) {
    return { type: "PodAddresses", status: "True", reason: "SliceFitsMaxPods", message: `each node's /${smallest.prefix} holds ${smallest.pods} pod addresses; its Nodes admit at most ${max.pods} pods` };
  }
  return { type: "PodAddresses", status: "False", reason: "SliceSmallerThanMaxPods",
    message: `each node's IPv${smallest.family} /${smallest.prefix} holds ${smallest.pods} pod addresses, but node ${max.node} admits ${max.pods} pods (kubelet --max-pods): pods past ${smallest.pods} on a node fail with "no IP addresses available"; use a shorter nodeMaskSize or lower --max-pods` };
}

export interface PoolStatusReport {
  pool: string;
  usage: Partial<Record<IpFamily, { size: bigint; allocated: bigint; free: bigint }>>;
  conditions: ConditionInput[];
}

interface Candidate { pool: string; family: IpFamily; cidr: Cidr; prefix: number }

/** A CIDR a pool has handed out (an Allocated or Released record): the range that holds it is in use. */
export interface PoolClaim { pool: string; cidr: string }

/**
 * Pure: validate every pool range (syntax, host bits, slice larger than range, overlap with another pool's
 * range or the service CIDRs). A bad range is reported and never allocated from; it never throws.
 *
 * Of two pools' overlapping ranges, one that already holds its pool's allocations keeps serving when the other
 * holds none (a pool added, or a range appended, over one in use): otherwise a new pool overlapping the
 * default's range would stop every new node of the cluster. When both or neither are in use, both are refused.
 */
export function buildPoolStates(pools: PlannerPool[], serviceCIDRs: string[], claims: PoolClaim[] = []): Map<string, PoolState> {
  const services = serviceCIDRs.flatMap((s) => { try { return [parseCidr(s)]; } catch { return []; } });
  const names = new Set(pools.map((p) => p.name));
  const overlapsRange = (k: PoolClaim, c: Candidate) => { try { return cidrsOverlap(parseCidr(k.cidr), c.cidr); } catch { return false; } };
  // How much a range is in use: 2 with its own pool's CIDRs (allocated, or released in cooldown), 1 with only
  // those of a pool that is gone (the planner re-homes the allocated ones to it), 0 with none. Of two overlapping
  // ranges, the one in more use keeps serving.
  const use = (c: Candidate) => (claims.some((k) => k.pool === c.pool && overlapsRange(k, c)) ? 2
    : claims.some((k) => !names.has(k.pool) && overlapsRange(k, c)) ? 1 : 0);
  const states = new Map<string, PoolState>();
  const candidates: Candidate[] = [];
  for (const pool of [...pools].sort((a, b) => compareText(a.name, b.name))) {
    const state: PoolState = { pool, families: {} };
    states.set(pool.name, state);
    for (const family of [4, 6] as const) {
      const spec = family === 4 ? pool.v4 : pool.v6;
      if (!spec) continue;
      const fam: PoolFamilyState = { prefix: spec.nodePrefix, sets: [], problems: [], exhaustedNodes: 0 };
      state.families[family] = fam;
      for (const text of spec.cidrs) {
        const parsed = parseRange(text, family, spec.nodePrefix);
        if (typeof parsed === "string") fam.problems.push(parsed);
        else candidates.push({ pool: pool.name, family, cidr: parsed, prefix: spec.nodePrefix });
      }
    }
  }
  const rejected = new Set<Candidate>();
  for (const [i, a] of candidates.entries()) {
    for (const b of candidates.slice(i + 1)) {
      if (a.family !== b.family || !cidrsOverlap(a.cidr, b.cidr)) continue;
      const keepA = a.pool !== b.pool && use(a) > use(b);
      const keepB = a.pool !== b.pool && use(b) > use(a);
      const refuse = (loser: Candidate, winner: Candidate, winnerKept: boolean) => states.get(loser.pool)!.families[loser.family]!.problems.push(
        `${formatCidr(loser.cidr)} overlaps ${formatCidr(winner.cidr)} of pool ${winner.pool}${winnerKept ? ", which has nodes allocated from it" : ""}`);
      if (!keepA) { rejected.add(a); refuse(a, b, keepB); }
      if (!keepB) { rejected.add(b); if (a.pool !== b.pool) refuse(b, a, keepA); } // one report for a pool's own two ranges
    }
    const service = services.find((s) => cidrsOverlap(s, a.cidr));
    if (service) {
      rejected.add(a);
      states.get(a.pool)!.families[a.family]!.problems.push(`${formatCidr(a.cidr)} overlaps the service CIDR ${formatCidr(service)}`);
    }
  }
  for (const c of candidates) if (!rejected.has(c)) states.get(c.pool)!.families[c.family]!.sets.push(new CidrSet(c.cidr, c.prefix));
  return states;
}

function parseRange(text: string, family: IpFamily, prefix: number): Cidr | string {
  let cidr: Cidr;
  try { cidr = parseCidr(text); } catch (err) { return err instanceof InvalidCidrError ? err.message : `${text}: ${String(err)}`; }
  if (cidr.family !== family) return `${text} is not IPv${family}`;
  // Not past /30 (/126), as the pool schema says now: a pool written before that rule would hand out slices with no
  // address for pods, which the NodeCIDR schema refuses, and every refused create is planned again a second later.
  const max = maxNodeCidrPrefix(family);
  if (prefix < cidr.prefix || prefix > max) return `node mask /${prefix} does not fit in ${text} (must be /${cidr.prefix}–/${max}: a node's bridge takes one address and its pods need more)`;
  const special = specialPurposeOverlap(cidr);
  if (special) return `${text} overlaps ${special}, which pods cannot use`;
  return cidr;
}

/** Pools whose selector matches; specific selectors beat the catch-all, ties by name. */
export function selectPool(labels: Record<string, string>, states: Map<string, PoolState>): PoolState | undefined {
  let best: PoolState | undefined;
  for (const state of states.values()) {
    const selector = Object.entries(state.pool.nodeSelector);
    if (!selector.every(([k, v]) => labels[k] === v)) continue;
    const specific = selector.length > 0;
    const bestSpecific = best ? Object.keys(best.pool.nodeSelector).length > 0 : false;
    if (!best || (specific && !bestSpecific)) best = state; // states are in name order, so the first wins ties
  }
  return best;
}

/** Find which pool family set holds a CIDR of the right size (adoption, record validation). */
export function findSet(states: Iterable<PoolState>, cidr: Cidr): { state: PoolState; set: CidrSet } | undefined {
  for (const state of states) {
    for (const set of state.families[cidr.family]?.sets ?? []) {
      if (set.nodePrefix === cidr.prefix && cidrsOverlap(set.range, cidr)) return { state, set };
    }
  }
  return undefined;
}

/** Any set whose range overlaps the CIDR, whatever the slice size (for quarantined records). */
export function overlappingSets(states: Iterable<PoolState>, cidr: Cidr): CidrSet[] {
  const out: CidrSet[] = [];
  for (const state of states) for (const set of state.families[cidr.family]?.sets ?? []) if (cidrsOverlap(set.range, cidr)) out.push(set);
  return out;
}

/** Keep a CIDR out of circulation (released in cooldown, quarantined): occupy every slice it touches. */
export function hold(states: Map<string, PoolState>, cidr: Cidr, node: string, holderOf: Map<string, string>): void {
  for (const set of overlappingSets(states.values(), cidr)) set.occupyCovering(cidr);
  holderOf.set(formatCidr(cidr), node);
}

/** Take the slice that holds the address out of circulation, in whichever range has it (a node's own IP). */
export function occupySliceHolding(states: Iterable<PoolState>, ip: IpAddr): void {
  for (const state of states) {
    for (const set of state.families[ip.family]?.sets ?? []) {
      if (cidrContainsIp(set.range, ip)) set.occupyCovering({ family: ip.family, network: ip.value, prefix: ip.family === 4 ? 32 : 128 });
    }
  }
}

export function poolStatusReports(states: Map<string, PoolState>): PoolStatusReport[] {
  return [...states.values()].map(({ pool, families }) => {
    const usage: PoolStatusReport["usage"] = {};
    const problems: string[] = [];
    let exhausted = 0;
    let waitingOnInvalid = false;
    for (const family of [4, 6] as const) {
      const fam = families[family];
      if (!fam) continue;
      waitingOnInvalid ||= fam.exhaustedNodes > 0 && fam.sets.length === 0;
      const size = fam.sets.reduce((n, s) => n + s.size, 0n);
      const allocated = fam.sets.reduce((n, s) => n + s.used, 0n);
      usage[family] = { size, allocated, free: size - allocated };
      problems.push(...fam.problems);
      exhausted += fam.exhaustedNodes;
    }
    const conditions: ConditionInput[] = [
      problems.length
        ? { type: "Valid", status: "False", reason: "InvalidRanges", message: problems.join("; ") }
        : { type: "Valid", status: "True", reason: "RangesValid", message: "all ranges usable" },
      exhausted
        ? { type: "Exhausted", status: "True", reason: "NoFreeCIDR", message: `${exhausted} node(s) wait for a CIDR; `
          + (waitingOnInvalid ? "a family has no valid range: fix what the Valid condition names" : "add a range to spec to grow the pool") }
        : { type: "Exhausted", status: "False", reason: "CapacityAvailable", message: "every selected node has its CIDRs" },
      podAddressesCondition(states.get(pool.name)!),
    ];
    return { pool: pool.name, usage, conditions };
  });
}

/** What keeps a record from counting as its pool's: its pool gone, outside its ranges, another size, taken, a second of its family. */
export function recordProblem(r: PlannerRecord, cidr: Cidr | undefined, states: Map<string, PoolState>, held: Map<string, Held[]>): { reason: string; message: string } | undefined {
  if (!cidr) return { reason: "InvalidCIDR", message: `${r.cidr} is not a valid canonical CIDR` };
  const state = states.get(r.pool);
  if (!state) return { reason: "PoolNotFound", message: `${r.cidr} names pool ${r.pool}, which does not exist` };
  const fam = state.families[cidr.family];
  const found = findSet([state], cidr);
  if (!fam || !found) {
    const inRange = overlappingSets([state], cidr).length > 0;
    return inRange
      ? { reason: "WrongSize", message: `${r.cidr} is not a /${fam?.prefix ?? "?"} slice of pool ${r.pool}` }
      : { reason: "OutsidePool", message: `${r.cidr} lies outside every valid range of pool ${r.pool}` };
  }
  if (found.set.isOccupied(cidr)) return { reason: "Overlapping", message: `${r.cidr} overlaps a CIDR already held by another record` };
  if ((held.get(r.nodeName) ?? []).some((h) => h.family === cidr.family)) {
    return { reason: "DuplicateForNode", message: `node ${r.nodeName} already holds an IPv${cidr.family} CIDR; ${r.cidr} is a second one` };
  }
  return undefined;
}
