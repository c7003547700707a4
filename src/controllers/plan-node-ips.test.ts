import { describe, expect, it } from "vitest";
import { planAllocations, type AllocationAction, type PlannerNode, type PlannerRecord } from "./plan.js";
import { input, node, pool, rec } from "./plan-fixtures.js";

const [a, b, c, v6] = ["10.0.2.5", "10.1.2.5", "10.2.2.5", "fd00:2::5"];
const internal = (...nodeIPs: string[]): Partial<PlannerNode> => ({ nodeIPs, nodeIPsFrom: "InternalIP" });
const external = (...nodeIPs: string[]): Partial<PlannerNode> => ({ nodeIPs, nodeIPsFrom: "ExternalIP" });
/** What the plan writes or says about node IPs: updates, warnings, and the IPs new records are created with. */
const nodeIPActions = (actions: AllocationAction[]) => actions.flatMap((x): object[] => {
  if (x.kind === "updateNodeIPs") return [{ update: x.name, ips: x.nodeIPs, from: x.nodeIPsFrom }];
  if (x.kind === "create") return [{ create: x.cidr, ips: x.nodeIPs, from: x.nodeIPsFrom }];
  if (x.kind === "conflict") return [{ conflict: x.reason, message: x.message }];
  return [];
});
const dualStack = [pool(["10.244.0.0/16"], { v6: { cidrs: ["fd00:10:244::/56"], nodePrefix: 64 } })];
const plan = (n: Partial<PlannerNode>, records: PlannerRecord[]) =>
  nodeIPActions(planAllocations(input({ nodes: [node("n", n)], records, pools: dualStack })).actions);
const v4 = (extra: Partial<PlannerRecord>) => rec("n", "10.244.0.0/24", { createdAt: 1, ...extra });
const v6rec = (extra: Partial<PlannerRecord>) => rec("n", "fd00:10:244::/64", { createdAt: 2, ...extra });
const from = "InternalIP" as const;

describe("node IPs mirrored into NodeCIDRs", () => {
  it.each<[string, Partial<PlannerNode>, string[], string[] | undefined]>([
    ["a reordered list is no change (the record's order stays)", internal(b, a, v6), [a, b, v6], undefined],
    ["a third IPv4 address first: appended, the VXLAN endpoint stays", internal(c, b, a, v6), [a, b, v6], [a, b, v6, c]],
    ["an address gone: dropped, the rest in the record's order", internal(v6, b), [a, b, v6], [b, v6]],
    ["the first address gone: the next IPv4 one becomes the first", internal(b, v6), [a, v6, b], [v6, b]],
    ["every address replaced: the Node's list", internal(c, v6), [a, b], [c, v6]],
    ["the same list: no change", internal(a, b, v6), [a, b, v6], undefined],
  ])("%s", (_case, n, recorded, written) => {
    const records = [v4({ nodeIPs: recorded, nodeIPsFrom: from }), v6rec({ nodeIPs: recorded, nodeIPsFrom: from })];
    expect(plan(n, records)).toEqual(written ? records.map((r) => ({ update: r.name, ips: written, from })) : []);
  });

  it("gives a node's records one order, the oldest allocated record's: agents read the VXLAN endpoint from any of them", () => {
    // A write that failed for one of them, or a record created after a reorder by an older controller.
    expect(plan(internal(a, b), [v4({ nodeIPs: [b, a], nodeIPsFrom: from }), v6rec({ nodeIPs: [a, b], nodeIPsFrom: from })]))
      .toEqual([{ update: "fd00-10-244---64", ips: [b, a], from }]);
    // A record whose status was never written, or one left from an earlier Node of that name, sets no order.
    expect(plan(internal(a, b), [v4({ nodeIPs: [b, a], nodeIPsFrom: from, phase: undefined, createdAt: 0 }), v6rec({ nodeIPs: [a, b], nodeIPsFrom: from })]))
      .toEqual([{ update: "10-244-0-0-24", ips: [a, b], from }]);
    expect(plan({ ...internal(a, b), uid: "n-2" }, [v4({ nodeIPs: [b, a], nodeIPsFrom: from, nodeUID: "n-1" }), v6rec({ nodeIPs: [a, b], nodeIPsFrom: from, nodeUID: "n-2" })]))
      .toEqual([{ create: "10.244.1.0/24", ips: [a, b], from }]); // the earlier Node's is released
  });

  it("creates a node's second record in the order its first has", () => {
    expect(plan(internal(b, a, v6), [v4({ nodeIPs: [a, b, v6], nodeIPsFrom: from })])).toEqual([{ create: "fd00:10:244::/64", ips: [a, b, v6], from }]);
    expect(plan(external("203.0.113.5"), [])).toEqual([
      { create: "10.244.0.0/24", ips: ["203.0.113.5"], from: "ExternalIP" }, { create: "fd00:10:244::/64", ips: ["203.0.113.5"], from: "ExternalIP" }]);
  });

  it("keeps a Node's InternalIPs when it lists only ExternalIPs any more, and says so on the Node", () => {
    const records = [v4({ nodeIPs: [a, v6], nodeIPsFrom: from }), v6rec({ nodeIPs: [a, v6], nodeIPsFrom: from })];
    expect(plan(external("198.51.100.7"), records)).toEqual([{ conflict: "NodeInternalIPsGone", message: "node n lists no InternalIP any more: agents keep "
      + "routing its pods via 10.0.2.5, fd00:2::5, its last InternalIPs, not its ExternalIPs 198.51.100.7 (to route via those, remove spec.nodeIPsFrom from its NodeCIDRs)" }]);
    // Once it lists an InternalIP again, that is mirrored and the warning goes.
    expect(plan(internal(c), records)).toEqual(records.map((r) => ({ update: r.name, ips: [c], from })));
  });

  it("follows the ExternalIPs of a Node that had only those, and of one whose records do not say where their IPs came from", () => {
    expect(plan(external("203.0.113.9"), [v4({ nodeIPs: ["203.0.113.5"], nodeIPsFrom: "ExternalIP" })]))
      .toEqual([{ update: "10-244-0-0-24", ips: ["203.0.113.9"], from: "ExternalIP" }, { create: "fd00:10:244::/64", ips: ["203.0.113.9"], from: "ExternalIP" }]);
    // Written by a version before nodeIPsFrom: today's rule, and the source recorded with the write.
    expect(plan(external("198.51.100.7"), [v4({ nodeIPs: [a] }), v6rec({ nodeIPs: [a] })])).toEqual([
      { update: "10-244-0-0-24", ips: ["198.51.100.7"], from: "ExternalIP" }, { update: "fd00-10-244---64", ips: ["198.51.100.7"], from: "ExternalIP" }]);
  });

  it("records the source once on a record written before it was kept, its IPs as they are", () => {
    expect(plan(internal(b, a), [v4({ nodeIPs: [a, b] }), v6rec({ nodeIPs: [a, b], nodeIPsFrom: from })])).toEqual([{ update: "10-244-0-0-24", ips: [a, b], from }]);
  });

  it("keeps the records' IPs and their source when the Node lists no address at all", () => {
    expect(plan({ nodeIPs: [] }, [v4({ nodeIPs: [a], nodeIPsFrom: from }), v6rec({ nodeIPs: [b] })])).toEqual([{ update: "fd00-10-244---64", ips: [a], from }]);
    expect(plan({ nodeIPs: [] }, [v4({ nodeIPs: [a] })])).toEqual([{ create: "fd00:10:244::/64", ips: [a], from: undefined }]);
  });

  it("checks the IPs it keeps for a Node against the other Nodes' (a recycled InternalIP)", () => {
    const actions = planAllocations(input({ nodes: [node("n", external("198.51.100.7")), node("m", internal(a))], records: [v4({ nodeIPs: [a], nodeIPsFrom: from })] })).actions;
    expect(actions.filter((x) => x.kind === "conflict").map((x) => `${x.node}:${x.kind === "conflict" ? x.reason : ""}`))
      .toEqual(["n:NodeInternalIPsGone", "m:DuplicateNodeIP", "n:DuplicateNodeIP"]);
  });
});
