import { describe, expect, it } from "vitest";
import { node } from "./plan-fixtures.js";
import type { AllocationAction } from "./plan.js";
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
