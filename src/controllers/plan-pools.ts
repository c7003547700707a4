import { CidrSet } from "../lib/cidr-set.js";
import { cidrContains, cidrsOverlap, compareCidrs, formatCidr, InvalidCidrError, maxNodeCidrPrefix, parseCidr, specialPurposeOverlap, tryParseCidr, type Cidr, type IpAddr, type IpFamily } from "../lib/cidr.js";
import { CidrIndex, overlapsAfter, type DisjointCidrs } from "../lib/cidr-index.js";
import { MAX_CONDITION_MESSAGE } from "../lib/conditions.js";
import type { Held, PlannerNode, PlannerRecord } from "./plan.js";
import { PoolStates, type PoolRange } from "./pool-states.js";
import { compareText } from "../lib/order.js";

// The conditions pools report are worked out in pool-conditions.ts; the planner takes them from here.
export { poolStatusReports, type PoolStatusReport } from "./pool-conditions.js";

export interface PlannerPool {
  name: string;
  nodeSelector: Record<string, string>;
  /** When the object was created (ms): of the pools without a selector, the oldest serves. */
  createdAt?: number;
  v4?: { cidrs: string[]; nodePrefix: number };
  v6?: { cidrs: string[]; nodePrefix: number };
}

/** One family of one pool after validation: only valid ranges get a CidrSet. */
export interface PoolFamilyState {
  prefix: number;
  sets: CidrSet[];
  problems: string[];
  /** Ranges served as part of a wider range of the same pool family, each with that range ("10.0.0.0/25 within 10.0.0.0/24"). */
  nested: string[];
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

/** A range that parsed, with the pool family it belongs to; refused when it overlaps another pool's or the services. */
interface Candidate { pool: string; family: IpFamily; cidr: Cidr; prefix: number; fam: PoolFamilyState; refused: boolean }

/** A CIDR a pool has handed out (an Allocated or Released record): the range that holds it is in use. */
export interface PoolClaim { pool: string; cidr: string }

/**
 * Pure: validate every pool range (syntax, host bits, slice larger than range, overlap with another pool's
 * range or the service CIDRs). A bad range is reported and never allocated from; it never throws.
 *
 * Of two pools' overlapping ranges, one that already holds its pool's allocations keeps serving when the other
 * holds none (a pool added, or a range appended, over one in use): otherwise a new pool overlapping the
 * default's range would stop every new node of the cluster. When both or neither are in use, both are refused.
 * A pool's own ranges that nest (a /25 grown by appending its /24: ranges cannot be removed, so that is how a
 * pool grows in place) are served as their union, the widest, once (servedOnce): refusing both cut every Node
 * of the pool off for good, as the schema lets no one drop the narrower range again.
 */
export function buildPoolStates(pools: PlannerPool[], serviceCIDRs: string[], claims: PoolClaim[] = []): PoolStates {
  const services = serviceCIDRs.flatMap((s) => { try { return [parseCidr(s)]; } catch { return []; } });
  const states = new Map<string, PoolState>();
  const candidates: Candidate[] = [];
  for (const pool of [...pools].sort((a, b) => compareText(a.name, b.name))) {
    const state: PoolState = { pool, families: {} };
    states.set(pool.name, state);
    for (const family of [4, 6] as const) {
      const spec = family === 4 ? pool.v4 : pool.v6;
      if (!spec) continue;
      const fam: PoolFamilyState = { prefix: spec.nodePrefix, sets: [], problems: [], nested: [], exhaustedNodes: 0 };
      state.families[family] = fam;
      for (const text of spec.cidrs) {
        const parsed = parseRange(text, family, spec.nodePrefix);
        if (typeof parsed === "string") fam.problems.push(parsed);
        else candidates.push({ pool: pool.name, family, cidr: parsed, prefix: spec.nodePrefix, fam, refused: false });
      }
    }
  }
  const useOf = rangeUse(claims, new Set(pools.map((p) => p.name)));
  const uses: number[] = [];
  const use = (i: number) => (uses[i] ??= useOf(candidates[i]!));
  const problems = problemList();
  const report = (loser: Candidate, winner: Candidate, winnerKept: boolean) => {
    if (!problems.full(loser.fam)) problems.add(loser.fam, `${formatCidr(loser.cidr)} overlaps ${formatCidr(winner.cidr)} of pool ${winner.pool}${winnerKept ? ", which has nodes allocated from it" : ""}`);
  };
  // Pairs in the order a loop over every pair meets them, so each pool's problems read as they always did.
  for (const [i, later] of overlapsAfter(candidates.map((c) => c.cidr)).entries()) {
    const a = candidates[i]!;
    for (const j of later) {
      const b = candidates[j]!;
      if (a.pool === b.pool) continue; // nested ranges of one pool: servedOnce below
      const keepA = use(i) > use(j);
      const keepB = use(j) > use(i);
      if (!keepA) { a.refused = true; report(a, b, keepB); }
      if (!keepB) { b.refused = true; report(b, a, keepA); }
    }
    const service = services.find((s) => cidrsOverlap(s, a.cidr));
    if (service) {
      a.refused = true;
      if (!problems.full(a.fam)) problems.add(a.fam, `${formatCidr(a.cidr)} overlaps the service CIDR ${formatCidr(service)}`);
    }
  }
  for (const c of servedOnce(candidates.filter((c) => !c.refused))) c.fam.sets.push(new CidrSet(c.cidr, c.prefix));
  return new PoolStates([...states.values()]);
}

/**
 * The ranges to serve, in the order listed: of a pool family's ranges that nest (two CIDRs overlap only so), the
 * widest, which covers the others' addresses, so records allocated from a narrower one are its slices still and
 * the pool's size counts them once. The narrower ones are noted on the family (the Valid message names them).
 * After the refusals: a wide range refused over another pool's or the services leaves the narrower ones serving.
 */
function servedOnce(kept: Candidate[]): Candidate[] {
  const nested = new Set<Candidate>();
  let widest: Candidate | undefined;
  // Sorted by family, network, then wider first (the first listed of two equal ones first), a range nests exactly
  // when the last one not nested holds it.
  const order = kept.map((c, i) => ({ c, i })).sort((x, y) => compareText(x.c.pool, y.c.pool) || compareCidrs(x.c.cidr, y.c.cidr) || x.i - y.i);
  for (const { c } of order) {
    if (widest && widest.fam === c.fam && cidrContains(widest.cidr, c.cidr)) {
      nested.add(c);
      c.fam.nested.push(`${formatCidr(c.cidr)} within ${formatCidr(widest.cidr)}`);
    } else widest = c;
  }
  return kept.filter((c) => !nested.has(c));
}

/**
 * Problems of a pool family, written until they fill a condition message (nextCondition cuts the rest, after the
 * family's earlier problems): a hundred pools naming the same 16 ranges make 80,000 overlapping pairs, and
 * their texts, never read, were most of such a plan's time and memory.
 */
function problemList(): { full: (fam: PoolFamilyState) => boolean; add: (fam: PoolFamilyState, text: string) => void } {
  // The length of the family's problems joined as the message joins them; past the limit, the message is cut.
  const joined = new Map<PoolFamilyState, number>();
  const length = (fam: PoolFamilyState) => joined.get(fam) ?? fam.problems.join("; ").length;
  return {
    full: (fam) => length(fam) > MAX_CONDITION_MESSAGE,
    add: (fam, text) => {
      joined.set(fam, length(fam) + (fam.problems.length ? 2 : 0) + text.length);
      fam.problems.push(text);
    },
  };
}

/**
 * How much a range is in use: 2 with its own pool's CIDRs (allocated, or released in cooldown), 1 with only
 * those of a pool that is gone (the planner re-homes the allocated ones to it), 0 with none. Of two overlapping
 * ranges, the one in more use keeps serving. The claims are read once, at the first overlap between pools, into
 * an index per pool: scanning them for every overlapping pair made a plan cost pools² × records where many
 * pools name the same ranges.
 */
function rangeUse(claims: PoolClaim[], poolNames: Set<string>): (c: Candidate) => number {
  let index: { own: Map<string, CidrIndex<null>>; gone: CidrIndex<null> } | undefined;
  const build = () => {
    const byPool = new Map<string, Array<{ cidr: Cidr; value: null }>>();
    const ofGonePools: Array<{ cidr: Cidr; value: null }> = [];
    for (const k of claims) {
      const cidr = tryParseCidr(k.cidr);
      if (!cidr) continue;
      const pool = k.pool;
      const list = poolNames.has(pool) ? byPool.get(pool) ?? byPool.set(pool, []).get(pool)! : ofGonePools;
      list.push({ cidr, value: null });
    }
    return { own: new Map([...byPool].map(([pool, list]) => [pool, new CidrIndex(list)])), gone: new CidrIndex(ofGonePools) };
  };
  return (c) => {
    index ??= build();
    return index.own.get(c.pool)?.overlapsAny(c.cidr) ? 2 : index.gone.overlapsAny(c.cidr) ? 1 : 0;
  };
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

/** The valid range that has a CIDR as one of its slices, in any pool or in `only` (adoption, record validation). */
export function findSet(states: PoolStates, cidr: Cidr, only?: PoolState): PoolRange | undefined {
  return states.ranges.overlapping(cidr).find((r) => r.set.nodePrefix === cidr.prefix && (!only || r.state === only));
}

/** Any valid range that overlaps the CIDR, whatever the slice size (for quarantined records), in any pool or in `only`. */
export function overlappingSets(states: PoolStates, cidr: Cidr, only?: PoolState): CidrSet[] {
  return states.ranges.overlapping(cidr).flatMap((r) => (!only || r.state === only ? [r.set] : []));
}

/** Keep a CIDR out of circulation (released in cooldown, quarantined): occupy every slice it touches. */
export function hold(states: PoolStates, cidr: Cidr, node: string, holderOf: Map<string, string>): void {
  for (const set of overlappingSets(states, cidr)) set.occupyCovering(cidr);
  holderOf.set(formatCidr(cidr), node);
}

/** Take the slice that holds the address out of circulation, in whichever range has it (a node's own IP). */
export function occupySliceHolding(states: PoolStates, ip: IpAddr): void {
  for (const { set } of states.ranges.holding(ip)) set.occupyCovering({ family: ip.family, network: ip.value, prefix: ip.family === 4 ? 32 : 128 });
}

/** What keeps a record from counting as its pool's: its pool gone, outside its ranges, another size, taken, a second of its family. */
export function recordProblem(r: PlannerRecord, cidr: Cidr | undefined, states: PoolStates, held: Map<string, Held[]>): { reason: string; message: string } | undefined {
  if (!cidr) return { reason: "InvalidCIDR", message: `${r.cidr} is not a valid canonical CIDR` };
  const state = states.get(r.pool);
  if (!state) return { reason: "PoolNotFound", message: `${r.cidr} names pool ${r.pool}, which does not exist` };
  const fam = state.families[cidr.family];
  const found = findSet(states, cidr, state);
  if (!fam || !found) {
    const inRange = overlappingSets(states, cidr, state).length > 0;
    return inRange
      ? { reason: "WrongSize", message: `${r.cidr} is not a /${fam?.prefix ?? "?"} slice of pool ${r.pool}` }
      : { reason: "OutsidePool", message: `${r.cidr} lies outside every valid range of pool ${r.pool}` };
  }
  if (found.set.isOccupied(cidr)) return overlapping(r);
  return secondOfFamily(r, cidr, held);
}

/**
 * What keeps an Allocated record its pool does not cover from being retained (plan.ts, RETAINED): a CIDR that
 * overlaps one kept already, or a second of its family for its node. Slices' marks cannot tell: a retained /25
 * marks its whole /24 slice, and an earlier mask's /25s share one. Status restored from a backup can say
 * Allocated of records the controller never made, and agents route neither of two overlapping ones.
 */
export function retainedClash(r: PlannerRecord, cidr: Cidr, kept: DisjointCidrs, held: Map<string, Held[]>): { reason: string; message: string } | undefined {
  return kept.overlapsAny(cidr) ? overlapping(r) : secondOfFamily(r, cidr, held);
}

const overlapping = (r: PlannerRecord) => ({ reason: "Overlapping", message: `${r.cidr} overlaps a CIDR already held by another record` });

function secondOfFamily(r: PlannerRecord, cidr: Cidr, held: Map<string, Held[]>): { reason: string; message: string } | undefined {
  if (!(held.get(r.nodeName) ?? []).some((h) => h.family === cidr.family)) return undefined;
  return { reason: "DuplicateForNode", message: `node ${r.nodeName} already holds an IPv${cidr.family} CIDR; ${r.cidr} is a second one` };
}
