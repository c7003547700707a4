import type { CidrSet } from "../lib/cidr-set.js";
import { CidrIndex } from "../lib/cidr-index.js";
import type { PoolState } from "./plan-pools.js";
import { compareText } from "../lib/order.js";

/** A pool's valid range. Valid ranges of all pools never overlap (buildPoolStates refuses one of any two that do). */
export interface PoolRange { state: PoolState; set: CidrSet }

/**
 * Every pool's state by name (in name order), with what a plan looks up per record and per Node indexed once:
 * the valid ranges by address, and the pools by a label their selector asks for. Walking every range of every
 * pool for each lookup made a plan's cost grow with pools × ranges × Nodes.
 */
export class PoolStates extends Map<string, PoolState> {
  readonly ranges: CidrIndex<PoolRange>;
  /** Pools with a selector, by one label key and value it asks for; each with its place in name order. */
  private readonly byLabel = new Map<string, Map<string, Array<{ state: PoolState; rank: number }>>>();
  /** Pools without a selector, oldest first; `catchAll` is the one of them that serves (see chooseCatchAll). */
  readonly withoutSelector: PoolState[];
  readonly catchAll?: PoolState;

  constructor(states: PoolState[]) {
    super(states.map((s) => [s.pool.name, s]));
    this.ranges = new CidrIndex(states.flatMap((state) => ([4, 6] as const).flatMap((family) =>
      (state.families[family]?.sets ?? []).map((set) => ({ cidr: set.range, value: { state, set } })))));
    ({ withoutSelector: this.withoutSelector, catchAll: this.catchAll } = chooseCatchAll(states));
    // Each pool under the label its selector asks for that fewest other pools ask for too: pools that all add
    // kubernetes.io/os=linux to a label of their own are found by that label, not all through the common one.
    const pairs = new Map<string, number>();
    const pairKey = ([k, v]: [string, string]) => JSON.stringify([k, v]);
    for (const state of this.values()) for (const pair of Object.entries(state.pool.nodeSelector)) pairs.set(pairKey(pair), (pairs.get(pairKey(pair)) ?? 0) + 1);
    for (const [rank, state] of [...this.values()].entries()) {
      const selector = Object.entries(state.pool.nodeSelector);
      if (!selector.length) continue;
      const [key, value] = selector.reduce((a, b) => (pairs.get(pairKey(b))! < pairs.get(pairKey(a))! ? b : a));
      const byValue = this.byLabel.get(key) ?? this.byLabel.set(key, new Map()).get(key)!;
      (byValue.get(value) ?? byValue.set(value, []).get(value)!).push({ state, rank });
    }
  }

  /** The pool for a Node's labels: of the pools whose selector matches, the first by name; else the catch-all (chooseCatchAll). */
  selectPool(labels: Record<string, string>): PoolState | undefined {
    let best: { state: PoolState; rank: number } | undefined;
    for (const [key, value] of Object.entries(labels)) {
      for (const candidate of this.byLabel.get(key)?.get(value) ?? []) {
        if (best && best.rank < candidate.rank) continue;
        if (Object.entries(candidate.state.pool.nodeSelector).every(([k, v]) => labels[k] === v)) best = candidate;
      }
    }
    return best?.state ?? this.catchAll;
  }
}

/** Whether a pool has a valid range in every family it declares: a Node it serves can get all its CIDRs. */
const servesEveryFamily = (state: PoolState) => Object.values(state.families).every((fam) => fam.sets.length > 0);

/**
 * Of the pools without a nodeSelector, the one that serves every Node no selector matches: the oldest
 * (creationTimestamp, then name) that has a valid range in each of its families, else the oldest. By age, so a
 * pool applied later never takes new Nodes over silently (by name, one sorting first did: an IPv4-only one made
 * every new Node of a dual-stack cluster IPv4-only for good). Past one that cannot serve, so an invalid pool
 * (its only range over the service CIDR, say) never leaves every new Node without a CIDR while another can serve. The others serve no Node
 * (their Valid condition says so); Nodes holding CIDRs from them keep those.
 */
export function chooseCatchAll(states: PoolState[]): { withoutSelector: PoolState[]; catchAll?: PoolState } {
  const age = (s: PoolState) => s.pool.createdAt ?? Number.MAX_SAFE_INTEGER;
  const withoutSelector = states.filter((s) => Object.keys(s.pool.nodeSelector).length === 0)
    .sort((a, b) => age(a) - age(b) || compareText(a.pool.name, b.pool.name));
  return { withoutSelector, catchAll: withoutSelector.find(servesEveryFamily) ?? withoutSelector[0] };
}
