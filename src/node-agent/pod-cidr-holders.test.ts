import { describe, expect, it } from "vitest";
import { podCidrHeldMessage, podCidrHolders, type HostAddress, type PodCidrHolder } from "./pod-cidr-holders.js";
import type { ObservedRoute } from "./routes-plan.js";

const route = (dst: string, dev?: string, extra: Partial<ObservedRoute> = {}): ObservedRoute => ({ dst, ...(dev ? { dev } : {}), ours: false, ...extra });
const addr = (dev: string, text: string, kind?: string): HostAddress => {
  const [local, prefixlen] = text.split("/");
  return { dev, local: local!, prefixlen: Number(prefixlen), ...(kind ? { kind } : {}) };
};
// A node after flannel: eth0, podnet's bridge with the first pod's gateway, and what flannel left.
const eth0 = [route("192.168.77.0/24", "eth0"), route("0.0.0.0/0", "eth0", { gateway: "192.168.77.1" })];
const podnet0 = { route: route("10.231.1.0/24", "podnet0"), address: addr("podnet0", "10.231.1.1/24", "bridge") };
const hostAddresses = [addr("eth0", "192.168.77.11/24"), podnet0.address];
const own = ["10.231.1.0/24"];

describe("podCidrHolders: what besides podnet's bridge holds this node's pod CIDR", () => {
  it.each<[string, string[], ObservedRoute[], HostAddress[], PodCidrHolder[]]>([
    ["nothing on a clean node", own, [...eth0, podnet0.route], hostAddresses, []],
    ["flannel's cni0: its connected route and the same gateway address", own,
      [...eth0, route("10.231.1.0/24", "cni0"), podnet0.route], [...hostAddresses, addr("cni0", "10.231.1.1/24", "bridge")],
      [{ device: "cni0", kind: "bridge", routes: [{ dst: "10.231.1.0/24" }], addresses: ["10.231.1.1/24"] }]],
    ["cni0 before any pod made podnet's bridge", own, [...eth0, route("10.231.1.0/24", "cni0")], [addr("eth0", "192.168.77.11/24"), addr("cni0", "10.231.1.1/24", "bridge")],
      [{ device: "cni0", kind: "bridge", routes: [{ dst: "10.231.1.0/24" }], addresses: ["10.231.1.1/24"] }]],
    ["cni0 down: its address, without a route", own, [...eth0, podnet0.route], [...hostAddresses, addr("cni0", "10.231.1.1/24", "bridge")],
      [{ device: "cni0", kind: "bridge", routes: [], addresses: ["10.231.1.1/24"] }]],
    ["a narrower route with no device (Calico's blackhole for its block)", own, [...eth0, podnet0.route, route("10.231.1.64/26")], hostAddresses,
      [{ routes: [{ dst: "10.231.1.64/26" }], addresses: [] }]],
    ["a route to the range through another node", own, [...eth0, route("10.231.1.0/24", "eth0", { gateway: "192.168.77.12" })], hostAddresses,
      [{ device: "eth0", routes: [{ dst: "10.231.1.0/24", via: "192.168.77.12" }], addresses: [] }]],
    ["the gateway as a host address on a NIC", own, [...eth0, podnet0.route], [...hostAddresses, addr("eth1", "10.231.1.1/32")],
      [{ device: "eth1", routes: [], addresses: ["10.231.1.1/32"] }]],
    ["a wider route loses to the bridge's by longest prefix: nothing", own, [...eth0, podnet0.route, route("10.231.0.0/16", "flannel.1")], hostAddresses, []],
    ["routes to other nodes' pod CIDRs are RoutesProgrammed's matter: nothing", own,
      [...eth0, podnet0.route, route("10.231.2.0/24", "flannel.1", { gateway: "10.231.2.0" })], hostAddresses, []],
    ["podnet's own routes: nothing", own, [...eth0, podnet0.route, route("10.231.1.0/24", "eth0", { ours: true, gateway: "192.168.77.12" })], hostAddresses, []],
    ["the range's first address (podnet.vxlan's, flannel.1's): nothing", own, [...eth0, podnet0.route],
      [...hostAddresses, addr("podnet.vxlan", "10.231.1.0/32", "vxlan"), addr("flannel.1", "10.231.1.0/32", "vxlan")], []],
    ["IPv6: the /128 routes the kernel adds for a VXLAN device's first address (podnet.vxlan's, flannel.1's): nothing", ["10.231.1.0/24", "fd00:10:231:1::/64"],
      [...eth0, route("fd00:10:231:1::/128", "podnet.vxlan"), route("fd00:10:231:1::/128", "flannel.1"), route("fd00:10:231:1::/64", "podnet0")],
      [...hostAddresses, addr("podnet.vxlan", "fd00:10:231:1::/128", "vxlan"), addr("flannel.1", "fd00:10:231:1::/128", "vxlan")], []],
    ["a host route to any other address of the range is a holder", own, [...eth0, podnet0.route, route("10.231.1.7/32", "tun0")], hostAddresses,
      [{ device: "tun0", routes: [{ dst: "10.231.1.7/32" }], addresses: [] }]],
    ["IPv6: cni0's connected route and gateway", ["10.231.1.0/24", "fd00:10:231:1::/64"],
      [...eth0, route("fd00:10:231:1::/64", "cni0"), route("fd00:10:231:1::/64", "podnet0")], [...hostAddresses, addr("cni0", "fd00:10:231:1::1/64", "bridge")],
      [{ device: "cni0", kind: "bridge", routes: [{ dst: "fd00:10:231:1::/64" }], addresses: ["fd00:10:231:1::1/64"] }]],
    ["no pod CIDR: nothing to hold", [], [...eth0, route("10.231.1.0/24", "cni0")], [addr("cni0", "10.231.1.1/24", "bridge")], []],
    ["holders sorted by device, their entries too", own, [route("10.231.1.128/25", "zz0"), route("10.231.1.0/25", "zz0"), route("10.231.1.0/24", "cni0")], [],
      [{ device: "cni0", routes: [{ dst: "10.231.1.0/24" }], addresses: [] }, { device: "zz0", routes: [{ dst: "10.231.1.0/25" }, { dst: "10.231.1.128/25" }], addresses: [] }]],
  ])("%s", (_label, ownCidrs, routes, addresses, holders) => {
    expect(podCidrHolders(ownCidrs, routes, addresses)).toEqual(holders);
  });
});

describe("podCidrHeldMessage: names the holder and how to take it away", () => {
  it("a leftover bridge: the device to delete, and why pods are unreachable", () => {
    const message = podCidrHeldMessage(own, [{ device: "cni0", kind: "bridge", routes: [{ dst: "10.231.1.0/24" }], addresses: ["10.231.1.1/24"] }]);
    expect(message).toBe("this node's pod CIDR 10.231.1.0/24 is also held outside podnet's bridge podnet0, by cni0 (route 10.231.1.0/24, address "
      + "10.231.1.1/24): the kernel sends traffic for this node's pods there, so they cannot be reached from this node or from other nodes. "
      + "Left by another network plugin (flannel's or kindnet's cni0)? Drain the node, then remove it (ip link delete cni0) and that plugin's CNI config; "
      + "podnet does not delete what it does not own");
  });

  it.each<[string, PodCidrHolder, string]>([
    ["a NIC keeps its link: only the address goes", { device: "eth1", routes: [], addresses: ["10.231.1.1/32"] }, "ip addr del 10.231.1.1/32 dev eth1"],
    ["a route with no device", { routes: [{ dst: "10.231.1.64/26" }], addresses: [] }, "ip route del 10.231.1.64/26"],
    ["a route through another node", { device: "eth0", routes: [{ dst: "10.231.1.0/24", via: "192.168.77.12" }], addresses: [] }, "ip route del 10.231.1.0/24 dev eth0"],
  ])("%s", (_label, holder, remedy) => {
    expect(podCidrHeldMessage(own, [holder])).toContain(`remove it (${remedy})`);
  });

  it("stays short with many holders (Calico's per-pod routes): five shown, three entries each", () => {
    const holders = Array.from({ length: 8 }, (_, i) => ({ device: `cali${i}`, routes: Array.from({ length: 5 }, (_, j) => ({ dst: `10.231.1.${i * 8 + j}/32` })), addresses: [] }));
    const message = podCidrHeldMessage(own, holders);
    expect(message).toContain("cali4 (route 10.231.1.32/32, route 10.231.1.33/32, route 10.231.1.34/32 (+2 more))");
    expect(message).toContain("(+3 more)");
    expect(message).not.toContain("cali5");
    expect(message.length).toBeLessThan(2_000);
  });
});
