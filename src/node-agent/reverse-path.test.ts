import { describe, expect, it } from "vitest";
import { parseRpFilters, reversePathDevices, reversePathProblem, strictDevices, uplinkOf } from "./reverse-path.js";

describe("reversePathDevices: where pod traffic between nodes that see each other differently arrives", () => {
  const base = { overlay: "auto" as const, overlayDevice: true, uplink: "eth0", tunnelsToPeers: true };
  it.each([
    ["a node that tunnels to a peer: the tunnel and its uplink", base, ["podnet.vxlan", "eth0"]],
    ["a node that routes every peer directly: the tunnel only (a peer may still tunnel to it), the uplink as its owner set it", { ...base, tunnelsToPeers: false }, ["podnet.vxlan"]],
    ["overlay vxlan: the same as auto", { ...base, overlay: "vxlan" as const }, ["podnet.vxlan", "eth0"]],
    ["overlay none: no tunnel, both sides route directly", { ...base, overlay: "none" as const }, []],
    ["no device yet (no node IP mirrored): nothing tunnels", { ...base, overlayDevice: false, tunnelsToPeers: false }, []],
    ["a node IP on lo (BGP): no uplink of podnet's to loosen", { ...base, uplink: undefined }, ["podnet.vxlan"]],
  ])("%s", (_label, input, devices) => {
    expect(reversePathDevices(input)).toEqual(devices);
  });
});

describe("strictDevices: the kernel filters by the larger of conf.all and conf.<device>", () => {
  const dev = (entries: Array<[string, number]>) => new Map(entries);
  it.each([
    ["all strict, device off: strict (CIS: all=1)", 1, [["eth0", 0]], ["eth0"]],
    ["all strict, device strict", 1, [["eth0", 1]], ["eth0"]],
    ["all strict, device loose: loose already", 1, [["eth0", 2]], []],
    ["all off, device strict", 0, [["eth0", 1]], ["eth0"]],
    ["all loose wins over a strict device (Ubuntu's all=2)", 2, [["eth0", 1]], []],
    ["both off", 0, [["eth0", 0]], []],
    ["a device whose value could not be read (gone meanwhile) is left alone", 1, [], []],
  ] as Array<[string, number, Array<[string, number]>, string[]]>)("%s", (_label, all, perDevice, strict) => {
    expect(strictDevices(["eth0"], all, dev(perDevice))).toEqual(strict);
  });
});

describe("parseRpFilters", () => {
  it("reads `ip -4 -json netconf show` by interface, `all` and dotted names included", () => {
    const json = JSON.stringify([
      { family: "inet", interface: "lo", forwarding: false, rp_filter: "off" },
      { family: "inet", interface: "podnet.vxlan", forwarding: false, rp_filter: "loose" },
      { family: "inet", interface: "eth0", rp_filter: "strict" },
      { family: "inet", interface: "all", forwarding: false, rp_filter: "strict" },
      { family: "inet", interface: "odd", rp_filter: "something new" },
    ]);
    expect([...parseRpFilters(json)]).toEqual([["lo", 0], ["podnet.vxlan", 2], ["eth0", 1], ["all", 1]]);
  });
  it("nothing from nothing", () => {
    expect(parseRpFilters("").size).toBe(0);
  });
});

describe("uplinkOf", () => {
  const addresses = [{ dev: "eth0", local: "192.168.1.5", prefixlen: 24 }, { dev: "lo", local: "10.0.0.9", prefixlen: 32 }, { dev: "dummy0", local: "10.0.0.8", prefixlen: 32, kind: "dummy" }];
  it.each([
    ["the device carrying the node IP", "192.168.1.5", "eth0"],
    ["a node IP on lo: none", "10.0.0.9", undefined],
    ["a node IP on a dummy device: none", "10.0.0.8", undefined],
    ["a node IP this node does not have (yet): none", "192.168.1.6", undefined],
    ["no node IP: none", undefined, undefined],
  ])("%s", (_label, ip, dev) => {
    expect(uplinkOf(ip, addresses)).toBe(dev);
  });
});

describe("reversePathProblem", () => {
  it("says what is dropped and gives the sysctl keys, a device's dots written as slashes", () => {
    expect(reversePathProblem(["podnet.vxlan", "eth0"], "Read-only file system")).toBe("reverse-path filtering is strict on podnet.vxlan, eth0 and could not be made "
      + "loose (Read-only file system): pod traffic between this node and a node that sees it differently (one routes directly, the other through podnet.vxlan) "
      + "is dropped; set it on the node: sysctl -w net.ipv4.conf.podnet/vxlan.rp_filter=2 net.ipv4.conf.eth0.rp_filter=2");
  });
});
