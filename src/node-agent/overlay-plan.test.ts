import { describe, expect, it } from "vitest";
import { cidrContainsIp, parseCidr, parseIp } from "../lib/cidr.js";
import { splitRoutes, tunnelMtu, tunnelMtuRefusal, underlayIpOf, vtepMac, vxlanSenders, type OverlayMode, type RouteSplit } from "./overlay-plan.js";
import { planVxlan } from "./vxlan-plan.js";
import type { DesiredRoute } from "./desired-state.js";

const route = (dst: string, via: string, nodeName: string, nodeIPs = [via]): DesiredRoute => ({ dst, via, nodeName, nodeIPs });
const onLink = ["192.168.1.0/24", "fd00:1::/64"].map((c) => parseCidr(c));
const deviceFor = (ip: string) => (onLink.some((c) => cidrContainsIp(c, parseIp(ip))) ? "eth0" : undefined);
const near = route("10.244.2.0/24", "192.168.1.2", "near");
const far = route("10.244.3.0/24", "192.168.9.3", "far", ["192.168.9.3", "fd00:9::3"]);
const farV6 = route("fd00:10:244:3::/64", "fd00:9::3", "far", ["192.168.9.3", "fd00:9::3"]);

describe("splitRoutes", () => {
  it.each<[string, OverlayMode, string[], string[], string[]]>([
    ["auto: a neighbour directly, a node behind a router through VXLAN", "auto", ["10.244.2.0/24 via 192.168.1.2", "10.244.3.0/24 via 10.244.3.0 dev podnet.vxlan"], ["far"], []],
    ["vxlan: every node through the overlay", "vxlan", ["10.244.2.0/24 via 10.244.2.0 dev podnet.vxlan", "10.244.3.0/24 via 10.244.3.0 dev podnet.vxlan"], ["near", "far"], []],
    ["none: the far node is unreachable, not half-routed", "none", ["10.244.2.0/24 via 192.168.1.2"], [], ["10.244.3.0/24"]],
  ])("%s", (_what, mode, kernel, peers, unreachable) => {
    const split = splitRoutes([near, far], deviceFor, mode, "192.168.1.1");
    expect(split.kernel.map((k) => `${k.dst} via ${k.via}${k.dev ? ` dev ${k.dev}` : ""}`)).toEqual(kernel);
    expect(split.peers.map((p) => p.nodeName)).toEqual(peers);
    expect(split.unreachable.map((u) => u.dst)).toEqual(unreachable);
  });

  it.each<[OverlayMode, string[], string[]]>([
    ["auto", ["fd00:10:244:2::/64 via fd00:10:244:2:: dev podnet.vxlan"], []],
    ["vxlan", ["fd00:10:244:2::/64 via fd00:10:244:2:: dev podnet.vxlan"], []],
    ["none", [], ["node near has no IPv6 node IP to route through and the overlay is off (--overlay=none)"]],
  ])("IPv6 pods of a neighbour with only an IPv4 node IP, overlay %s: through the tunnel or unreachable, never direct", (mode, kernel, unreachable) => {
    const v6Only: DesiredRoute = { dst: "fd00:10:244:2::/64", nodeName: "near", nodeIPs: ["192.168.1.2"] };
    const split = splitRoutes([v6Only], deviceFor, mode, "192.168.1.1");
    expect(split.kernel.map((k) => `${k.dst} via ${k.via}${k.dev ? ` dev ${k.dev}` : ""}`)).toEqual(kernel);
    expect(split.peers.map((p) => p.underlayIp)).toEqual(kernel.length ? ["192.168.1.2"] : []);
    expect(split.unreachable.map((u) => u.reason)).toEqual(unreachable);
  });

  it("keeps the interface it found a neighbour's subnet on, so the route can follow it when the address moves", () => {
    expect(splitRoutes([near], deviceFor, "auto", "192.168.1.1").kernel).toEqual([{ dst: "10.244.2.0/24", via: "192.168.1.2", nodeName: "near", linkDev: "eth0" }]);
  });

  // The first node IP is on a network this node does not share (storage, management), a later one on its own subnet.
  const multi = route("10.244.5.0/24", "10.0.5.2", "multi", ["10.0.5.2", "192.168.1.2", "fd00:9::2", "fd00:1::2"]);
  const multiV6: DesiredRoute = { ...multi, dst: "fd00:10:244:5::/64", via: "fd00:9::2" };
  it.each<[OverlayMode, string[], string[], string[]]>([
    ["auto", ["10.244.5.0/24 via 192.168.1.2 on eth0", "fd00:10:244:5::/64 via fd00:1::2 on eth0"], [], []],
    ["none", ["10.244.5.0/24 via 192.168.1.2 on eth0", "fd00:10:244:5::/64 via fd00:1::2 on eth0"], [], []],
    // The endpoint is the first IPv4 node IP on every agent, on-link or not: the peer's device listens there alone.
    ["vxlan", ["10.244.5.0/24 via 10.244.5.0 dev podnet.vxlan", "fd00:10:244:5::/64 via fd00:10:244:5:: dev podnet.vxlan"], ["10.0.5.2"], []],
  ])("%s: a node with several node IPs of a family is routed directly via the one on a local subnet", (mode, kernel, underlay, unreachable) => {
    const split = splitRoutes([multi, multiV6], deviceFor, mode, "192.168.1.1");
    expect(split.kernel.map((k) => `${k.dst} via ${k.via}${k.dev ? ` dev ${k.dev}` : ""}${k.linkDev ? ` on ${k.linkDev}` : ""}`)).toEqual(kernel);
    expect(split.peers.map((p) => p.underlayIp)).toEqual(underlay);
    expect(split.unreachable.map((u) => u.reason)).toEqual(unreachable);
  });

  it("names every node IP of the family when none is on a local subnet (overlay off)", () => {
    const far2 = route("10.244.6.0/24", "10.0.6.2", "far2", ["10.0.6.2", "10.9.6.2"]);
    expect(splitRoutes([far2], deviceFor, "none", "192.168.1.1").unreachable.map((u) => u.reason))
      .toEqual(["none of 10.0.6.2, 10.9.6.2 is on a local subnet and the overlay is off (--overlay=none)"]);
    expect(splitRoutes([far2], deviceFor, "auto", "192.168.1.1").peers.map((p) => p.underlayIp)).toEqual(["10.0.6.2"]);
  });

  it("carries a far node's IPv6 pod CIDR over the IPv4 underlay: one peer, two gateways", () => {
    const split = splitRoutes([far, farV6], deviceFor, "auto", "192.168.1.1");
    expect(split.peers).toEqual([{ nodeName: "far", underlayIp: "192.168.9.3", mac: "0e:50:c0:a8:09:03", gateways: [
      { dst: "10.244.3.0/24", gw: "10.244.3.0" }, { dst: "fd00:10:244:3::/64", gw: "fd00:10:244:3::" },
    ] }]);
  });

  it.each([
    ["this node has no node IP yet", undefined, far, "no node IP to send VXLAN from"],
    ["this node is IPv6-only and the far node IPv4-only", "fd00:1::1", route("10.244.3.0/24", "192.168.9.3", "far"), "node far sends VXLAN from its IPv4 node IP 192.168.9.3, and this node has none"],
    // The far node's device listens on its IPv4 address: frames to its IPv6 address would be dropped unseen.
    ["this node is IPv6-only and the far node dual-stack", "fd00:1::1", farV6, "node far sends VXLAN from its IPv4 node IP 192.168.9.3, and this node has none (its VXLAN endpoint is fd00:1::1)"],
    ["this node is IPv4 and the far node IPv6-only", "192.168.1.1", route("fd00:10:244:3::/64", "fd00:9::3", "far"), "node far has no IPv4 node IP for the VXLAN underlay"],
  ])("reports unreachable when %s", (_what, self, r, reason) => {
    const split = splitRoutes([r], deviceFor, "auto", self);
    expect(split.kernel).toEqual([]);
    expect(split.peers).toEqual([]);
    expect(split.unreachable[0]!.reason).toContain(reason);
  });

  it.each<[OverlayMode, DesiredRoute]>([
    ["auto", route("10.244.4.0/24", "192.168.1.1", "stale")],
    ["vxlan", route("10.244.4.0/24", "192.168.1.1", "stale")],
    ["auto", route("fd00:10:244:4::/64", "fd00:9::4", "stale", ["192.168.1.1", "fd00:9::4"])], // the underlay IP is ours
  ])("%s: a peer naming one of this node's addresses gets no route, through the overlay or not", (mode, stale) => {
    const isLocal = (ip: string) => ip === "192.168.1.1";
    const split = splitRoutes([near, stale], deviceFor, mode, "192.168.1.1", isLocal);
    expect(split.kernel.map((k) => k.dst)).toEqual(["10.244.2.0/24"]);
    expect(split.peers.map((p) => p.nodeName)).toEqual(mode === "vxlan" ? ["near"] : []);
    expect(split.unreachable).toEqual([expect.objectContaining({ dst: stale.dst, reason: expect.stringContaining("192.168.1.1 is an address of this node") })]);
  });
});

describe("vxlanSenders", () => {
  it("is every IP of every routed node, canonical, once, sorted; text that is no address is left out", () => {
    const routes: DesiredRoute[] = [
      { dst: "10.244.2.0/24", via: "192.168.1.12", nodeName: "b", nodeIPs: ["192.168.1.12", "FD00:0::12"] },
      { dst: "fd00:10:244:2::/64", via: "fd00::12", nodeName: "b", nodeIPs: ["192.168.1.12", "FD00:0::12"] },
      { dst: "10.244.3.0/24", nodeName: "c", nodeIPs: ["10.0.0.3", "not-an-ip; drop"] },
    ];
    expect(vxlanSenders(routes)).toEqual(["10.0.0.3", "192.168.1.12", "fd00::12"]);
    expect(vxlanSenders([])).toEqual([]);
  });
});

describe("underlayIpOf", () => {
  it.each<[string[], string | undefined]>([
    [["fd00::5", "10.0.0.5"], "10.0.0.5"], // IPv4 whatever the order: every agent must pick the same endpoint
    [["fd00::5", "fd00::6"], "fd00::5"],
    [[], undefined],
  ])("%j → %s", (ips, want) => expect(underlayIpOf(ips)).toBe(want));
});

describe("vtepMac", () => {
  it("is the IPv4 address behind a locally administered unicast prefix", () => {
    expect(vtepMac("192.168.77.11")).toBe("0e:50:c0:a8:4d:0b");
  });
  it("hashes an IPv6 address into the same shape, the same for every spelling", () => {
    expect(vtepMac("fd00:77::11")).toMatch(/^0e:50(:[0-9a-f]{2}){4}$/);
    expect(vtepMac("fd00:77:0::11")).toBe(vtepMac("fd00:77::11"));
    expect(vtepMac("fd00:77::12")).not.toBe(vtepMac("fd00:77::11"));
  });
});

describe("splitRoutes: peers that share a VTEP MAC", () => {
  // Found by hashing fd00:77::1, ::2, …: the 50,022nd address shares its 4 bytes with an earlier one.
  const [low, high] = ["fd00:77::3828", "fd00:77::c366"];
  const self = "fd00:99::1";
  const p1 = { dst: "fd00:10::/64", via: low, nodeName: "p1", nodeIPs: [low] };
  const p2 = { dst: "fd00:10:0:1::/64", via: high, nodeName: "p2", nodeIPs: [high] };
  const p3 = { dst: "fd00:10:0:2::/64", via: "fd00:77::5", nodeName: "p3", nodeIPs: ["fd00:77::5"] };
  const overlay = (s: RouteSplit) => s.kernel.filter((k) => k.dev).map((k) => k.nodeName);

  it("the two addresses do collide", () => expect(vtepMac(low)).toBe("0e:50:bc:e8:32:e0"));
  it("the two addresses do collide, either spelling", () => expect(vtepMac("fd00:77::0:c366")).toBe(vtepMac(low)));

  it("keeps the lower address's peer, leaves the other out and says why, naming both nodes and addresses; others are untouched", () => {
    const split = splitRoutes([p2, p3, p1], () => undefined, "vxlan", self);
    expect(overlay(split)).toEqual(["p3", "p1"]);
    expect(split.peers.map((p) => p.nodeName)).toEqual(["p3", "p1"]);
    expect(split.unreachable).toEqual([{ dst: p2.dst, nodeName: "p2", reason: expect.stringContaining(
      `its VXLAN MAC 0e:50:bc:e8:32:e0 (derived from ${high}) is also node p1's (from ${low}), which keeps the tunnel: one forwarding entry cannot reach both; give one of the two nodes another first node IP`) }]);
    // One forwarding entry for the MAC, to the peer that keeps it; no neighbour entry for the other's gateway.
    const plan = planVxlan({ vni: 1, port: 8472, local: self, mtu: 1430, addresses: [], peers: split.peers }, { fdb: [], neighbors: [] });
    expect(plan.bridge.filter((l) => l.includes("0e:50:bc:e8:32:e0"))).toEqual([`fdb replace 0e:50:bc:e8:32:e0 dev podnet.vxlan dst ${low} self permanent`]);
    expect(plan.ip.some((l) => l.includes("fd00:10:0:1::"))).toBe(false);
  });

  it("the peer the kernel already sends the MAC to keeps it: a node joining takes no working node's tunnel away", () => {
    const split = splitRoutes([p1, p2], () => undefined, "vxlan", self, () => false, [{ mac: "0e:50:bc:e8:32:e0", dst: "fd00:77:0::c366" }]);
    expect(overlay(split)).toEqual(["p2"]);
    expect(split.unreachable.map((u) => [u.nodeName, u.reason])).toEqual([["p1", expect.stringContaining(`its VXLAN MAC 0e:50:bc:e8:32:e0 (derived from ${low}) is also node p2's (from ${high}), which keeps the tunnel`)]]);
  });

  it("a peer with this node's own MAC is left out (its device would drop our frames as its own), whatever the fdb says", () => {
    const split = splitRoutes([p2, p3], () => undefined, "vxlan", low, () => false, [{ mac: "0e:50:bc:e8:32:e0", dst: high }]);
    expect(overlay(split)).toEqual(["p3"]);
    expect(split.unreachable.map((u) => u.reason)).toEqual([expect.stringContaining(`its VXLAN MAC 0e:50:bc:e8:32:e0 (derived from ${high}) is also this node's (from ${low})`)]);
  });

  it("only the overlay routes go: a route of the peer to a neighbour address stays", () => {
    // p2's IPv6 pods are routed directly through its second address on this node's subnet; its IPv4 pods need the tunnel.
    const mixed = [{ ...p2, nodeIPs: [high, "fd00:1::5"] }, { dst: "10.244.2.0/24", nodeName: "p2", nodeIPs: [high, "fd00:1::5"] }];
    const split = splitRoutes([p1, ...mixed], deviceFor, "auto", "fd00:1::1");
    expect(split.kernel.map((k) => `${k.nodeName} ${k.dst} ${k.dev ?? "direct"}`)).toEqual(["p1 fd00:10::/64 podnet.vxlan", "p2 fd00:10:0:1::/64 direct"]);
    expect(split.unreachable.map((u) => `${u.nodeName} ${u.dst}`)).toEqual(["p2 10.244.2.0/24"]);
  });

  it("two peers with one endpoint address (two Nodes claim it): the second is left out, said so", () => {
    const twin = { ...p3, dst: "fd00:10:0:3::/64", nodeName: "twin" };
    const split = splitRoutes([p3, twin], () => undefined, "vxlan", self);
    expect(split.unreachable.map((u) => [u.nodeName, u.reason])).toEqual([["twin", "its VXLAN endpoint fd00:77::5 is also node p3's (two Nodes claim the address?), which keeps the tunnel"]]);
  });

  it("no shared MAC: the split is handed back as it is", () => {
    expect(splitRoutes([p1, p3], () => undefined, "vxlan", self).unreachable).toEqual([]);
  });
});

describe("tunnelMtu", () => {
  it.each([
    ["the link's less 50 over IPv4", 1500, 4, true, 1450],
    ["the link's less 70 over IPv6", 1500, 6, true, 1430],
    ["never under IPv6's 1280 while it carries IPv6 (below it the kernel disables IPv6 on the device)", 1300, 4, true, 1280],
    ["not raised over an IPv6 underlay (the node does not fragment the outer IPv6 packets)", 1300, 6, true, 1230],
    ["an IPv4-only tunnel keeps the link's less headers", 1300, 4, false, 1250],
  ] as const)("%s", (_label, link, underlay, carriesIpv6, mtu) => {
    expect(tunnelMtu(link, underlay, carriesIpv6)).toBe(mtu);
  });
});

describe("tunnelMtuRefusal", () => {
  it("refuses an IPv6 underlay whose tunnel would fall under 1280 while it carries IPv6, naming the link's MTU and the floor", () => {
    expect(tunnelMtuRefusal(1300, 6, true)).toMatch(/link's MTU 1300 less VXLAN's 70 bytes over IPv6 is 1230, under IPv6's minimum 1280 .*at least 1350 bytes/);
  });
  it.each([["an IPv4 underlay (held at 1280)", 1300, 4, true], ["a tunnel without IPv6", 1300, 6, false], ["a link of 1350", 1350, 6, true]] as const)("not %s", (_label, link, underlay, v6) => {
    expect(tunnelMtuRefusal(link, underlay, v6)).toBeUndefined();
  });
});
