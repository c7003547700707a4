import { describe, expect, it } from "vitest";
import { NODE_CONFLICT_REASONS, nodesInConflict } from "./node-conflicts.js";
import { planAllocations } from "./plan.js";
import { input, node, pool, rec } from "./plan-fixtures.js";

const none = Object.fromEntries(NODE_CONFLICT_REASONS.map((r) => [r, 0]));
const counted = (p: Parameters<typeof input>[0]) => nodesInConflict(planAllocations(input(p)).actions);

describe("nodes in conflict per reason, from one plan (the gauge podnet_nodes_in_conflict)", () => {
  it("every reason present, 0 for a healthy cluster", () => {
    expect(counted({ nodes: [node("a"), node("b")] })).toEqual(none);
  });

  it("a Node whose preset podCIDR another Node holds, and one outside every pool: one each", () => {
    const nodes = [node("a", { podCIDRs: ["10.244.7.0/24"] }), node("b", { podCIDRs: ["10.244.7.0/24"] }), node("c", { podCIDRs: ["172.16.0.0/24"] })];
    expect(counted({ nodes })).toEqual({ ...none, PodCIDRConflict: 1, PodCIDROutsidePool: 1 });
  });

  it("counts Nodes, not findings: both families of one Node in conflict count once", () => {
    const dual = [pool(["10.244.0.0/16"], { v6: { cidrs: ["fd00:10:244::/56"], nodePrefix: 64 } })];
    const presets = ["10.244.7.0/24", "fd00:10:244:7::/64"];
    const nodes = [node("a", { podCIDRs: presets }), node("b", { podCIDRs: presets })];
    expect(counted({ nodes, pools: dual })).toEqual({ ...none, PodCIDRConflict: 1 });
  });

  it("two Nodes sharing an address are two Nodes; a Node no pool selects, one with a bad preset", () => {
    const shared = [node("old", { nodeIPs: ["192.168.0.7"] }), node("new", { nodeIPs: ["192.168.0.7"] })];
    expect(counted({ nodes: shared })).toEqual({ ...none, DuplicateNodeIP: 2 });
    expect(counted({ nodes: [node("x", { labels: { zone: "b" } })], pools: [pool(["10.244.0.0/16"], { nodeSelector: { zone: "a" } })] })).toEqual({ ...none, NoPodCIDRPool: 1 });
    expect(counted({ nodes: [node("y", { podCIDRs: ["10.244.7.1/33"] })] })).toEqual({ ...none, PodCIDRInvalid: 1 });
  });

  it("a lasting conflict is the same level in every plan (the counter it replaces grew with each one)", () => {
    const nodes = [node("a", { podCIDRs: ["10.244.7.0/24"] }), node("b", { podCIDRs: ["10.244.7.0/24"] })];
    const records = [rec("a", "10.244.7.0/24")];
    for (const now of [1_000_000, 1_005_000, 1_600_000]) expect(counted({ nodes, records, now })).toEqual({ ...none, PodCIDRConflict: 1 });
  });
});
