import { describe, expect, it } from "vitest";
import { familiesCondition, familyGap, holdFirstConflist, poolFamiliesOf, type PoolFamilies } from "./family-gap.js";

const dual: PoolFamilies = { name: "dual", families: [4, 6] };
const v4: PoolFamilies = { name: "v4", families: [4] };
const v6: PoolFamilies = { name: "v6", families: [6] };

describe("familyGap: the families this node's pool serves that it has no pod CIDR of", () => {
  it.each([
    { name: "dual-stack pool, only the IPv4 record in", own: ["dual"], held: [4], missing: [6], expected: [4, 6] },
    { name: "dual-stack pool, only the IPv6 record in", own: ["dual"], held: [6], missing: [4], expected: [4, 6] },
    { name: "dual-stack pool, both in", own: ["dual", "dual"], held: [4, 6], missing: [], expected: [4, 6] },
    { name: "IPv4-only pool", own: ["v4"], held: [4], missing: [], expected: [4] },
    { name: "IPv6-only pool", own: ["v6"], held: [6], missing: [], expected: [6] },
    { name: "no record of its own: nothing expected (NoPodCIDR says it)", own: [], held: [], missing: [], expected: [] },
    { name: "a pool not in the cache expects nothing: never held on what the agent cannot know", own: ["gone"], held: [4], missing: [], expected: [] },
    { name: "records from two pools (a pool replaced): every family of both", own: ["v4", "v6"], held: [4], missing: [6], expected: [4, 6] },
    { name: "the IPv6 record in but refused (held lacks it): still missing", own: ["dual", "dual"], held: [4], missing: [6], expected: [4, 6] },
  ] as const)("$name", ({ own, held, missing, expected }) => {
    const gap = familyGap([...own], [dual, v4, v6], [...held]);
    expect(gap.missing).toEqual(missing);
    expect(gap.expected).toEqual(expected);
  });

  it("reads a pool's families from its spec", () => {
    expect(poolFamiliesOf({ metadata: { name: "p" }, spec: { ipv4: {}, ipv6: {} } })).toEqual({ name: "p", families: [4, 6] });
    expect(poolFamiliesOf({ metadata: { name: "p" }, spec: { ipv6: {} } })).toEqual({ name: "p", families: [6] });
  });
});

describe("holdFirstConflist", () => {
  const missingV6 = { pools: ["dual"], expected: [4, 6] as Array<4 | 6>, missing: [6] as Array<4 | 6> };
  const complete = { ...missingV6, missing: [] };
  it.each([
    { name: "a family missing, no conflist, within the grace period: held", gap: missingV6, present: false, waited: 3_000, hold: true },
    { name: "just joined (waited 0): held", gap: missingV6, present: false, waited: 0, hold: true },
    { name: "grace period over: written with what the node has", gap: missingV6, present: false, waited: 10_000, hold: false },
    { name: "a conflist already there (agent restart): never held", gap: missingV6, present: true, waited: 0, hold: false },
    { name: "every family in: written at once", gap: complete, present: false, waited: 0, hold: false },
    { name: "grace period 0 (waiting off): written at once", gap: missingV6, present: false, waited: 0, hold: false, grace: 0 },
  ])("$name", ({ gap, present, waited, hold, grace }) => {
    expect(holdFirstConflist(gap, present, waited, grace ?? 10_000)).toBe(hold);
  });
});

describe("familiesCondition", () => {
  const gap = { pools: ["dual"], expected: [4, 6] as Array<4 | 6>, missing: [6] as Array<4 | 6> };
  it("True when every family is in, naming them and the pool", () => {
    expect(familiesCondition({ ...gap, missing: [] }, 0, 10_000, "n1")).toEqual({ type: "FamiliesComplete", status: "True", reason: "AllFamilies",
      message: "IPv4 and IPv6 pod CIDRs from pool dual, every family it serves" });
  });
  it("FamilyPending within the grace period, FamilyMissing after it; both name the node, the family and the pool", () => {
    const pending = familiesCondition(gap, 2_000, 10_000, "n1");
    expect(pending).toMatchObject({ status: "False", reason: "FamilyPending" });
    expect(pending.message).toMatch(/^node n1 has no IPv6 pod CIDR though pool dual serves IPv4 and IPv6: waiting up to 10s/);
    const missing = familiesCondition(gap, 10_000, 10_000, "n1");
    expect(missing).toMatchObject({ status: "False", reason: "FamilyMissing" });
    expect(missing.message).toMatch(/^node n1 has no IPv6 pod CIDR though pool dual serves IPv4 and IPv6: pods here get IPv4 only until it arrives/);
  });
  it("names every pool when the node's records come from several", () => {
    expect(familiesCondition({ pools: ["a", "b"], expected: [4, 6], missing: [4] }, 20_000, 10_000, "n2").message).toMatch(/^node n2 has no IPv4 pod CIDR though pools a, b serve/);
  });
});
