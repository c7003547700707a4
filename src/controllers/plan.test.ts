import { describe, expect, it } from "vitest";
import { planAllocations, type PlannerInput, type PlannerNode, type PlannerPool, type PlannerRecord } from "./plan.js";
import { input, kinds, node, pool, rec } from "./plan-fixtures.js";

describe("planAllocations", () => {
  it("allocates the lowest free /24 per node, in node-name order", () => {
    const plan = planAllocations(input({ nodes: [node("b"), node("a")] }));
    expect(kinds(plan.actions)).toEqual(["create:10.244.0.0/24", "create:10.244.1.0/24"]);
    expect(plan.actions[0]).toMatchObject({ node: "a", adopted: false });
  });

  it("a Node being deleted (drained behind a finalizer) keeps its CIDR routed and out of circulation until the object is gone", () => {
    const draining = node("a", { deleting: true });
    const held = rec("a", "10.244.0.0/24");
    for (const now of [1_000_000, 1_061_000, 1_600_000]) { // long past a cooldown, still there
      const plan = planAllocations(input({ nodes: [draining, node("n2")], records: [held], now }));
      expect(kinds(plan.actions)).toEqual(["create:10.244.1.0/24"]); // only the newcomer, and never a's range
    }
    // A deleting Node without a CIDR gets none; once its object is gone the usual release follows.
    expect(planAllocations(input({ nodes: [node("b", { deleting: true })] })).actions).toEqual([]);
    expect(kinds(planAllocations(input({ nodes: [node("n2")], records: [held] })).actions)).toEqual(["release:10-244-0-0-24", "create:10.244.1.0/24"]);
  });

  it("leaves out InternalIPs the NodeCIDR schema would refuse (so the create succeeds) and warns the Node", () => {
    const plan = planAllocations(input({ nodes: [node("a", { nodeIPs: ["169.254.3.3", "192.168.7.7", "fe80::1"] })] }));
    expect(plan.actions).toEqual([
      expect.objectContaining({ kind: "conflict", node: "a", reason: "UnusableNodeIP", message: expect.stringContaining("node IP 169.254.3.3, fe80::1 left out") }),
      expect.objectContaining({ kind: "create", node: "a", nodeIPs: ["192.168.7.7"] }),
    ]);
    const many = Array.from({ length: 10 }, (_, i) => `192.168.8.${i + 1}`);
    expect(planAllocations(input({ nodes: [node("b", { nodeIPs: many })] })).actions.find((a) => a.kind === "create")).toMatchObject({ nodeIPs: many.slice(0, 8) });
    // Mirrored in the spelling the kernel prints (agents compare the two), without a warning.
    expect(planAllocations(input({ nodes: [node("c", { nodeIPs: ["FD00:82:0::50"] })] })).actions).toEqual([expect.objectContaining({ kind: "create", nodeIPs: ["fd00:82::50"] })]);    // One address in two spellings is mirrored once; an IPv4-mapped one (isIP() refuses it) is left out, with a warning.
    expect(planAllocations(input({ nodes: [node("d", { nodeIPs: ["192.168.7.9", "fd00:0077:0000::0013", "fd00:77::13"] })] })).actions)
      .toEqual([expect.objectContaining({ kind: "create", nodeIPs: ["192.168.7.9", "fd00:77::13"] })]);
    expect(planAllocations(input({ nodes: [node("e", { nodeIPs: ["192.168.7.8", "192.168.7.8"] })] })).actions)
      .toEqual([expect.objectContaining({ kind: "create", nodeIPs: ["192.168.7.8"] })]);
    expect(planAllocations(input({ nodes: [node("f", { nodeIPs: ["::ffff:192.168.78.14", "fd00:78::14"] })] })).actions).toEqual([
      expect.objectContaining({ kind: "conflict", node: "f", reason: "UnusableNodeIP", message: expect.stringContaining("node IP ::ffff:192.168.78.14 left out") }),
      expect.objectContaining({ kind: "create", nodeIPs: ["fd00:78::14"] }),
    ]);
  });

  it("keeps existing allocations and allocates around them", () => {
    const plan = planAllocations(input({ nodes: [node("a"), node("b")], records: [rec("a", "10.244.0.0/24")] }));
    expect(kinds(plan.actions)).toEqual(["create:10.244.1.0/24"]);
  });

  it("is deterministic: the same state gives the same plan", () => {
    const state = input({ nodes: ["n3", "n1", "n2"].map((n) => node(n)), records: [rec("n2", "10.244.5.0/24")] });
    expect(planAllocations(state)).toEqual(planAllocations(structuredClone(state)));
  });

  const dualStack: PlannerPool = { name: "default", nodeSelector: {}, v4: { cidrs: ["10.244.0.0/16"], nodePrefix: 24 }, v6: { cidrs: ["fd00:10:244::/56"], nodePrefix: 64 } };
  const filling = { cooldownMs: 0, serviceCIDRs: [], fillNodePodCIDRs: true };

  it("gives a dual-stack node one CIDR per family, then (once the records exist) fills podCIDRs IPv4 first", () => {
    const plan = planAllocations(input({ nodes: [node("a")], pools: [dualStack], config: filling }));
    // Not in the same plan: a create may still fail, and spec.podCIDRs cannot be changed once written.
    expect(kinds(plan.actions)).toEqual(["create:10.244.0.0/24", "create:fd00:10:244::/64"]);
    const records = [rec("a", "10.244.0.0/24"), rec("a", "fd00:10:244::/64")];
    const next = planAllocations(input({ nodes: [node("a")], records, pools: [dualStack], config: filling }));
    expect(next.actions).toEqual([{ kind: "setNodePodCIDRs", node: "a", nodeUID: "a", cidrs: ["10.244.0.0/24", "fd00:10:244::/64"] }]);
    // An unconfirmed record (its creator died before the status write) exists too: confirmed and filled together.
    const unconfirmed = planAllocations(input({ nodes: [node("a")], records: records.map((r) => ({ ...r, phase: undefined })), pools: [dualStack], config: filling }));
    expect(kinds(unconfirmed.actions)).toEqual(["confirm:10.244.0.0/24", "confirm:fd00:10:244::/64", "setNodePodCIDRs:a"]);
  });

  it("leaves podCIDRs unfilled while a family the pool declares has no valid range (the field cannot be completed later)", () => {
    const other: PlannerPool = { name: "edge", nodeSelector: { zone: "edge" }, v6: { cidrs: ["fd00:10:244::/48"], nodePrefix: 64 } };
    const records = [rec("a", "10.244.0.0/24")];
    const plan = planAllocations(input({ nodes: [node("a")], records, pools: [dualStack, other], config: filling }));
    // IPv6 ranges overlap each other (neither in use): nothing to allocate, nothing to fill; the node is told.
    expect(plan.actions).toEqual([expect.objectContaining({ kind: "exhausted", node: "a", family: 6, message: expect.stringContaining("no valid IPv6 range") })]);
    expect(plan.poolStatuses.find((p) => p.pool === "default")!.conditions.find((c) => c.type === "Exhausted")).toMatchObject({ status: "True" });
    const fixed = planAllocations(input({ nodes: [node("a")], records, pools: [dualStack], config: filling }));
    expect(kinds(fixed.actions)).toEqual(["create:fd00:10:244::/64"]);
  });

  it("leaves podCIDRs unfilled while a family the pool declares is exhausted: IPv4 alone could never get IPv6 added", () => {
    const oneV6Slice: PlannerPool = { ...dualStack, v6: { cidrs: ["fd00:10:244::/64"], nodePrefix: 64 } };
    const records = [rec("a", "10.244.0.0/24"), rec("b", "10.244.1.0/24"), rec("b", "fd00:10:244::/64")];
    const plan = planAllocations(input({ nodes: [node("a"), node("b", { podCIDRs: ["10.244.1.0/24", "fd00:10:244::/64"] })], records, pools: [oneV6Slice], config: filling }));
    expect(plan.actions).toEqual([expect.objectContaining({ kind: "exhausted", node: "a", family: 6 })]);
  });

  it("hands a Node its preset podCIDRs before any newcomer gets the lowest free range, whatever the names' order", () => {
    const plan = planAllocations(input({ nodes: [node("a-new"), node("b-old", { podCIDRs: ["10.244.0.0/24"] })], config: filling }));
    expect(plan.actions).toEqual([
      expect.objectContaining({ kind: "create", node: "a-new", cidr: "10.244.1.0/24", adopted: false }),
      expect.objectContaining({ kind: "create", node: "b-old", cidr: "10.244.0.0/24", adopted: true }),
    ]);
    // A pool grown to cover a waiting preset: the preset node gets its range, the waiting newcomers others.
    const waiting = ["w1", "w2", "w3", "w4"].map((n) => node(n));
    const grown = planAllocations(input({ nodes: [...waiting, node("zeta", { podCIDRs: ["10.245.3.0/24"] })], pools: [pool(["10.245.0.0/16"])], config: filling }));
    expect(grown.actions.filter((a) => a.kind === "create").map((a) => `${a.kind === "create" && a.node}=${a.kind === "create" && a.cidr}`))
      .toEqual(["w1=10.245.0.0/24", "w2=10.245.1.0/24", "w3=10.245.2.0/24", "w4=10.245.4.0/24", "zeta=10.245.3.0/24"]);
  });

  it("a stray hand-made record never takes a range from a live allocation, whatever its name", () => {
    const nodes = [node("n1", { podCIDRs: ["10.244.0.0/24"] }), node("n2", { podCIDRs: ["10.244.1.0/24"] })];
    const live = [rec("n1", "10.244.0.0/24"), rec("n2", "10.244.1.0/24")];
    for (const stray of [rec("ghost", "10.244.0.0/16", { phase: undefined }), rec("n1", "10.244.0.0/23", { phase: undefined })]) {
      const plan = planAllocations(input({ nodes, records: [...live, stray] }));
      expect(plan.actions.filter((a) => a.kind === "quarantine" || a.kind === "conflict").map((a) => "name" in a ? a.name : a.node)).not.toContain("10-244-0-0-24");
      expect(kinds(plan.actions).filter((k) => k.startsWith("quarantine") || k.startsWith("conflict"))).toEqual(
        stray.nodeName === "ghost" ? [] : ["quarantine:10-244-0-0-23"]);
    }
    // A second, unconfirmed record for a node loses to the node's live one even when its name sorts first.
    const second = planAllocations(input({ nodes: [node("n1", { podCIDRs: ["10.244.5.0/24"] })], records: [rec("n1", "10.244.5.0/24"), rec("n1", "10.244.10.0/24", { phase: undefined })] }));
    expect(second.actions).toEqual([expect.objectContaining({ kind: "quarantine", name: "10-244-10-0-24", reason: "DuplicateForNode" })]);
  });

  it("reports exhaustion per node and on the pool; a grown pool serves the waiting nodes", () => {
    const nodes = ["n1", "n2", "n3", "n4", "n5", "n6"].map((n) => node(n));
    const small = planAllocations(input({ nodes, pools: [pool(["10.200.0.0/22"])] }));
    expect(small.actions.filter((a) => a.kind === "exhausted").map((a) => "node" in a && a.node)).toEqual(["n5", "n6"]);
    expect(small.poolStatuses[0]!.conditions.find((c) => c.type === "Exhausted")!.status).toBe("True");
    expect(small.poolStatuses[0]!.usage[4]).toEqual({ size: 4n, allocated: 4n, free: 0n });
    const grown = planAllocations(input({ nodes, pools: [pool(["10.200.0.0/22", "10.200.8.0/23"])] }));
    expect(grown.actions.filter((a) => a.kind === "create")).toHaveLength(6);
  });

  it("adopts a preset podCIDR; reports one held by another node or outside every pool, never overwriting", () => {
    const plan = planAllocations(input({
      nodes: [node("a", { podCIDRs: ["10.244.7.0/24"] }), node("b", { podCIDRs: ["10.244.7.0/24"] }), node("c", { podCIDRs: ["172.16.0.0/24"] })],
    }));
    expect(plan.actions).toEqual([
      expect.objectContaining({ kind: "create", node: "a", cidr: "10.244.7.0/24", adopted: true }),
      expect.objectContaining({ kind: "conflict", node: "b", reason: "PodCIDRConflict" }),
      expect.objectContaining({ kind: "conflict", node: "c", reason: "PodCIDROutsidePool" }),
      // And a condition on each Node, which outlives the Events (kubectl describe node).
      expect.objectContaining({ kind: "nodeCondition", node: "b", status: "True", reason: "PodCIDRConflict", message: expect.stringContaining("held by node a") }),
      expect.objectContaining({ kind: "nodeCondition", node: "c", status: "True", reason: "PodCIDROutsidePool" }),
    ]);
    expect((plan.actions[1] as { message: string }).message).toContain("held by node a");
  });

  it("never hands another node a range a Node names in spec.podCIDRs, adopted or not", () => {
    const created = (nodes: PlannerNode[], extra: Partial<PlannerInput> = {}) =>
      planAllocations(input({ nodes, ...extra })).actions.filter((a) => a.kind === "create" && !a.adopted).map((a) => "cidr" in a && a.cidr);
    const newcomers = [node("x1"), node("x2")];
    // Another allocator set a range other than podnet's record: both are in use on that node.
    expect(created([node("a", { podCIDRs: ["10.244.1.0/24"] }), ...newcomers], { records: [rec("a", "10.244.0.0/24")] })).toEqual(["10.244.2.0/24", "10.244.3.0/24"]);
    // A /23 in a /24 pool covers two slices; an entry with host bits set is still that node's /24.
    expect(created([node("a", { podCIDRs: ["10.244.0.0/23"] }), ...newcomers])).toEqual(["10.244.2.0/24", "10.244.3.0/24"]);
    expect(created([node("a", { podCIDRs: ["10.244.0.5/24"] }), ...newcomers])).toEqual(["10.244.1.0/24", "10.244.2.0/24"]);
    // A draining Node without a record, and a Node no pool selects.
    expect(created([node("a", { podCIDRs: ["10.244.0.0/24"], deleting: true }), ...newcomers])).toEqual(["10.244.1.0/24", "10.244.2.0/24"]);
    const edge = pool(["10.244.0.0/16"], { name: "edge", nodeSelector: { role: "edge" } });
    expect(created([node("a", { podCIDRs: ["10.244.0.0/24"] }), node("e", { labels: { role: "edge" } })], { pools: [edge] })).toEqual(["10.244.1.0/24"]);
    // An IPv6 range on a Node whose pool has no IPv6 range, while another pool's node asks for one.
    const v6 = { name: "v6", nodeSelector: { stack: "v6" }, v6: { cidrs: ["fd00::/56"], nodePrefix: 64 } };
    expect(created([node("a", { podCIDRs: ["fd00::/64"] }), node("b", { labels: { stack: "v6" } })], { pools: [pool(["10.244.0.0/16"]), v6] })).toEqual(["10.244.0.0/24", "fd00:0:0:1::/64"]);
    // A slice holding a Node's own address (a pool over the node network) goes to nobody.
    expect(created([node("a", { nodeIPs: ["10.244.0.7"] }), node("b", { nodeIPs: ["10.244.1.9"] }), ...newcomers])).toEqual(["10.244.2.0/24", "10.244.3.0/24", "10.244.4.0/24", "10.244.5.0/24"]);
    // Adoption is unchanged: a range a Node may take is taken, not merely kept from others.
    expect(kinds(planAllocations(input({ nodes: [node("a", { podCIDRs: ["10.244.9.0/24"] })] })).actions)).toEqual(["create:10.244.9.0/24"]);
  });

  it("treats a Node registered again under its name (another uid) as a new holder: the old CIDR is released, the Node gets another", () => {
    const old = rec("a", "10.244.0.0/24", { nodeUID: "uid-1" });
    const again = planAllocations(input({ nodes: [node("a", { uid: "uid-2" })], records: [old] }));
    expect(kinds(again.actions)).toEqual(["release:10-244-0-0-24", "create:10.244.1.0/24"]);
    expect(again.actions[1]).toMatchObject({ node: "a", nodeUID: "uid-2" });
    // The same Node is left as it is.
    expect(planAllocations(input({ nodes: [node("a", { uid: "uid-1" })], records: [old] })).actions).toEqual([]);
  });

  it("of two live records of one family for a Node that names neither, the older keeps its range, as agents' CNI config does; the other is quarantined", () => {
    const older = rec("a", "10.244.1.0/24", { createdAt: 100_000 });
    const later = rec("a", "10.244.0.0/24", { createdAt: 200_000 }); // sorts first by name
    const quarantined = planAllocations(input({ nodes: [node("a")], records: [later, older] })).actions.filter((x) => x.kind === "quarantine");
    expect(quarantined).toEqual([expect.objectContaining({ name: "10-244-0-0-24", reason: "DuplicateForNode" })]);
  });

  it("a record made before podnet kept uids learns its Node's, unless that Node object is younger than the record (registered again since)", () => {
    const legacy = rec("a", "10.244.0.0/24", { nodeUID: undefined, createdAt: 500_000 });
    for (const createdAt of [400_000, 500_000, undefined]) {
      expect(planAllocations(input({ nodes: [node("a", { uid: "uid-2", ...(createdAt === undefined ? {} : { createdAt }) })], records: [legacy] })).actions)
        .toEqual([{ kind: "stampNodeUID", name: "10-244-0-0-24", nodeUID: "uid-2" }]);
    }
    const reborn = planAllocations(input({ nodes: [node("a", { uid: "uid-3", createdAt: 600_000 })], records: [legacy] }));
    expect(kinds(reborn.actions)).toEqual(["release:10-244-0-0-24", "create:10.244.1.0/24"]);
    // Within the clock skew two API servers may have, it is taken as the same Node.
    expect(kinds(planAllocations(input({ nodes: [node("a", { uid: "uid-3", createdAt: 501_500 })], records: [legacy] })).actions)).toEqual(["stampNodeUID:10-244-0-0-24"]);
  });

  it("releases a deleted node's CIDR, keeps it out of circulation during the cooldown, deletes it after", () => {
    const released = rec("gone", "10.244.0.0/24", { phase: "Released", releasedAt: 990_000, releaseSeenAt: 990_000 });
    const during = planAllocations(input({ nodes: [node("new")], records: [released] }));
    expect(kinds(during.actions)).toEqual(["create:10.244.1.0/24"]);
    expect(during.nextCheckAt).toBe(1_050_000);
    const after = planAllocations(input({ nodes: [node("new")], records: [released], monotonicNow: 1_050_000 }));
    expect(kinds(after.actions)).toEqual(["delete:10-244-0-0-24", "create:10.244.1.0/24"]);
    const justGone = planAllocations(input({ records: [rec("gone", "10.244.0.0/24")] }));
    expect(kinds(justGone.actions)).toEqual(["release:10-244-0-0-24"]);
  });

  // The cooldown runs from when this replica saw the release, on its monotonic clock (monotonicNow 1,000,000 here,
  // cooldown 60 s); releasedAt, stamped on whichever replica's wall clock released it, times nothing.
  it.each([
    ["seen 10 s ago: held 50 s more", { releaseSeenAt: 990_000 }, ["create:10.244.1.0/24"], 1_050_000],
    ["seen a full cooldown ago: deleted", { releaseSeenAt: 940_000 }, ["delete:10-244-0-0-24", "create:10.244.1.0/24"], undefined],
    ["not seen before (a replica started since): held a full cooldown from now", {}, ["create:10.244.1.0/24"], 1_060_000],
    // A successor whose wall clock is 2 min ahead of its predecessor's read this release as long past.
    ["stamped 2 min before on the wall clock, seen just now: held", { releasedAt: Date.UTC(2026, 0, 1), releaseSeenAt: 1_000_000 }, ["create:10.244.1.0/24"], 1_060_000],
    // Stamped by a clock ahead, or edited: 30 days ahead on a lagging successor's clock held the CIDR for as long.
    ["stamped 30 days ahead, seen a full cooldown ago: deleted", { releasedAt: 1_000_000 + 30 * 86_400_000, releaseSeenAt: 940_000 }, ["delete:10-244-0-0-24", "create:10.244.1.0/24"], undefined],
    // Released with no time (a hand edit, a controller from before the field): stamped, and held from its next sight.
    ["without releasedAt, seen long ago: stamped, and held from now", { releasedAt: undefined, releaseSeenAt: 0 }, ["release:10-244-0-0-24", "create:10.244.1.0/24"], 1_060_000],
  ] as Array<[string, Partial<PlannerRecord>, string[], number | undefined]>)("a released CIDR's cooldown: %s", (_case, times, expected, nextCheckAt) => {
    const released = rec("gone", "10.244.0.0/24", { phase: "Released", releasedAt: 990_000, ...times });
    const plan = planAllocations(input({ nodes: [node("new")], records: [released], now: Date.UTC(2026, 0, 1, 0, 2) }));
    expect(kinds(plan.actions)).toEqual(expected);
    expect(plan.nextCheckAt).toBe(nextCheckAt);
  });

  // Handed out in the plan that deletes its record, the CIDR's create (the same object name) went out beside the
  // delete and met the old object: AlreadyExists, counted as an error, and a second of backoff for the waiting Node.
  it("a CIDR whose cooldown ends is deleted in one plan and handed out in the next, never both at once", () => {
    const full = [pool(["10.244.0.0/24"])];
    const released = rec("gone", "10.244.0.0/24", { phase: "Released", releasedAt: 900_000, releaseSeenAt: 900_000 });
    const deleting = planAllocations(input({ nodes: [node("waiting")], records: [released], pools: full }));
    expect(kinds(deleting.actions).filter((k) => !k.startsWith("exhausted"))).toEqual(["delete:10-244-0-0-24"]);
    const next = planAllocations(input({ nodes: [node("waiting")], records: [], pools: full }));
    expect(kinds(next.actions)).toEqual(["create:10.244.0.0/24"]);
  });

  it.each([
    ["allocated, its spec patched since its status: the status again, at the new generation", { phase: "Allocated", statusBehind: true }, ["refreshStatus:10-244-0-0-24"]],
    ["allocated and current: nothing", { phase: "Allocated" }, []],
    ["unconfirmed and behind: the confirm writes the status anyway", { phase: undefined, statusBehind: true }, ["confirm:10.244.0.0/24"]],
  ] as Array<[string, Partial<PlannerRecord>, string[]]>)("a record's observedGeneration: %s", (_case, extra, expected) => {
    const plan = planAllocations(input({ nodes: [node("a")], records: [rec("a", "10.244.0.0/24", { allocatedReason: "Allocated", ...extra })] }));
    expect(kinds(plan.actions)).toEqual(expected);
  });

  it("warns both Nodes that share an InternalIP, and still allocates to both", () => {
    const plan = planAllocations(input({ nodes: [node("old", { nodeIPs: ["192.168.0.7"] }), node("new", { nodeIPs: ["192.168.0.7"] }), node("c")] }));
    expect(plan.actions.filter((a) => a.kind === "create")).toHaveLength(3);
    expect(plan.actions.filter((a) => a.kind === "conflict")).toEqual([
      expect.objectContaining({ node: "new", reason: "DuplicateNodeIP", message: expect.stringContaining("shares node IP 192.168.0.7 with node old") }),
      expect.objectContaining({ node: "old", reason: "DuplicateNodeIP", message: expect.stringContaining("with node new") }),
    ]);
  });

  it("quarantines a second CIDR of one family for the same node, never the one its spec.podCIDRs names", () => {
    const plan = planAllocations(input({ nodes: [node("a")], records: [rec("a", "10.244.0.0/24"), rec("a", "10.244.1.0/24")] }));
    expect(plan.actions).toEqual([expect.objectContaining({ kind: "quarantine", name: "10-244-1-0-24", reason: "DuplicateForNode" })]);
    // kubelet hands out addresses from 10.244.1.0/24 (two replicas raced, and the later record filled the field).
    const named = planAllocations(input({ nodes: [node("a", { podCIDRs: ["10.244.1.0/24"] })], records: [rec("a", "10.244.0.0/24"), rec("a", "10.244.1.0/24")] }));
    expect(named.actions).toEqual([expect.objectContaining({ kind: "quarantine", name: "10-244-0-0-24", reason: "DuplicateForNode" })]);
  });

  it("never hands out a slice a quarantined wrong-size record overlaps", () => {
    const plan = planAllocations(input({ nodes: [node("a"), node("b")], records: [rec("a", "10.244.0.0/23", { phase: "Quarantined" }), rec("a", "10.244.5.0/24")], pools: [pool(["10.244.0.0/21"])] }));
    expect(kinds(plan.actions)).toEqual(["create:10.244.2.0/24"]);
  });

  it("lets a pool with a matching nodeSelector beat the catch-all pool", () => {
    const plan = planAllocations(input({
      nodes: [node("edge", { labels: { zone: "edge" } }), node("core")],
      pools: [pool(["10.244.0.0/16"]), { name: "edge", nodeSelector: { zone: "edge" }, v4: { cidrs: ["10.201.0.0/24"], nodePrefix: 26 } }],
    }));
    expect(plan.actions).toEqual([
      expect.objectContaining({ node: "core", pool: "default", cidr: "10.244.0.0/24" }),
      expect.objectContaining({ node: "edge", pool: "edge", cidr: "10.201.0.0/26" }),
    ]);
  });

  it("mirrors changed node IPs and confirms a record whose status was never written", () => {
    const plan = planAllocations(input({ nodes: [node("a", { nodeIPs: ["192.168.9.9"] })], records: [rec("a", "10.244.0.0/24", { phase: undefined })] }));
    expect(kinds(plan.actions)).toEqual(["confirm:10.244.0.0/24", "updateNodeIPs:10-244-0-0-24"]);
  });

  it("keeps a record's node IPs when its Node lists none any more: emptied, every agent would drop the routes to its pods", () => {
    const plan = planAllocations(input({ nodes: [node("a", { nodeIPs: [] })], records: [rec("a", "10.244.0.0/24")] }));
    expect(plan.actions.filter((a) => a.kind === "updateNodeIPs")).toEqual([]);
  });

  it("never plans one CIDR for two holders (random churn, seeded)", () => {
    let seed = 42;
    const rand = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
    for (let round = 0; round < 50; round++) {
      const nodes = Array.from({ length: 20 + rand(20) }, (_, i) => node(`n${i}`, rand(5) === 0 ? { podCIDRs: [`10.0.${rand(16)}.0/24`] } : {}));
      const records = Array.from({ length: rand(15) }, () => rec(`n${rand(45)}`, `10.0.${rand(16)}.0/24`, rand(4) === 0 ? { phase: "Released", releasedAt: 999_000 } : {}))
        .filter((r, i, all) => all.findIndex((o) => o.name === r.name) === i);
      const plan = planAllocations(input({ nodes, records, pools: [pool(["10.0.0.0/20"])] }));
      const kept = new Set(records.map((r) => r.cidr));
      const created = plan.actions.flatMap((a) => (a.kind === "create" ? [a.cidr] : []));
      expect(new Set(created).size).toBe(created.length);
      for (const c of created) expect(kept.has(c)).toBe(false);
    }
  });
});
