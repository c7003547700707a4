import { describe, expect, it } from "vitest";
import type { PoolSpec } from "../crds/pool.js";
import { controllerConfigSchema } from "../config.js";
import { CONFIGURED_CIDRS_ANNOTATION, planDefaultPool, planNewDefaultPool, type ConfiguredPool, type RangeInUse } from "./default-pool.js";
import { configuredPool, defaultPool } from "./observe.js";

const config = (cidrs: string[], maskV4 = 24, maskV6 = 64): ConfiguredPool => ({
  v4: cidrs.filter((c) => !c.includes(":")), v6: cidrs.filter((c) => c.includes(":")), maskV4, maskV6,
});
const v4 = (cidrs: string[], nodeMaskSize = 24): PoolSpec => ({ ipv4: { cidrs, nodeMaskSize } });

describe("planDefaultPool: an existing default pool and a changed configuration", () => {
  it.each<[string, ConfiguredPool, PoolSpec, string | undefined, { spec?: PoolSpec; added: string[]; reasons: string[] }]>([
    ["the same configuration changes nothing", config(["10.244.0.0/16"]), v4(["10.244.0.0/16"]), "10.244.0.0/16", { added: [], reasons: [] }],
    ["a range added to the configuration is appended", config(["10.244.0.0/16", "10.245.0.0/16"]), v4(["10.244.0.0/16"]), "10.244.0.0/16",
      { spec: v4(["10.244.0.0/16", "10.245.0.0/16"]), added: ["10.245.0.0/16"], reasons: [] }],
    ["an IPv6 range turns the pool dual-stack with the configured IPv6 mask", config(["10.244.0.0/16", "fd00:10:244::/56", "fd00:10:245::/56"], 24, 80), v4(["10.244.0.0/16"]), undefined,
      { spec: { ...v4(["10.244.0.0/16"]), ipv6: { cidrs: ["fd00:10:244::/56", "fd00:10:245::/56"], nodeMaskSize: 80 } }, added: ["fd00:10:244::/56", "fd00:10:245::/56"], reasons: [] }],
    ["ranges are compared in canonical form", config(["FD00:10:244:0::/56"]), { ipv6: { cidrs: ["fd00:10:244::/56"], nodeMaskSize: 64 } }, "fd00:10:244::/56", { added: [], reasons: [] }],
    ["a range dropped from the configuration stays, reported", config(["10.245.0.0/16"]), v4(["10.244.0.0/16", "10.245.0.0/16"]), "10.244.0.0/16,10.245.0.0/16",
      { added: [], reasons: ["RangeNotConfigured"] }],
    ["a range added by hand is not the configuration's to judge", config(["10.244.0.0/16"]), v4(["10.244.0.0/16", "10.250.0.0/16"]), "10.244.0.0/16", { added: [], reasons: [] }],
    ["a pool from before the annotation reports nothing dropped", config(["10.244.0.0/16"]), v4(["10.244.0.0/16", "10.250.0.0/16"]), undefined, { added: [], reasons: [] }],
    ["another node mask is reported, not applied", config(["10.244.0.0/16"], 25), v4(["10.244.0.0/16"]), "10.244.0.0/16", { added: [], reasons: ["NodeMaskSizeKept"] }],
    ["a configured range around a pool range is reported, not added", config(["10.244.0.0/15"]), v4(["10.244.0.0/16"]), "10.244.0.0/16",
      { added: [], reasons: ["ConfiguredRangeOverlaps", "RangeNotConfigured"] }],
    // An upgrade that lost `--set pool.clusterCIDRs=10.100.0.0/16` falls back to the chart's default range.
    ["values that replace the ranges add nothing: the pool only grows by choice", config(["10.244.0.0/16"]), v4(["10.100.0.0/16"]), "10.100.0.0/16",
      { added: [], reasons: ["ConfiguredRangeNotAdded", "RangeNotConfigured"] }],
    ["a pool made by hand is not grown by a configuration that does not name its ranges", config(["10.244.0.0/16"]), v4(["10.100.0.0/16"]), undefined,
      { added: [], reasons: ["ConfiguredRangeNotAdded"] }],
    ["a pool made by hand grows once the configuration names its ranges", config(["10.100.0.0/16", "10.244.0.0/16"]), v4(["10.100.0.0/16"]), undefined,
      { spec: v4(["10.100.0.0/16", "10.244.0.0/16"]), added: ["10.244.0.0/16"], reasons: [] }],
    ["a configured range another pool uses is reported, not added; the rest is", config(["10.220.0.0/24", "10.221.0.0/23", "10.222.0.0/24"]), v4(["10.220.0.0/24"]), "10.220.0.0/24",
      { spec: v4(["10.220.0.0/24", "10.222.0.0/24"]), added: ["10.222.0.0/24"], reasons: ["ConfiguredRangeOverlaps"] }],
    ["a configured range inside the service CIDR is reported, not added", config(["10.244.0.0/16", "10.96.0.0/16"]), v4(["10.244.0.0/16"]), "10.244.0.0/16",
      { added: [], reasons: ["ConfiguredRangeOverlaps"] }],
  ])("%s", (_name, configured, spec, previously, want) => {
    const before = structuredClone(spec);
    const inUse: RangeInUse[] = [{ cidr: "10.221.0.0/23", by: "pool rack-b" }, { cidr: "10.96.0.0/12", by: "the service CIDR" }];
    const plan = planDefaultPool("default", configured, spec, previously, inUse);
    expect(plan.spec).toEqual(want.spec);
    expect(plan.added).toEqual(want.added);
    expect(plan.notes.map((n) => n.reason)).toEqual(want.reasons);
    expect(spec).toEqual(before); // the observed pool is never edited in place
  });

  it("remembers the configured ranges, canonical, for the next look", () => {
    expect(planDefaultPool("default", config(["10.244.0.0/16", "FD00:10:244:0::/56"]), v4(["10.244.0.0/16"]), undefined).configuredCidrs).toBe("10.244.0.0/16,fd00:10:244::/56");
  });

  it("keeps the annotation while the configuration replaces the pool's ranges, so a later start does not take it as growth", () => {
    expect(planDefaultPool("default", config(["10.244.0.0/16"]), v4(["10.100.0.0/16"]), "10.100.0.0/16").configuredCidrs).toBeUndefined();
    expect(planDefaultPool("default", config(["10.244.0.0/16"]), v4(["10.100.0.0/16"]), undefined).configuredCidrs).toBeUndefined();
    expect(planDefaultPool("default", config(["10.100.0.0/16", "10.244.0.0/16"]), v4(["10.100.0.0/16"]), "10.100.0.0/16").configuredCidrs).toBe("10.100.0.0/16,10.244.0.0/16");
  });

  it("says which range another pool or the service CIDR holds, and what a replaced configuration lacks", () => {
    const inUse: RangeInUse[] = [{ cidr: "10.221.0.0/23", by: "pool rack-b" }];
    expect(planDefaultPool("default", config(["10.220.0.0/24", "10.221.0.0/23"]), v4(["10.220.0.0/24"]), "10.220.0.0/24", inUse).notes.map((n) => n.message)).toEqual([
      "--cluster-cidr 10.221.0.0/23 overlaps 10.221.0.0/23 of pool rack-b and is not added to pool default: configure ranges no pool or service uses",
    ]);
    expect(planDefaultPool("default", config(["10.244.0.0/16"]), v4(["10.100.0.0/16"]), "10.100.0.0/16").notes.map((n) => n.message)).toEqual([
      "--cluster-cidr 10.244.0.0/16 is not added to pool default: the configuration no longer names 10.100.0.0/16, so it replaces the pool's ranges rather than adding to them; name those too to grow the pool",
      "pool default keeps 10.100.0.0/16, no longer in --cluster-cidr: a pool's ranges cannot be removed while nodes may hold CIDRs from them",
    ]);
  });

  it("names the pool, the ranges and the flag in what it reports", () => {
    const plan = planDefaultPool("main", config(["10.245.0.0/16"], 25), v4(["10.244.0.0/16", "10.245.0.0/16"]), "10.244.0.0/16,10.245.0.0/16");
    expect(plan.notes.map((n) => n.message)).toEqual([
      "pool main keeps /24 per node for ipv4: nodes hold CIDRs of that size; --node-mask-v4=25 applies only to a pool created anew",
      "pool main keeps 10.244.0.0/16, no longer in --cluster-cidr: a pool's ranges cannot be removed while nodes may hold CIDRs from them",
    ]);
  });
});

describe("the default pool as created", () => {
  it("records its configured ranges as a later look computes them, whatever the flags' order: no rewrite at the next start", () => {
    const config = controllerConfigSchema.parse({ "cluster-cidr": "fd00:10:244::/56,10.244.0.0/16" });
    const created = defaultPool(config);
    const plan = planDefaultPool("default", configuredPool(config), created.spec, created.metadata?.annotations?.[CONFIGURED_CIDRS_ANNOTATION]);
    expect(plan).toEqual({ added: [], notes: [], configuredCidrs: created.metadata?.annotations?.[CONFIGURED_CIDRS_ANNOTATION] });
  });
});

describe("planNewDefaultPool: the default pool created where other pools exist", () => {
  const team: RangeInUse = { cidr: "10.244.0.0/16", by: "pool team", pool: "team" };
  it.each<[string, ConfiguredPool, RangeInUse[], PoolSpec | undefined, string[]]>([
    ["no other pool: every configured range", config(["10.244.0.0/16", "fd00:10:244::/56"]), [], { ...v4(["10.244.0.0/16"]), ipv6: { cidrs: ["fd00:10:244::/56"], nodeMaskSize: 64 } }, []],
    ["a range another pool holds is left out, the rest created", config(["10.244.0.0/16", "10.245.0.0/16"]), [team], v4(["10.245.0.0/16"]), ["team"]],
    ["a range inside another pool's counts as held", config(["10.244.128.0/17"]), [team], undefined, ["team"]],
    ["every range held: nothing created", config(["10.244.0.0/16"]), [team, { cidr: "10.96.0.0/12", by: "the service CIDR" }], undefined, ["team"]],
    // Created IPv6-only, its Nodes' podCIDRs would be filled without IPv4 for good.
    ["a family left with no range: nothing created", config(["10.244.0.0/16", "fd00:10:244::/56"]), [team], undefined, ["team"]],
  ])("%s", (_name, configured, others, spec, clashing) => {
    const plan = planNewDefaultPool("default", configured, others);
    expect(plan.spec).toEqual(spec);
    expect(plan.clashingPools).toEqual(clashing);
    expect(plan.lostFamilies).toEqual(spec || !clashing.length ? [] : ["IPv4"]);
    expect(plan.notes.map((n) => n.reason)).toEqual(clashing.length ? ["ConfiguredRangeOverlaps"] : []);
    if (clashing.length) expect(plan.notes[0]!.message).toMatch(/^--cluster-cidr 10\.244\.\S+ overlaps 10\.244\.0\.0\/16 of pool team and is left out of pool default/);
  });
});
