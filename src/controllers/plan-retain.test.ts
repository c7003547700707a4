import { describe, expect, it } from "vitest";
import { planAllocations, type PlannerPool } from "./plan.js";
import { input, kinds, node, pool, rec } from "./plan-fixtures.js";

// Pool edits and bad records: what stays routed (retained), what is set aside (quarantined), which of two
// overlapping ranges serves, and where an allocation goes when its pool is replaced.
describe("planAllocations: pool edits and bad records", () => {
  it.each([
    ["outside every pool range", rec("a", "172.16.0.0/24", { phase: undefined }), "OutsidePool"],
    ["wrong slice size", rec("a", "10.244.0.0/23", { phase: undefined }), "WrongSize"],
    ["an unknown pool", rec("a", "10.244.0.0/24", { pool: "nope", phase: undefined }), "PoolNotFound"],
  ])("quarantines a hand-made record with %s and still serves its node", (_case, bad, reason) => {
    const plan = planAllocations(input({ nodes: [node("a")], records: [bad] }));
    expect(plan.actions[0]).toMatchObject({ kind: "quarantine", reason });
    expect(plan.actions.some((a) => a.kind === "create" && a.node === "a")).toBe(true);
  });

  it.each([
    // What b, a newcomer, gets: only where the retained CIDR lies inside a valid range can it be handed out twice.
    ["its range taken out of the pool", [pool(["10.245.0.0/16"])], "OutsidePool", ["10.245.0.0/24"]],
    ["its pool deleted", [], "PoolNotFound", []],
    ["its pool made invalid (a range overlapping the service CIDR)", [pool(["10.0.0.0/8"])], "OutsidePool", []],
    ["the pool's node mask changed", [pool(["10.244.0.0/16"], {}, 23)], "WrongSize", ["10.244.2.0/23"]],
  ] as const)("retains an allocated record after %s: still Allocated, no second CIDR for its node, its CIDR out of circulation", (_case, pools, reason, forB) => {
    const live = rec("a", "10.244.0.0/24");
    const plan = planAllocations(input({ nodes: [node("a"), node("b")], records: [live], pools: [...pools] }));
    expect(plan.retained).toBe(1);
    const retain = plan.actions.filter((a) => a.kind === "retain");
    expect(retain).toEqual([expect.objectContaining({ name: "10-244-0-0-24", reason, message: expect.stringContaining("kept for node a") })]);
    expect(plan.actions.some((a) => a.kind === "quarantine" || ("node" in a && a.node === "a"))).toBe(false);
    expect(plan.actions.filter((a) => a.kind === "create").map((a) => a.cidr)).toEqual(forB);
    // Written once: the next plan, seeing the reason on the record, has nothing more to say about it.
    const again = planAllocations(input({ nodes: [node("a"), node("b")], records: [{ ...live, allocatedReason: reason }], pools: [...pools] }));
    expect(again.actions.some((a) => "name" in a && a.name === live.name)).toBe(false);
  });

  it("hands an allocation whose pool was deleted to the pool whose range now holds it (a pool replaced under another name)", () => {
    const replaced = [pool(["10.50.0.0/16"], { name: "new", nodeSelector: { grp: "x" } })];
    for (const live of [rec("a", "10.50.0.0/24", { pool: "old" }), rec("a", "10.50.0.0/24", { pool: "old", allocatedReason: "PoolNotFound" })]) {
      const plan = planAllocations(input({ nodes: [node("a", { labels: { grp: "x" } }), node("b", { labels: { grp: "x" } })], records: [live], pools: replaced }));
      expect(plan.retained).toBe(0);
      expect(plan.actions.filter((a) => "name" in a && a.name === live.name)).toEqual([
        { kind: "rehome", name: live.name, node: "a", cidr: "10.50.0.0/24", from: "old", pool: "new" },
        { kind: "confirm", name: live.name, node: "a", cidr: "10.50.0.0/24", pool: "new" },
      ]);
      expect(plan.actions.filter((a) => a.kind === "create").map((a) => a.cidr)).toEqual(["10.50.1.0/24"]);
      expect(plan.poolStatuses[0]!.usage[4]!.allocated).toBe(2n);
    }
    // It counts as the new pool's when a third pool overlaps: the pool in use keeps serving, the newcomer is refused.
    const third = [...replaced, pool(["10.50.128.0/17"], { name: "third", nodeSelector: { grp: "y" } })];
    const plan = planAllocations(input({ nodes: [node("a", { labels: { grp: "x" } }), node("b", { labels: { grp: "x" } })], records: [rec("a", "10.50.0.0/24", { pool: "old" })], pools: third }));
    expect(plan.actions.filter((a) => a.kind === "create").map((a) => `${a.node} ${a.cidr} ${a.pool}`)).toEqual(["b 10.50.1.0/24 new"]);
    expect(plan.poolStatuses.find((p) => p.pool === "third")!.conditions.find((c) => c.type === "Valid")).toMatchObject({ status: "False", message: expect.stringContaining("which has nodes allocated from it") });
  });

  it("confirms a retained record again once its pool covers it, and still mirrors its node's IPs meanwhile", () => {
    const retained = rec("a", "10.244.0.0/24", { allocatedReason: "OutsidePool" });
    expect(kinds(planAllocations(input({ nodes: [node("a")], records: [retained] })).actions)).toEqual(["confirm:10.244.0.0/24"]);
    const moved = planAllocations(input({ nodes: [node("a", { nodeIPs: ["192.168.9.9"] })], records: [{ ...retained, allocatedReason: "PoolNotFound" }], pools: [] }));
    expect(moved.actions).toEqual([expect.objectContaining({ kind: "updateNodeIPs", name: "10-244-0-0-24", nodeIPs: ["192.168.9.9"] })]);
  });

  it.each([
    ["overlapping pools", [pool(["10.244.0.0/16"]), { ...pool(["10.244.128.0/17"]), name: "other" }], "overlaps"],
    ["a node mask larger than the range", [pool(["10.244.0.0/24"], {}, 16)], "does not fit"],
    ["a /32 node mask from before the schema refused it (no address left for pods)", [pool(["10.244.0.0/24"], {}, 32)], "must be /24–/30: a node's bridge takes one address"],
    ["a /127 node mask", [pool(undefined, { v6: { cidrs: ["fd00:10::/64"], nodePrefix: 127 } })], "must be /64–/126"],
    ["a range overlapping the service CIDR", [pool(["10.96.0.0/16"])], "service CIDR"],
    ["host bits in a range", [pool(["10.244.1.0/16"])], "host bits"],
    ["a loopback range", [pool(["127.0.0.0/16"])], "overlaps 127.0.0.0/8 (loopback), which pods cannot use"],
    ["a link-local range", [pool(["169.254.0.0/16"])], "169.254.0.0/16 (link-local)"],
    ["a range around a multicast block", [pool(["192.0.0.0/2"], {}, 8)], "224.0.0.0/4 (multicast)"],
    // ::/64 would be named "---64", which no API server takes; fe80::/64 is every link's own prefix.
    ["an IPv6 range at ::", [pool(undefined, { v6: { cidrs: ["::/56"], nodePrefix: 64 } })], "::/8 (reserved"],
    ["an IPv6 link-local range", [pool(undefined, { v6: { cidrs: ["fe80::/56"], nodePrefix: 64 } })], "fe80::/10 (link-local)"],
  ])("reports %s on the pool and allocates nothing from the bad range", (_case, pools, message) => {
    const plan = planAllocations(input({ nodes: [node("a")], pools }));
    const valid = plan.poolStatuses.find((p) => p.pool === "default")!.conditions.find((c) => c.type === "Valid")!;
    expect(valid.status).toBe("False");
    expect(valid.message).toContain(message);
    expect(plan.actions.some((a) => a.kind === "create" && a.pool === "default")).toBe(false);
  });

  it("keeps a range in use serving when a new pool overlaps it, and refuses the new pool's range", () => {
    const teamX: PlannerPool = { name: "team-x", nodeSelector: { team: "x" }, v4: { cidrs: ["10.244.200.0/24"], nodePrefix: 26 } };
    const nodes = [node("a"), node("n"), node("x", { labels: { team: "x" } })];
    const plan = planAllocations(input({ nodes, records: [rec("a", "10.244.0.0/24")], pools: [pool(["10.244.0.0/16"]), teamX] }));
    expect(kinds(plan.actions)).toEqual(["create:10.244.1.0/24", "exhausted:x"]);
    const status = (name: string, type: string) => plan.poolStatuses.find((p) => p.pool === name)!.conditions.find((c) => c.type === type)!;
    expect(status("default", "Valid").status).toBe("True");
    expect(status("team-x", "Valid")).toMatchObject({ status: "False", message: "10.244.200.0/24 overlaps 10.244.0.0/16 of pool default, which has nodes allocated from it" });
    expect(status("team-x", "Exhausted")).toMatchObject({ status: "True", message: "1 node(s) wait for a CIDR; a family has no valid range: fix what the Valid condition names" });
    // A hand-made record in team-x's range (no status: not an allocation) changes nothing of that.
    const stray = rec("x", "10.244.200.0/26", { pool: "team-x", phase: undefined });
    const withStray = planAllocations(input({ nodes, records: [rec("a", "10.244.0.0/24"), stray], pools: [pool(["10.244.0.0/16"]), teamX] }));
    expect(withStray.actions.filter((a) => a.kind === "retain" || (a.kind === "quarantine" && a.name !== stray.name))).toEqual([]);
    expect(withStray.poolStatuses.find((p) => p.pool === "default")!.conditions.find((c) => c.type === "Valid")!.status).toBe("True");
    // Both pools in use (or neither): nothing tells which one is meant, so both ranges are refused.
    const both = planAllocations(input({ nodes, records: [rec("a", "10.244.0.0/24"), rec("x", "10.244.200.0/26", { pool: "team-x" })], pools: [pool(["10.244.0.0/16"]), teamX] }));
    expect(both.actions.filter((a) => a.kind === "create")).toEqual([]);
    expect(both.poolStatuses.map((p) => p.conditions.find((c) => c.type === "Valid")!.status)).toEqual(["False", "False"]);
  });

  it("keeps a pool in use serving when a new pool covers it and a gone pool's leftover allocation (one of its own beats one re-homed)", () => {
    const x: PlannerPool = { name: "x", nodeSelector: {}, v4: { cidrs: ["10.0.0.0/16"], nodePrefix: 24 } };
    const wide: PlannerPool = { name: "new", nodeSelector: { grp: "w" }, v4: { cidrs: ["10.0.0.0/15"], nodePrefix: 24 } };
    const records = [rec("a", "10.0.0.0/24", { pool: "x" }), rec("b", "10.1.0.0/24", { pool: "old" })];
    const plan = planAllocations(input({ nodes: [node("a"), node("b"), node("c")], records, pools: [x, wide] }));
    expect(plan.poolStatuses.find((p) => p.pool === "x")!.conditions.find((c) => c.type === "Valid")).toMatchObject({ status: "True" });
    expect(plan.actions.filter((a) => a.kind === "create").map((a) => `${a.node} ${a.cidr}`)).toEqual(["c 10.0.1.0/24"]);
    expect(plan.actions.filter((a) => a.kind === "retain").map((a) => `${a.name} ${a.reason}`)).toEqual(["10-1-0-0-24 PoolNotFound"]);
  });

  // Status restored from a backup can say Allocated of records the controller never made. Agents route neither of
  // two overlapping Allocated records, and kube-proxy sees one range per family: one of them must be set aside.
  it.each([
    ["a /16 of a gone pool over a live slice (its name sorts first)", [rec("f", "10.244.2.0/24"), rec("a", "10.244.0.0/16", { pool: "gone" })], "10-244-0-0-16", "Overlapping"],
    ["a /16 of a gone pool over a live slice (the slice's record older)", [rec("f", "10.244.2.0/24", { createdAt: 1 }), rec("a", "10.244.0.0/16", { pool: "gone", createdAt: 2 })], "10-244-0-0-16", "Overlapping"],
    ["a /23 of the pool's over a gone pool's slice it would take over", [rec("w", "10.244.0.0/23"), rec("a", "10.244.0.0/24", { pool: "old" })], "10-244-0-0-23", "Overlapping"],
    ["a wrong-size second IPv4 CIDR of a node (its name sorts first)", [rec("a", "10.244.6.0/24"), rec("a", "10.244.4.0/23")], "10-244-4-0-23", "DuplicateForNode"],
    ["a wrong-size second IPv4 CIDR of a node (its name sorts last)", [rec("a", "10.244.0.0/24"), rec("a", "10.244.4.0/23")], "10-244-4-0-23", "DuplicateForNode"],
  ])("quarantines, rather than retains, an Allocated record its pool does not cover that is %s", (_case, records, name, reason) => {
    const plan = planAllocations(input({ nodes: [node("a"), node("f"), node("w")], records }));
    expect(plan.actions.filter((a) => a.kind === "quarantine" || a.kind === "retain")).toEqual([expect.objectContaining({ kind: "quarantine", name, reason })]);
    expect(plan.retained).toBe(0);
  });

  it.each([
    ["two /25s of an earlier mask in one /24 slice", [rec("x", "10.244.0.0/25"), rec("y", "10.244.0.128/25")], [pool(["10.244.0.0/16"])]],
    ["a /25 and a /24 of two earlier masks in one /23 slice", [rec("x", "10.244.0.0/25"), rec("y", "10.244.1.0/24")], [pool(["10.244.0.0/16"], {}, 23)]],
    ["two allocations of a deleted pool", [rec("x", "10.50.0.0/24", { pool: "old" }), rec("y", "10.50.1.0/24", { pool: "old" })], []],
  ])("retains side by side %s (no two of them share an address)", (_case, records, pools) => {
    const plan = planAllocations(input({ nodes: [node("x"), node("y")], records, pools }));
    expect(plan.actions.filter((a) => a.kind === "quarantine")).toEqual([]);
    expect(plan.retained).toBe(2);
  });

  it.each([
    ["its pool no longer selects it", [pool(["10.244.0.0/16"], { nodeSelector: { rack: "1" } }, 25)]],
    ["its pool is deleted (retained)", []],
  ])("fills a Node's podCIDRs from the record it holds when %s before the fill", (_case, pools) => {
    const filling = { cooldownMs: 60_000, serviceCIDRs: [], fillNodePodCIDRs: true };
    const plan = planAllocations(input({ nodes: [node("b")], records: [rec("b", "10.244.0.0/25")], pools, config: filling }));
    expect(plan.actions.filter((a) => a.kind === "setNodePodCIDRs" || a.kind === "conflict")).toEqual([{ kind: "setNodePodCIDRs", node: "b", nodeUID: "b", cidrs: ["10.244.0.0/25"] }]);
    // Filled, nothing more; another allocator's range there is a mismatch, as on any Node.
    expect(planAllocations(input({ nodes: [node("b", { podCIDRs: ["10.244.0.0/25"] })], records: [rec("b", "10.244.0.0/25")], pools, config: filling })).actions
      .filter((a) => a.kind === "setNodePodCIDRs" || a.kind === "conflict")).toEqual([]);
    expect(planAllocations(input({ nodes: [node("b", { podCIDRs: ["10.9.0.0/24"] })], records: [rec("b", "10.244.0.0/25")], pools, config: filling })).actions
      .filter((a) => a.kind === "conflict").map((a) => a.kind === "conflict" && a.reason)).toEqual(["PodCIDRMismatch"]);
  });

  it("re-homes a gone pool's second CIDR of a family for a Node, and quarantines it there as any second one", () => {
    const records = [rec("a", "10.50.0.0/24", { pool: "new" }), rec("a", "10.50.1.0/24", { pool: "old" })];
    const plan = planAllocations(input({ nodes: [node("a")], records, pools: [pool(["10.50.0.0/16"], { name: "new" })], config: { cooldownMs: 60_000, serviceCIDRs: [], fillNodePodCIDRs: true } }));
    expect(plan.actions.filter((a) => "name" in a && a.name === "10-50-1-0-24").map((a) => `${a.kind} ${"reason" in a ? a.reason : ""}`)).toEqual(["rehome ", "quarantine DuplicateForNode"]);
    expect(plan.actions.filter((a) => a.kind === "setNodePodCIDRs")).toEqual([expect.objectContaining({ cidrs: ["10.50.0.0/24"] })]);
  });
});

describe("pool condition PodAddresses: do the node slices hold as many addresses as Nodes admit pods?", () => {
  const podAddresses = (pools: Parameters<typeof input>[0]["pools"], maxPods?: number) =>
    planAllocations(input({ nodes: [node("a", maxPods === undefined ? {} : { maxPods }), node("b", { maxPods: 30 })], pools })).poolStatuses[0]!.conditions.find((c) => c.type === "PodAddresses")!;
  it.each([
    ["a /24 for 110 pods", [pool(["10.244.0.0/16"])], 110, "True", "each node's /24 holds 253 pod addresses; its Nodes admit at most 110 pods"],
    ["a /26 for 110 pods (kubelet's default)", [pool(["10.244.0.0/16"], {}, 26)], 110, "False", "each node's IPv4 /26 holds 61 pod addresses, but node a admits 110 pods"],
    ["a /26 for Nodes of 30 pods", [pool(["10.244.0.0/16"], {}, 26)], undefined, "True", "/26 holds 61 pod addresses; its Nodes admit at most 30 pods"],
    ["IPv6 /120 beside IPv4 /24, 300 pods", [pool(["10.244.0.0/16"], { v6: { cidrs: ["fd00:10::/112"], nodePrefix: 120 } })], 300, "False", "IPv4 /24 holds 253 pod addresses, but node a admits 300 pods"],
    // 2^64 − 2 exactly, not the float 18446744073709552000.
    ["IPv6-only /64 slices", [pool(undefined, { v6: { cidrs: ["fd00:10::/56"], nodePrefix: 64 } })], 110, "True", "each node's /64 holds 18446744073709551614 pod addresses; its Nodes admit at most 110 pods"],
    ["IPv6 /64 beside IPv4 /26, 110 pods: the IPv4 slice is the smaller", [pool(["10.244.0.0/16"], { v6: { cidrs: ["fd00:10::/56"], nodePrefix: 64 } }, 26)], 110, "False",
      "each node's IPv4 /26 holds 61 pod addresses, but node a admits 110 pods"],
  ] as const)("%s", (_case, pools, maxPods, status, message) => {
    const c = podAddresses([...pools], maxPods);
    expect(c.status).toBe(status);
    expect(c.message).toContain(message);
  });
  it.each([
    ["before a selected Node reports its capacity", [node("a")]],
    ["while it selects no Node", []],
  ])("says it does not know (Unknown, not True) %s", (_case, nodes) => {
    const c = planAllocations(input({ nodes })).poolStatuses[0]!.conditions.find((x) => x.type === "PodAddresses")!;
    expect(c).toMatchObject({ status: "Unknown", reason: "NoNodeCapacityKnown", message: "no selected Node reports its pod capacity yet" });
  });
  it.each([
    ["its only range overlaps the service CIDR", [pool(["10.96.0.0/16"])]],
    ["both families invalid", [pool(["10.96.0.0/16"], { v6: { cidrs: ["fe80::/56"], nodePrefix: 64 } })]],
  ])("says there is no valid range to size when %s, though its Nodes report their capacity", (_case, pools) => {
    expect(podAddresses([...pools], 110)).toMatchObject({ status: "Unknown", reason: "NoValidRange", message: "no valid range to size: fix what the Valid condition names" });
  });
});
