import { describe, expect, it } from "vitest";
import { planAllocations } from "./plan.js";
import { input, node, pool } from "./plan-fixtures.js";

const condition = (plan: ReturnType<typeof planAllocations>, pool: string, type: string) =>
  plan.poolStatuses.find((p) => p.pool === pool)!.conditions.find((c) => c.type === type)!;

describe("Ready: Valid and not Exhausted", () => {
  it.each([
    ["valid, with room", [pool(["10.244.0.0/16"])], 1, { status: "True", reason: "ValidAndNotExhausted" }],
    ["valid, full", [pool(["10.244.0.0/24"])], 2, { status: "False", reason: "NoFreeCIDR", message: "Exhausted: 1 node(s) wait for a CIDR; add a range to spec to grow the pool" }],
    ["a range refused, another serving", [pool(["10.244.0.0/16", "10.96.0.0/16"])], 1,
      { status: "False", reason: "InvalidRanges", message: "Valid: 10.96.0.0/16 overlaps the service CIDR 10.96.0.0/12" }],
    ["no valid range, Nodes waiting: Valid's reason, both messages", [pool(["10.96.0.0/16"])], 1, { status: "False", reason: "InvalidRanges",
      message: "Valid: 10.96.0.0/16 overlaps the service CIDR 10.96.0.0/12; Exhausted: 1 node(s) wait for a CIDR; a family has no valid range: fix what the Valid condition names" }],
  ])("%s", (_case, pools, nodes, expected) => {
    const plan = planAllocations(input({ nodes: Array.from({ length: nodes }, (_, i) => node(`n${i}`)), pools }));
    expect(condition(plan, "default", "Ready")).toMatchObject(expected);
  });
});
