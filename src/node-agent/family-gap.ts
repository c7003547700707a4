import type { ConditionInput } from "../lib/conditions.js";
import type { IpFamily } from "../lib/cidr.js";

/**
 * A dual-stack node gets one NodeCIDR per family, created in separate writes: its agent can see the IPv4 one
 * first. A conflist written then hands pods IPv4 alone for their lifetime, and with IPv6 exhausted the node
 * would run single-stack with nothing saying so. These planners decide how long to wait for the rest and what
 * to report; the agent (agent.ts) keeps the clock.
 */

/** The families a pool serves, from its spec. */
export interface PoolFamilies { name: string; families: IpFamily[] }

/** This node's families against those of the pool(s) its own NodeCIDRs were taken from. */
export interface FamilyGap { pools: string[]; expected: IpFamily[]; missing: IpFamily[] }

export const FAMILIES_COMPLETE = "FamiliesComplete";
/** Within the grace period: the family's record may still be on its way (a join's second write). */
export const FAMILY_PENDING = "FamilyPending";
/** Past it: the node runs without that family (the pool's range of it exhausted, or its record refused). */
export const FAMILY_MISSING = "FamilyMissing";

export const poolFamiliesOf = (pool: { metadata?: { name?: string }; spec: { ipv4?: unknown; ipv6?: unknown } }): PoolFamilies =>
  ({ name: pool.metadata?.name ?? "", families: [...(pool.spec.ipv4 ? [4 as const] : []), ...(pool.spec.ipv6 ? [6 as const] : [])] });

/**
 * Pure: the families this node should have (every family of the pools its live NodeCIDRs name) and those it
 * has no usable pod CIDR of. A pool not (or no longer) in the cache expects nothing: the node is not held back
 * on what the agent cannot know.
 */
export function familyGap(ownPools: string[], pools: PoolFamilies[], held: IpFamily[]): FamilyGap {
  const named = [...new Set(ownPools)].sort();
  const expected = [...new Set(pools.filter((p) => named.includes(p.name)).flatMap((p) => p.families))].sort();
  return { pools: named, expected, missing: expected.filter((f) => !held.includes(f)) };
}

/**
 * Pure: whether the first conflist waits. Only the first: a node with a conflist (an agent restart, a range
 * that changed) keeps pod networking as it is and updates it as records come. Only within the grace period:
 * a node must not stay without pod networking because one family's range is exhausted.
 */
export const holdFirstConflist = (gap: FamilyGap, conflistPresent: boolean, waitedMs: number, graceMs: number): boolean =>
  gap.missing.length > 0 && !conflistPresent && waitedMs < graceMs;

const names = (families: IpFamily[]) => families.map((f) => `IPv${f}`).join(" and ");
const poolNames = (gap: FamilyGap) => (gap.pools.length === 1 ? `pool ${gap.pools[0]}` : `pools ${gap.pools.join(", ")}`);

/** Pure: the FamiliesComplete condition for this node's records. Pending within the grace period, then Missing. */
export function familiesCondition(gap: FamilyGap, waitedMs: number, graceMs: number, nodeName: string): ConditionInput {
  if (gap.missing.length === 0) {
    return { type: FAMILIES_COMPLETE, status: "True", reason: "AllFamilies", message: gap.expected.length
      ? `${names(gap.expected)} pod CIDRs from ${poolNames(gap)}, every family it serves` : "every family this node's pool serves" };
  }
  const lacking = `node ${nodeName} has no ${names(gap.missing)} pod CIDR though ${poolNames(gap)} ${gap.pools.length === 1 ? "serves" : "serve"} ${names(gap.expected)}`;
  if (waitedMs < graceMs) {
    return { type: FAMILIES_COMPLETE, status: "False", reason: FAMILY_PENDING, message: `${lacking}: waiting up to ${graceMs / 1000}s for it before the first CNI config, `
      + "so that pods do not start without it" };
  }
  const kept = gap.expected.filter((f) => !gap.missing.includes(f));
  return { type: FAMILIES_COMPLETE, status: "False", reason: FAMILY_MISSING, message: `${lacking}: ${kept.length ? `pods here get ${names(kept)} only` : "pods here get no address"} `
    + `until it arrives (the pool's ${names(gap.missing)} ranges may be exhausted: see kubectl get podcidrpools; a record the agent refuses is named in RoutesProgrammed)` };
}
