import { describe, expect, it } from "vitest";
import { planAllocations, type PlannerPool } from "./plan.js";
import { input, kinds, node, pool, rec } from "./plan-fixtures.js";
import { buildPoolStates } from "./plan-pools.js";

const SERVICES = ["10.96.0.0/12"];
const dual = (name: string, createdAt: number, v4: string, v6: string): PlannerPool =>
  ({ name, createdAt, nodeSelector: {}, v4: { cidrs: [v4], nodePrefix: 24 }, v6: { cidrs: [v6], nodePrefix: 64 } });
const v4 = (name: string, createdAt: number | undefined, cidrs: string[], nodeSelector: Record<string, string> = {}): PlannerPool =>
  ({ name, nodeSelector, ...(createdAt === undefined ? {} : { createdAt }), v4: { cidrs, nodePrefix: 24 } });
const condition = (plan: ReturnType<typeof planAllocations>, pool: string, type: string) =>
  plan.poolStatuses.find((p) => p.pool === pool)!.conditions.find((c) => c.type === type)!;

describe("the pool that serves Nodes no nodeSelector matches: the oldest without one that can serve", () => {
  it.each([
    ["the oldest, whatever the names' order", [v4("zeta", 1, ["10.1.0.0/16"]), v4("alpha", 2, ["10.2.0.0/16"])], "zeta"],
    ["by name between pools created in the same second", [v4("zeta", 1, ["10.1.0.0/16"]), v4("alpha", 1, ["10.2.0.0/16"])], "alpha"],
    ["past an older one whose only range is refused (over the service CIDR)", [v4("old", 1, ["10.96.0.0/16"]), v4("new", 2, ["10.2.0.0/16"])], "new"],
    ["the oldest when none can serve", [v4("old", 1, ["10.96.0.0/16"]), v4("new", 2, ["10.97.0.0/16"])], "old"],
    ["not a pool with a nodeSelector, however old", [v4("rack", 0, ["10.3.0.0/16"], { rack: "1" }), v4("new", 2, ["10.2.0.0/16"])], "new"],
    ["none when every pool has a nodeSelector", [v4("rack", 0, ["10.3.0.0/16"], { rack: "1" })], undefined],
  ])("%s", (_case, pools, expected) => {
    expect(buildPoolStates(pools, SERVICES).catchAll?.pool.name).toBe(expected);
  });

  it("a second pool without a nodeSelector (IPv4-only, sorting first) takes no new Node of a dual-stack cluster; it says why", () => {
    const pools = [dual("default", 1_000, "10.244.0.0/16", "fd00:10:244::/56"), v4("apiux-extra", 5_000, ["10.248.0.0/16"])];
    const plan = planAllocations(input({ nodes: [node("a")], pools }));
    expect(kinds(plan.actions)).toEqual(["create:10.244.0.0/24", "create:fd00:10:244::/64"]);
    expect(condition(plan, "apiux-extra", "Valid")).toEqual({ type: "Valid", status: "False", reason: "AnotherCatchAllPool",
      message: "pool default serves the Nodes no pool's nodeSelector matches, being the oldest pool without a nodeSelector; this pool has none either and serves no Node "
        + "(those that hold a CIDR from it keep it): give it a nodeSelector, or delete it" });
    expect(condition(plan, "apiux-extra", "Ready")).toMatchObject({ status: "False", reason: "AnotherCatchAllPool" });
    expect(condition(plan, "default", "Valid")).toMatchObject({ status: "True", message: "all ranges usable" });
  });

  it("a Node that holds a CIDR from the pool passed over keeps it (and gets its missing family from the one that serves)", () => {
    const pools = [dual("default", 1_000, "10.244.0.0/16", "fd00:10:244::/56"), v4("apiux-extra", 5_000, ["10.248.0.0/16"])];
    const plan = planAllocations(input({ nodes: [node("a")], records: [rec("a", "10.248.0.0/24", { pool: "apiux-extra" })], pools }));
    expect(kinds(plan.actions)).toEqual(["create:fd00:10:244::/64"]);
    expect(plan.poolStatuses.find((p) => p.pool === "apiux-extra")!.usage[4]!.allocated).toBe(1n);
  });

  it("an invalid pool without a nodeSelector (overlapping the serving pool's range in use) leaves no Node without a CIDR", () => {
    const pools = [v4("default", 1_000, ["10.244.0.0/16"]), v4("apiux-overlap", 5_000, ["10.244.128.0/20"])];
    const plan = planAllocations(input({ nodes: [node("a"), node("b")], records: [rec("a", "10.244.0.0/24")], pools }));
    expect(kinds(plan.actions)).toEqual(["create:10.244.1.0/24"]);
    expect(condition(plan, "apiux-overlap", "Valid")).toMatchObject({ reason: "AnotherCatchAllPool",
      message: expect.stringMatching(/give it a nodeSelector, or delete it\. Its ranges: 10\.244\.128\.0\/20 overlaps 10\.244\.0\.0\/16 of pool default, which has nodes allocated from it$/) });
  });

  it("an older pool that cannot serve is passed over, and both pools say so", () => {
    const pools = [v4("old", 1_000, ["10.96.0.0/16"]), v4("new", 5_000, ["10.2.0.0/16"])];
    const plan = planAllocations(input({ nodes: [node("a")], pools }));
    expect(kinds(plan.actions)).toEqual(["create:10.2.0.0/24"]);
    expect(condition(plan, "old", "Valid")).toEqual({ type: "Valid", status: "False", reason: "InvalidRanges",
      message: "10.96.0.0/16 overlaps the service CIDR 10.96.0.0/12; until each of its families has a valid range, pool new serves the Nodes no pool's nodeSelector matches" });
    expect(condition(plan, "new", "Valid")).toEqual({ type: "Valid", status: "True", reason: "RangesValid",
      message: "all ranges usable; serves the Nodes no pool's nodeSelector matches in place of older pool old, which lacks a valid range in a family" });
  });
});

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

describe("a pool grown by appending a superset of its range (kubectl patch: /25 → [/25, /24])", () => {
  it("keeps its records, allocates to the Node waiting, counts the /24 once and says the ranges were merged", () => {
    const grow = pool(["10.120.0.0/25", "10.120.0.0/24"], { name: "grow" }, 26);
    const records = [rec("a", "10.120.0.0/26", { pool: "grow" }), rec("b", "10.120.0.64/26", { pool: "grow" })];
    const plan = planAllocations(input({ nodes: [node("a"), node("b"), node("c")], records, pools: [grow] }));
    expect(kinds(plan.actions)).toEqual(["create:10.120.0.128/26"]);
    expect(plan.retained).toBe(0);
    const status = plan.poolStatuses.find((p) => p.pool === "grow")!;
    expect(status.usage[4]).toEqual({ size: 4n, allocated: 3n, free: 1n });
    expect(condition(plan, "grow", "Valid")).toMatchObject({ status: "True", reason: "RangesValid",
      message: "all ranges usable; 10.120.0.0/25 within 10.120.0.0/24: overlapping ranges of this pool, served once as the wider" });
    expect(condition(plan, "grow", "Exhausted")).toMatchObject({ status: "False" });
  });
});
