import { describe, expect, it } from "vitest";
import type { PoolSpec } from "../crds/pool.js";
import { controllerConfigSchema } from "../config.js";
import { CONFIGURED_CIDRS_ANNOTATION, planDefaultPool, type ConfiguredPool } from "./default-pool.js";
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
  ])("%s", (_name, configured, spec, previously, want) => {
    const before = structuredClone(spec);
    const plan = planDefaultPool("default", configured, spec, previously);
    expect(plan.spec).toEqual(want.spec);
    expect(plan.added).toEqual(want.added);
    expect(plan.notes.map((n) => n.reason)).toEqual(want.reasons);
    expect(spec).toEqual(before); // the observed pool is never edited in place
  });

  it("remembers the configured ranges, canonical, for the next look", () => {
    expect(planDefaultPool("default", config(["10.244.0.0/16", "FD00:10:244:0::/56"]), v4(["10.244.0.0/16"]), undefined).configuredCidrs).toBe("10.244.0.0/16,fd00:10:244::/56");
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
