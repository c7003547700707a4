import { describe, expect, it } from "vitest";
import { agentConfigSchema } from "../config.js";
import type { DesiredNodeState } from "./desired-state.js";
import { devicesOfRoutes, linkInfoOf, type JsonAddr } from "./ip-route.js";
import { podMtu } from "./route-sync.js";

const addr = (local: string, prefixlen: number, scope = "global") => ({ family: local.includes(":") ? "inet6" : "inet", local, prefixlen, scope });
const lo = (...extra: ReturnType<typeof addr>[]): JsonAddr => ({ ifname: "lo", mtu: 65536, link_type: "loopback", addr_info: [addr("127.0.0.1", 8, "host"), ...extra] });
const eth = (ifname: string, mtu: number, ip: string): JsonAddr => ({ ifname, mtu, link_type: "ether", addr_info: [addr(ip, 24)] });
const on = (ifname: string, ip: string, prefixlen: number): JsonAddr => ({ ifname, mtu: 1500, link_type: "ether", addr_info: [addr(ip, prefixlen)] });

describe("linkInfoOf (ip -details -json addr show)", () => {
  it("gives the node IP's own link MTU", () => {
    const links = linkInfoOf([lo(), eth("eth0", 1450, "192.168.1.5")]);
    expect(links.mtuOf("192.168.1.5")).toBe(1450);
    expect(links.deviceFor("192.168.1.9")).toBe("eth0");
  });

  it.each<[string, JsonAddr[], string, string | undefined]>([
    ["the longer prefix, listed second", [on("eth0", "10.0.0.5", 8), on("eth1", "10.1.2.5", 24)], "10.1.2.9", "eth1"],
    ["the longer prefix, listed first", [on("eth1", "10.1.2.5", 24), on("eth0", "10.0.0.5", 8)], "10.1.2.9", "eth1"],
    ["the shorter prefix where only it holds the IP", [on("eth0", "10.0.0.5", 8), on("eth1", "10.1.2.5", 24)], "10.7.0.1", "eth0"],
    ["IPv6", [on("eth0", "fd00::5", 16), on("eth1", "fd00:1:2::5", 64)], "fd00:1:2::9", "eth1"],
    ["no subnet holds it", [on("eth0", "192.168.1.5", 24)], "192.168.2.9", undefined],
  ])("deviceFor takes the longest matching prefix, as the kernel does: %s", (_case, links, ip, dev) => {
    expect(linkInfoOf(links).deviceFor(ip)).toBe(dev);
  });

  it.each([
    ["the loopback", lo(addr("10.0.0.5", 32))],
    ["a dummy device", { ifname: "node0", mtu: 1500, link_type: "ether", linkinfo: { info_kind: "dummy" }, addr_info: [addr("10.0.0.5", 32)] }],
  ])("takes the smallest uplink's MTU for a node IP on %s, not that device's", (_case, holder) => {
    const links = linkInfoOf([lo(), holder as JsonAddr, eth("eth0", 9000, "192.168.1.5"), eth("eth1", 1400, "192.168.2.5"),
      { ifname: "podnet0", mtu: 1300, link_type: "ether", linkinfo: { info_kind: "bridge" }, addr_info: [addr("10.244.1.1", 24)] },
      { ifname: "podnet.vxlan", mtu: 1200, link_type: "ether", linkinfo: { info_kind: "vxlan" }, addr_info: [addr("10.244.1.0", 32)] },
      { ifname: "eth2", mtu: 1000, link_type: "ether", addr_info: [addr("fe80::1", 64, "link")] }]); // no global address: not an uplink
    expect(links.mtuOf("10.0.0.5")).toBe(1400);
    expect(links.isLocal("10.0.0.5")).toBe(true);
  });

  it("prefers the default routes' devices: another network's bridge or a VPN tunnel is no uplink", () => {
    const links = linkInfoOf([lo(addr("10.0.0.5", 32)), eth("eth0", 9001, "192.168.1.5"), eth("docker0", 1500, "172.17.0.1"),
      { ifname: "tailscale0", mtu: 1280, link_type: "none", addr_info: [addr("100.64.0.7", 32)] }], ["eth0"]);
    expect(links.mtuOf("10.0.0.5")).toBe(9001);
  });

  it("takes BGP-unnumbered uplinks (link-local addresses only) through the default route", () => {
    const unnumbered = (ifname: string, mtu: number): JsonAddr => ({ ifname, mtu, link_type: "ether", addr_info: [addr("fe80::1", 64, "link")] });
    const links = linkInfoOf([lo(addr("10.0.0.5", 32), addr("fd00::5", 128)), unnumbered("eth0", 9000), unnumbered("eth1", 8500)], ["eth0", "eth1"]);
    expect(links.mtuOf("10.0.0.5")).toBe(8500);
    expect(links.isLocal("fd00:0::5")).toBe(true);
  });

  it("falls back to the device's own MTU, at most 1500, with no uplink to be found; the IP is still its own", () => {
    const links = linkInfoOf([lo(addr("10.0.0.5", 32))]);
    expect(links.mtuOf("10.0.0.5")).toBe(1500);
    expect(links.isLocal("10.0.0.5")).toBe(true);
    expect(links.isLocal("10.0.0.6")).toBe(false);
  });

  it("lists every global address with its device and link kind (another plugin's bridge holding the pod gateway, say)", () => {
    const links = linkInfoOf([lo(), eth("eth0", 1500, "192.168.1.5"),
      { ifname: "cni0", mtu: 1450, link_type: "ether", linkinfo: { info_kind: "bridge" }, addr_info: [addr("10.244.1.1", 24), addr("fe80::1", 64, "link")] }]);
    expect(links.addresses).toEqual([{ dev: "eth0", local: "192.168.1.5", prefixlen: 24 }, { dev: "cni0", local: "10.244.1.1", prefixlen: 24, kind: "bridge" }]);
  });

  it.each([
    ["a plain default route", [{ dev: "eth0" }], [], ["eth0"]],
    ["ECMP (nexthops)", [{ nexthops: [{ dev: "eth0" }, { dev: "eth1" }] }], [], ["eth0", "eth1"]],
    ["a nexthop object, compat mode off (id only)", [{ nhid: 10 }], [{ id: 10, dev: "eth2" }], ["eth2"]],
    ["a nexthop group, compat mode off", [{ nhid: 20 }], [{ id: 20, group: [{ id: 21 }, { id: 22 }] }, { id: 21, dev: "eth0" }, { id: 22, dev: "eth1" }], ["eth0", "eth1"]],
  ])("finds the default routes' devices: %s", (_case, routes, nexthops, devices) => {
    expect(devicesOfRoutes(routes, nexthops)).toEqual(devices);
  });
});

describe("podMtu: the MTU the conflist gives pods", () => {
  const state: DesiredNodeState = { ownCidrs: ["10.244.1.0/24"], unusedOwnCidrs: [], podNetwork: ["10.244.0.0/16"], routes: [], othersLive: [], rejected: [], ownWithheld: [], families: [4] };
  const links = linkInfoOf([lo(), eth("eth0", 9000, "192.168.1.5")]);
  const config = (overlay: string) => agentConfigSchema.parse({ "node-name": "n1", overlay });

  it("is the node IP's link's, without an overlay or with auto (direct peers get the full MTU, the tunnel's TCP is clamped)", () => {
    expect(podMtu(config("none"), links, "192.168.1.5", state)).toBe(9000);
    expect(podMtu(config("auto"), links, "192.168.1.5", state)).toBe(9000);
  });

  it("is the tunnel's when everything is encapsulated: the link's less VXLAN's headers", () => {
    expect(podMtu(config("vxlan"), links, "192.168.1.5", state)).toBe(8950);
  });

  it("is unknown (the conflist keeps what it says) when the node IP is on no link of this node", () => {
    for (const overlay of ["none", "auto", "vxlan"]) expect(podMtu(config(overlay), links, "192.168.9.9", state)).toBeUndefined();
  });
});
