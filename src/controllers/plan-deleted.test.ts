import { describe, expect, it } from "vitest";
import { planAllocations } from "./plan.js";
import { input, kinds, node, pool, rec } from "./plan-fixtures.js";
import type { PlannerNode, PlannerRecord } from "./plan.js";

// Node a's record for 10.244.0.0/24, seen deleted by hand at t = 1,000,000 on the monotonic clock (cooldown 60 s).
const gone = (extra: Parameters<typeof rec>[2] = {}) => ({ record: rec("a", "10.244.0.0/24", { nodeUID: "a", ...extra }), deletedAt: 1_000_000 });
const creates = (p: ReturnType<typeof planAllocations>) => p.actions.filter((a) => a.kind === "create");

describe("records deleted while Allocated", () => {
  it("gives the CIDR back to its node before any newcomer is served", () => {
    const plan = planAllocations(input({ nodes: [node("0-first"), node("a")], deleted: [gone()], monotonicNow: 1_001_000 }));
    expect(creates(plan)).toEqual([
      expect.objectContaining({ node: "0-first", cidr: "10.244.1.0/24" }),
      expect.objectContaining({ node: "a", cidr: "10.244.0.0/24", restored: true, adopted: false }),
    ]);
  });

  it("lets the Node's own podCIDRs bring the same CIDR back through adoption", () => {
    const plan = planAllocations(input({ nodes: [node("a", { podCIDRs: ["10.244.0.0/24"] })], deleted: [gone()], monotonicNow: 1_001_000 }));
    expect(creates(plan)).toEqual([expect.objectContaining({ node: "a", cidr: "10.244.0.0/24", adopted: true })]);
    expect(plan.actions.filter((a) => a.kind === "conflict")).toEqual([]);
  });

  it.each([
    ["its Node is gone", [node("n")]],
    ["its Node was registered again (another uid)", [node("a", { uid: "a-2" }), node("n")]],
    ["its Node is being deleted", [node("a", { deleting: true }), node("n")]],
    ["its Node names another range in podCIDRs", [node("a", { podCIDRs: ["10.244.7.0/24"] }), node("n")]],
    // A record from before podnet kept uids, older than its Node object: made for an earlier Node of the name.
    ["its Node registered after the record, which has no uid", [node("a", { createdAt: 900_000 }), node("n")], { nodeUID: undefined, createdAt: 800_000 }],
  ] as Array<[string, PlannerNode[], Partial<PlannerRecord>?]>)("holds the CIDR through the cooldown when %s, then frees it", (_case, nodes, extra) => {
    const gone = () => ({ record: rec("a", "10.244.0.0/24", { nodeUID: "a", ...extra }), deletedAt: 1_000_000 });
    const during = planAllocations(input({ nodes, deleted: [gone()], monotonicNow: 1_001_000 }));
    expect(creates(during).find((a) => a.node === "n")).toBeDefined();
    expect(creates(during).map((a) => a.cidr)).not.toContain("10.244.0.0/24");
    expect(during.nextCheckAt).toBe(1_060_000);
    const after = planAllocations(input({ nodes, deleted: [gone()], monotonicNow: 1_060_000 }));
    expect(creates(after).map((a) => a.cidr)).toContain("10.244.0.0/24");
    expect(creates(after).some((a) => a.restored)).toBe(false);
  });

  it("leaves a CIDR a live record names again to that record", () => {
    const remade = rec("b", "10.244.0.0/24");
    const plan = planAllocations(input({ nodes: [node("a"), node("b")], records: [remade], deleted: [gone()], monotonicNow: 1_001_000 }));
    expect(creates(plan)).toEqual([expect.objectContaining({ node: "a", cidr: "10.244.1.0/24" })]);
    expect(plan.actions.filter((a) => a.kind === "quarantine")).toEqual([]);
  });

  it.each([
    // A second allocator (kube-controller-manager's --allocate-node-cidrs) filled a joining Node's podCIDRs.
    ["names it in podCIDRs", [node("e"), node("c", { podCIDRs: ["10.244.0.0/24"] })], { restored: true, adopted: false }],
    // Both named it; e held the record (c in conflict), and e's record was deleted.
    ["names it in podCIDRs as e does", [node("e", { podCIDRs: ["10.244.0.0/24"] }), node("c", { podCIDRs: ["10.244.0.0/24"] })], { adopted: true }],
  ] as Array<[string, PlannerNode[], object]>)("gives the CIDR back to its node when another Node whose name sorts first %s: that Node is in conflict", (_case, nodes, how) => {
    const lost = { record: rec("e", "10.244.0.0/24"), deletedAt: 1_000_000 };
    const plan = planAllocations(input({ nodes, pools: [pool(["10.244.0.0/22"])], deleted: [lost], monotonicNow: 1_001_000 }));
    expect(creates(plan)).toEqual([expect.objectContaining({ node: "e", cidr: "10.244.0.0/24", ...how })]);
    expect(plan.actions.filter((a) => a.kind === "conflict")).toEqual([
      expect.objectContaining({ node: "c", reason: "PodCIDRConflict", message: expect.stringContaining("already held by node e") })]);
  });

  it("allocates the node afresh when a record made over the range took it meanwhile", () => {
    const wide = rec("b", "10.244.0.0/23", { phase: "Quarantined" });
    const plan = planAllocations(input({ nodes: [node("a"), node("b")], records: [wide], deleted: [gone()], monotonicNow: 1_001_000 }));
    const forA = creates(plan).filter((a) => a.node === "a");
    expect(forA).toEqual([expect.objectContaining({ cidr: "10.244.2.0/24", adopted: false })]);
    expect(forA[0]).not.toHaveProperty("restored");
  });

  it("gives back one CIDR per family, and holds a second deleted one of the same family", () => {
    const second = { record: rec("a", "10.244.5.0/24", { nodeUID: "a" }), deletedAt: 1_000_500 };
    const plan = planAllocations(input({ nodes: [node("a"), node("n")], deleted: [gone(), second], monotonicNow: 1_001_000 }));
    expect(kinds(plan.actions)).toEqual(["create:10.244.0.0/24", "create:10.244.1.0/24"]);
    expect(creates(plan)[0]).toMatchObject({ node: "a", restored: true });
    expect(planAllocations(input({ nodes: [node("a"), node("n"), node("m"), node("o"), node("p"), node("q")], deleted: [gone(), second], monotonicNow: 1_001_000 }))
      .actions.filter((a) => a.kind === "create").map((a) => a.cidr)).not.toContain("10.244.5.0/24");
  });

  it("holds a CIDR it cannot give back (the pool's node mask changed) through the cooldown", () => {
    const plan = planAllocations(input({ pools: [pool(["10.244.0.0/16"], {}, 25)], nodes: [node("a"), node("b")], deleted: [gone()], monotonicNow: 1_001_000 }));
    expect(creates(plan).some((a) => a.cidr.startsWith("10.244.0."))).toBe(false);
    expect(plan.nextCheckAt).toBe(1_060_000);
  });

  // The record stayed while its Node moved (a live record is kept across a relabel): deleted, it comes back from
  // the pool that holds its slice. Held instead, another Node naming the range adopted it at once (a soak found
  // two Nodes with one range in podCIDRs), and the node's pods lost their routes.
  it.each([
    ["no pool selects the node any more", [pool(["10.244.0.0/16"], { nodeSelector: { rack: "1" } })]],
    ["the node's pool now serves only IPv6", [pool(["10.244.0.0/16"], { nodeSelector: { rack: "1" } }), pool(undefined, { name: "six", nodeSelector: { rack: "2" }, v6: { cidrs: ["fd00:1::/56"], nodePrefix: 64 } })]],
  ])("gives the CIDR back when %s: a Node naming the range is in conflict", (_case, pools) => {
    const nodes = [node("a", { labels: { rack: "2" }, podCIDRs: ["10.244.0.0/24"] }), node("0-b", { labels: { rack: "1" }, podCIDRs: ["10.244.0.0/24"] })];
    const plan = planAllocations(input({ pools, nodes, deleted: [gone()], monotonicNow: 1_001_000 }));
    expect(creates(plan).filter((a) => a.cidr === "10.244.0.0/24")).toEqual([expect.objectContaining({ node: "a", pool: "default", adopted: true })]);
    expect(plan.actions.filter((a) => a.kind === "conflict")).toEqual([
      expect.objectContaining({ node: "0-b", reason: "PodCIDRConflict", message: expect.stringContaining("already held by node a") })]);
  });
});

