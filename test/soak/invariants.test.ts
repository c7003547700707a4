import { describe, expect, it } from "vitest";
import { clusterViolations, expectedRoutes, pingablePods, recordSetIssues, type ClusterView, type NodeView, type RecordView } from "./invariants.js";

const conditionsTrue = (generation = 1, cni: { reason?: string; message?: string } = {}) => ["Allocated", "Ready", "RoutesProgrammed", "CNIConfigured"]
  .map((type) => ({ type, status: "True", observedGeneration: generation, ...(type === "CNIConfigured" ? cni : {}) }));
const record = (nodeName: string, cidr: string, over: Partial<RecordView> = {}): RecordView => ({
  name: `rec-${cidr.replace(/[/.:]/g, "-")}`, nodeName, family: cidr.includes(":") ? "IPv6" : "IPv4", cidr, nodeUID: `uid-${nodeName}`,
  generation: 1, phase: "Allocated", observedGeneration: 1, conditions: conditionsTrue(), routesInstalled: 1, ...over,
});
const node = (name: string, index: number, over: Partial<NodeView> = {}): NodeView => ({
  name, uid: `uid-${name}`, segment: 93, ip: `192.168.93.${10 + index}`, ip6: `fd00:93::${10 + index}`,
  podCIDRs: [`10.244.${index}.0/24`], networkUnavailable: "False", conflistSubnets: [`10.244.${index}.0/24`], pods: [], routes: [], ...over,
});

/** Two nodes on one segment, each routing to the other: every invariant holds. */
function healthy(): ClusterView {
  const a = node("a", 1, { routes: ["10.244.2.0/24 via 192.168.93.12 dev eth0"], pods: [{ name: "pa", ips: ["10.244.1.5"] }] });
  const b = node("b", 2, { routes: ["10.244.1.0/24 via 192.168.93.11 dev eth0"], pods: [{ name: "pb", ips: ["10.244.2.5"] }] });
  return { families: ["IPv4"], records: [record("a", "10.244.1.0/24"), record("b", "10.244.2.0/24")], nodes: [a, b] };
}
const withNode = (v: ClusterView, name: string, change: Partial<NodeView>): ClusterView => ({ ...v, nodes: v.nodes.map((n) => (n.name === name ? { ...n, ...change } : n)) });
const withRecord = (v: ClusterView, nodeName: string, change: Partial<RecordView>): ClusterView => ({ ...v, records: v.records.map((r) => (r.nodeName === nodeName ? { ...r, ...change } : r)) });

describe("clusterViolations", () => {
  it("finds none in a converged cluster", () => {
    expect(clusterViolations(healthy())).toEqual([]);
  });

  it.each<[string, (v: ClusterView) => ClusterView, RegExp]>([
    ["a process that exited unasked", (v) => ({ ...v, deadProcess: "agent-a exited 1:\nboom" }), /process exited unasked: agent-a exited 1:$/],
    ["a node without an Allocated record", (v) => ({ ...v, records: v.records.filter((r) => r.nodeName !== "b") }), /b IPv4: 0 Allocated/],
    ["a record for a gone node", (v) => ({ ...v, records: [...v.records, record("gone", "10.244.9.0/24")] }), /Allocated record .* for gone node gone/],
    ["a record of the node's previous uid", (v) => withRecord(v, "a", { nodeUID: "uid-old" }), /nodeUID uid-old but a's uid is uid-a/],
    ["a status of an older generation", (v) => withRecord(v, "a", { generation: 2, conditions: conditionsTrue(2) }), /status.observedGeneration 1 != generation 2/],
    ["a condition of an older generation", (v) => withRecord(v, "a", { conditions: conditionsTrue(0) }), /Allocated.observedGeneration 0 != 1/],
    ["Ready False", (v) => withRecord(v, "a", { conditions: conditionsTrue().map((c) => (c.type === "Ready" ? { ...c, status: "False", reason: "RoutesFailed" } : c)) }), /Ready=False RoutesFailed/],
    ["a stale route count", (v) => withRecord(v, "b", { routesInstalled: 0 }), /routesInstalled 0 != 1/],
    ["a missing kernel route", (v) => withNode(v, "a", { routes: [] }), /a routes: missing \[10.244.2.0\/24 via 192.168.93.12 dev eth0\] extra \[\]/],
    ["a route via the wrong gateway", (v) => withNode(v, "a", { routes: ["10.244.2.0/24 via 192.168.93.99 dev eth0"] }), /extra \[10.244.2.0\/24 via 192.168.93.99/],
    ["spec.podCIDRs other than the record's", (v) => withNode(v, "a", { podCIDRs: ["10.244.7.0/24"] }), /a: Node.spec.podCIDRs \[10.244.7.0\/24\] != its CIDRs/],
    ["no conflist", (v) => withNode(v, "b", { conflistSubnets: undefined }), /b: no conflist/],
    ["a conflist of an old range", (v) => withNode(v, "b", { conflistSubnets: ["10.244.7.0/24"] }), /b: conflist subnets/],
    ["NetworkUnavailable still True", (v) => withNode(v, "b", { networkUnavailable: "True" }), /b: NetworkUnavailable True, not False/],
    ["a stranded pod the agent does not report", (v) => withNode(v, "a", { pods: [{ name: "old", ips: ["10.244.7.9"] }] }), /a: pod addresses outside its CIDRs not reported .*old 10.244.7.9/],
  ])("reports %s", (_what, change, expected) => {
    const found = clusterViolations(change(healthy()));
    expect(found.some((v) => expected.test(v)), found.join("\n")).toBe(true);
  });

  it("accepts a stranded pod that CNIConfigured names (PodAddressesOutsideCIDR), and leaves it out of the pings", () => {
    const message = "conflist in place; 1 pod address leased on this node lies outside its pod CIDRs: 10.244.7.9 (container old). Those pods…";
    let v = withNode(healthy(), "a", { pods: [{ name: "pa", ips: ["10.244.1.5"] }, { name: "old", ips: ["10.244.7.9"] }] });
    v = withRecord(v, "a", { conditions: conditionsTrue(1, { reason: "PodAddressesOutsideCIDR", message }) });
    expect(clusterViolations(v)).toEqual([]);
    expect(pingablePods(v).map((p) => p.name)).toEqual(["pa", "pb"]);
  });

  it("wants both families on a dual-stack node", () => {
    const v: ClusterView = { ...healthy(), families: ["IPv4", "IPv6"] };
    expect(clusterViolations(v)).toEqual(expect.arrayContaining(["a IPv6: 0 Allocated", "b IPv6: 0 Allocated"]));
  });
});

describe("expectedRoutes", () => {
  it("routes a neighbour directly by family and a node on another segment through the tunnel", () => {
    const me = node("a", 1);
    const near = node("b", 2);
    const far = node("c", 3, { segment: 94, ip: "192.168.94.13", ip6: "fd00:94::13" });
    const live = new Map([me, near, far].map((n) => [n.name, n]));
    const records = [record("a", "10.244.1.0/24"), record("b", "10.244.2.0/24"), record("b", "fd00:10:244:2::/64"), record("c", "10.244.3.0/24"), record("c", "fd00:10:244:3::/64")];
    expect(expectedRoutes(me, live, records)).toEqual([
      "10.244.2.0/24 via 192.168.93.12 dev eth0", "10.244.3.0/24 via 10.244.3.0 dev vxlan",
      "fd00:10:244:2::/64 via fd00:93::12 dev eth0", "fd00:10:244:3::/64 via fd00:10:244:3:: dev vxlan",
    ]);
  });
});

describe("recordSetIssues", () => {
  it.each<[string, RecordView[], string[]]>([
    ["distinct ranges", [record("a", "10.244.1.0/24"), record("b", "10.244.2.0/24")], []],
    ["a Released record and its successor on another range", [record("a", "10.244.1.0/24", { phase: "Released" }), record("a", "10.244.2.0/24")], []],
    ["one range held twice", [record("a", "10.244.1.0/24", { name: "r1" }), record("b", "10.244.1.0/24", { name: "r2" })], ["CIDR overlap r1(a,Allocated) ~ r2(b,Allocated)"]],
    ["nested ranges", [record("a", "10.244.0.0/23", { name: "r1" }), record("b", "10.244.1.0/24", { name: "r2", phase: "Released" })], ["CIDR overlap r1(a,Allocated) ~ r2(b,Released)"]],
    ["two Allocated of one node and family", [record("a", "10.244.1.0/24"), record("a", "10.244.2.0/24")], ["a/IPv4 has 2 Allocated: 10.244.1.0/24,10.244.2.0/24"]],
    ["one Allocated per family", [record("a", "10.244.1.0/24"), record("a", "fd00:10:244:1::/64")], []],
  ])("%s", (_what, records, expected) => {
    expect(recordSetIssues(records)).toEqual(expected);
  });
});
