import { describe, expect, it } from "vitest";
import { input, node, pool, rec } from "./plan-fixtures.js";
import { planAllocations, type AllocationAction } from "./plan.js";
import { podCidrConditionActions, type NodeConditionState } from "./plan-node-condition.js";

const conflict = (reason: string, node = "a"): AllocationAction => ({ kind: "conflict", node, reason, message: `${reason} message` } as AllocationAction);
const at = (ms: number) => new Date(ms).toISOString();
const conditionFor = (reasons: string[], current?: NodeConditionState, now = 5_000) =>
  podCidrConditionActions([node("a", current ? { podCidrCondition: current } : {})], reasons.map((r) => conflict(r)), now);

describe("podCidrConditionActions: which problem gives the Node condition its reason", () => {
  it.each([
    // The planner lists a Node's podCIDRs problems before its adoptions: follow-ons came first.
    [["PodCIDRFamilyMissing", "PodCIDROutsidePool"], "PodCIDROutsidePool"],
    [["PodCIDRFamilyMissing", "PodCIDRConflict"], "PodCIDRConflict"],
    [["PodCIDRFamilyMissing", "PodCIDRInvalid"], "PodCIDRInvalid"],
    [["PodCIDRMismatch", "PodCIDROutsidePool"], "PodCIDROutsidePool"],
    [["PodCIDRFamilyMissing", "PodCIDRMismatch"], "PodCIDRMismatch"],
    [["PodCIDRConflict", "PodCIDROutsidePool"], "PodCIDROutsidePool"],
    [["NoPodCIDRPool"], "NoPodCIDRPool"],
    [["PodCIDRFamilyMissing"], "PodCIDRFamilyMissing"],
  ])("%j → %s, its message first", (reasons, reason) => {
    const [action] = conditionFor(reasons);
    expect(action).toMatchObject({ kind: "nodeCondition", node: "a", status: "True", reason });
    expect((action as { message: string }).message).toMatch(new RegExp(`^${reason} message; |^${reason} message$`));
    expect((action as { message: string }).message.split("; ")).toHaveLength(reasons.length);
  });

  it("leaves problems with the Node's addresses to their own Events (not the pod CIDR condition)", () => {
    expect(conditionFor(["DuplicateNodeIP", "UnusableNodeIP"])).toEqual([]);
  });
});

describe("podCidrConditionActions: times", () => {
  const set: NodeConditionState = { status: "True", reason: "PodCIDRConflict", message: "PodCIDRConflict message", lastTransitionTime: at(1_000), lastHeartbeatTime: at(1_000) };

  it.each([
    ["first written", ["PodCIDRConflict"], undefined, { lastTransitionTime: at(5_000), lastHeartbeatTime: at(5_000) }],
    ["another cause, still True: the transition stays, the heartbeat moves", ["PodCIDROutsidePool"], set, { lastTransitionTime: at(1_000), lastHeartbeatTime: at(5_000) }],
    ["cause gone: False, both times now", [], set, { status: "False", lastTransitionTime: at(5_000), lastHeartbeatTime: at(5_000) }],
  ] as const)("%s", (_case, reasons, current, times) => {
    expect(conditionFor([...reasons], current)).toEqual([expect.objectContaining(times)]);
  });

  it("writes nothing while the condition says what it said (the heartbeat is the last write, not a clock)", () => {
    expect(conditionFor(["PodCIDRConflict"], set)).toEqual([]);
  });
});

describe("planAllocations: the PodCIDRConflict Node condition and what sets it", () => {
  it("sets the PodCIDRConflict Node condition once, keeps its transition time, and clears it when the cause goes", () => {
    const conflicted = [node("a", { podCIDRs: ["10.244.7.0/24"] }), node("b", { podCIDRs: ["10.244.7.0/24"] })];
    const [set] = planAllocations(input({ nodes: conflicted })).actions.filter((a) => a.kind === "nodeCondition");
    expect(set).toEqual({ kind: "nodeCondition", node: "b", status: "True", reason: "PodCIDRConflict", message: expect.stringContaining("already held by node a"),
      lastTransitionTime: new Date(1_000_000).toISOString(), lastHeartbeatTime: new Date(1_000_000).toISOString() });
    const { kind: _k, node: _n, ...written } = set as Extract<AllocationAction, { kind: "nodeCondition" }>;
    const b = node("b", { podCIDRs: ["10.244.7.0/24"], podCidrCondition: written });
    // Written: the next plans have nothing to say, whatever time it is.
    expect(planAllocations(input({ nodes: [conflicted[0]!, b], now: 2_000_000 })).actions.filter((a) => a.kind === "nodeCondition")).toEqual([]);
    // Another cause (a's range released, b's preset now outside the pool): same transition time, new reason.
    const moved = planAllocations(input({ nodes: [b], pools: [pool(["10.245.0.0/16"])], now: 3_000_000 })).actions.filter((a) => a.kind === "nodeCondition");
    expect(moved).toEqual([expect.objectContaining({ status: "True", reason: "PodCIDROutsidePool", lastTransitionTime: new Date(1_000_000).toISOString(),
      lastHeartbeatTime: new Date(3_000_000).toISOString() })]);
    // a gone: b adopts its range, and the condition turns False; a Node that never had one gets none.
    const cleared = planAllocations(input({ nodes: [b, node("c")], now: 4_000_000 })).actions;
    expect(cleared.filter((a) => a.kind === "nodeCondition")).toEqual([{ kind: "nodeCondition", node: "b", status: "False", reason: "NoConflict",
      message: "podnet uses this Node's pod CIDRs", lastTransitionTime: new Date(4_000_000).toISOString(), lastHeartbeatTime: new Date(4_000_000).toISOString() }]);
  });

  it("reports a Node holding a family its spec.podCIDRs (set before, unchangeable) lacks, where podnet fills the field", () => {
    const dual = [pool(["10.244.0.0/16"], { v6: { cidrs: ["fd00:10:244::/56"], nodePrefix: 64 } })];
    const held = { nodes: [node("a", { podCIDRs: ["10.244.0.0/24"] })], records: [rec("a", "10.244.0.0/24"), rec("a", "fd00:10:244::/64")], pools: dual };
    const filling = planAllocations(input({ ...held, config: { cooldownMs: 60_000, serviceCIDRs: ["10.96.0.0/12"], fillNodePodCIDRs: true } }));
    expect(filling.actions).toEqual([expect.objectContaining({ kind: "conflict", node: "a", reason: "PodCIDRFamilyMissing",
      message: expect.stringContaining("holds fd00:10:244::/64, but its spec.podCIDRs (10.244.0.0/24) was set before and cannot be changed") }),
    expect.objectContaining({ kind: "nodeCondition", node: "a", status: "True", reason: "PodCIDRFamilyMissing" })]);
    // Not podnet's field to judge when it does not fill it; a Node whose field names both is complete.
    expect(planAllocations(input(held)).actions).toEqual([]);
    expect(planAllocations(input({ ...held, nodes: [node("a", { podCIDRs: ["10.244.0.0/24", "fd00:10:244::/64"] })], config: { cooldownMs: 60_000, serviceCIDRs: ["10.96.0.0/12"], fillNodePodCIDRs: true } })).actions).toEqual([]);
  });

  it("reports a Node whose spec.podCIDRs another allocator set to a range other than podnet's, and changes nothing", () => {
    const raced = planAllocations(input({ nodes: [node("a", { podCIDRs: ["10.244.7.0/24"] })], records: [rec("a", "10.244.0.0/24")] }));
    expect(raced.actions).toEqual([expect.objectContaining({ kind: "conflict", node: "a", reason: "PodCIDRMismatch",
      message: expect.stringContaining("has spec.podCIDRs 10.244.7.0/24, but podnet allocated it 10.244.0.0/24") }),
    expect.objectContaining({ kind: "nodeCondition", node: "a", status: "True", reason: "PodCIDRMismatch" })]);
    // The same range (podnet's own fill, or an adopted one) and a family podnet holds nothing for are fine.
    expect(planAllocations(input({ nodes: [node("a", { podCIDRs: ["10.244.0.0/24"] })], records: [rec("a", "10.244.0.0/24")] })).actions).toEqual([]);
    expect(planAllocations(input({ nodes: [node("a", { podCIDRs: ["10.244.0.0/24", "fd00::/64"] })], records: [rec("a", "10.244.0.0/24")] })).actions
      .filter((a) => a.kind === "conflict")).toEqual([]);
  });
});
