import { describe, expect, it } from "vitest";
import { normaliseDst, planRoutes, routeBatch, RouteTable, type ObservedRoute } from "./routes-plan.js";
import type { KernelRoute } from "./overlay-plan.js";

const want = (dst: string, via: string, nodeName = "n", dev?: string): KernelRoute => ({ dst, via, nodeName, ...(dev ? { dev } : {}) });
const direct = (dst: string, via: string, linkDev: string): KernelRoute => ({ dst, via, nodeName: "n", linkDev });
const ours = (dst: string, gateway: string, dev?: string): ObservedRoute => ({ dst, gateway, ours: true, ...(dev ? { dev } : {}) });

describe("planRoutes", () => {
  it.each<[string, KernelRoute[], ObservedRoute[], string[]]>([
    ["adds missing routes (v4 and v6)", [want("10.244.2.0/24", "192.168.1.2"), want("fd00:10:244:2::/64", "fd00:1::2")], [], ["add 10.244.2.0/24", "add fd00:10:244:2::/64"]],
    ["leaves a correct route alone", [want("10.244.2.0/24", "192.168.1.2")], [ours("10.244.2.0/24", "192.168.1.2")], []],
    ["replaces a route whose node IP changed", [want("10.244.2.0/24", "192.168.1.3")], [ours("10.244.2.0/24", "192.168.1.2")], ["replace 10.244.2.0/24"]],
    ["deletes a stale podnet route (node deleted while the agent was down)", [], [ours("10.244.9.0/24", "192.168.1.9")], ["delete 10.244.9.0/24"]],
    ["never deletes a route of another protocol", [], [{ dst: "10.244.9.0/24", gateway: "192.168.1.9", ours: false }], []],
    ["moves a route onto the overlay device", [want("10.244.2.0/24", "10.244.2.0", "n", "podnet.vxlan")], [ours("10.244.2.0/24", "192.168.1.2", "eth0")], ["replace 10.244.2.0/24"]],
    ["moves a route off the overlay device when the node became a neighbour", [want("10.244.2.0/24", "192.168.1.2")], [ours("10.244.2.0/24", "192.168.1.2", "podnet.vxlan")], ["replace 10.244.2.0/24"]],
    ["gives up its own route where another owner routes the same prefix", [want("10.244.2.0/24", "192.168.1.2")],
      [ours("10.244.2.0/24", "192.168.1.2"), { dst: "10.244.2.0/24", dev: "eth9", ours: false }], ["delete 10.244.2.0/24"]],
    ["deletes only the stale one of several routes", [want("10.244.2.0/24", "192.168.1.2"), want("10.244.3.0/24", "192.168.1.3")],
      [ours("10.244.2.0/24", "192.168.1.2"), ours("10.244.3.0/24", "192.168.1.3"), ours("10.244.4.0/24", "192.168.1.4")], ["delete 10.244.4.0/24"]],
    ["leaves a correct overlay route alone", [want("10.244.2.0/24", "10.244.2.0", "n", "podnet.vxlan")], [ours("10.244.2.0/24", "10.244.2.0", "podnet.vxlan")], []],
    ["leaves a direct route on its gateway's interface alone", [direct("10.244.2.0/24", "192.168.1.2", "eth0")], [ours("10.244.2.0/24", "192.168.1.2", "eth0")], []],
    ["moves a direct route to the interface that now holds the node's subnet (eth0 bridged into br0)",
      [direct("10.244.2.0/24", "192.168.1.2", "br0"), direct("fd00:10:244:2::/64", "fd00:1::2", "br0")],
      [ours("10.244.2.0/24", "192.168.1.2", "eth0"), ours("fd00:10:244:2::/64", "fd00:1::2", "eth0")], ["replace 10.244.2.0/24", "replace fd00:10:244:2::/64"]],
    ["moves a direct route off the overlay device onto its gateway's interface", [direct("10.244.2.0/24", "192.168.1.2", "eth0")], [ours("10.244.2.0/24", "192.168.1.2", "podnet.vxlan")], ["replace 10.244.2.0/24"]],
  ])("%s", (_case, desired, observed, expected) => {
    expect(planRoutes(desired, observed).actions.map((a) => `${a.kind} ${a.dst}`)).toEqual(expected);
  });

  it("reports a foreign route with the same prefix as a conflict and does not touch it", () => {
    const plan = planRoutes([want("10.244.2.0/24", "192.168.1.2", "b")], [{ dst: "10.244.2.0/24", dev: "eth9", ours: false }]);
    expect(plan.actions).toEqual([]);
    expect(plan.conflicts[0]!.reason).toContain("another owner");
    expect(plan.installed).toBe(0);
  });

  it("writes ip -batch lines tagged with podnet's protocol; overlay routes name the device and onlink", () => {
    expect(routeBatch([{ kind: "add", dst: "10.244.2.0/24", via: "192.168.1.2" }, { kind: "delete", dst: "10.244.3.0/24" },
      { kind: "replace", dst: "10.244.4.0/24", via: "10.244.4.0", dev: "podnet.vxlan" }]))
      .toBe("route add 10.244.2.0/24 via 192.168.1.2 proto 249\nroute del 10.244.3.0/24 proto 249\nroute replace 10.244.4.0/24 via 10.244.4.0 dev podnet.vxlan onlink proto 249\n");
  });

  it("names a direct route's interface in the batch (not onlink) and remembers it: the next pass plans nothing", () => {
    const desired = [direct("10.244.2.0/24", "192.168.1.2", "br0")];
    const table = new RouteTable([ours("10.244.2.0/24", "192.168.1.2", "eth0")]);
    const { actions } = planRoutes(desired, table);
    expect(routeBatch(actions)).toBe("route replace 10.244.2.0/24 via 192.168.1.2 dev br0 proto 249\n");
    table.applyActions(actions, new Map());
    expect(planRoutes(desired, table).actions).toEqual([]);
  });

  it.each([["default", 4, "0.0.0.0/0"], ["10.0.0.1", 4, "10.0.0.1/32"], ["fd00::1", 6, "fd00::1/128"], ["192.168.1.0/24", 4, "192.168.1.0/24"], ["bogus", 4, undefined]] as const)(
    "normalises kernel dst %s", (dst, family, expected) => expect(normaliseDst(dst, family)).toBe(expected));
});
