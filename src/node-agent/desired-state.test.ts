import { describe, expect, it } from "vitest";
import { desiredNodeState, noPodCidrReason, type ObservedNodeCidr } from "./desired-state.js";

const rec = (nodeName: string, cidr: string, nodeIPs: string[], phase = "Allocated"): ObservedNodeCidr =>
  ({ name: cidr.replace(/[.:/]/g, "-"), nodeName, cidr, nodeIPs, phase });

describe("desiredNodeState", () => {
  it("routes every other node's CIDR via its same-family node IP and keeps its own CIDRs IPv4 first", () => {
    const s = desiredNodeState([
      rec("a", "fd00:10:244:1::/64", ["192.168.1.1", "fd00::1"]), rec("a", "10.244.1.0/24", ["192.168.1.1", "fd00::1"]),
      rec("b", "10.244.2.0/24", ["192.168.1.2", "fd00::2"]), rec("b", "fd00:10:244:2::/64", ["192.168.1.2", "fd00::2"]),
    ], "a");
    expect(s.ownCidrs).toEqual(["10.244.1.0/24", "fd00:10:244:1::/64"]);
    expect(s.routes).toEqual([
      { dst: "10.244.2.0/24", via: "192.168.1.2", nodeName: "b", nodeIPs: ["192.168.1.2", "fd00::2"] },
      { dst: "fd00:10:244:2::/64", via: "fd00::2", nodeName: "b", nodeIPs: ["192.168.1.2", "fd00::2"] },
    ]);
    expect(s.families).toEqual([4, 6]);
    expect(s.rejected).toEqual([]);
  });

  it("ignores released and quarantined records", () => {
    const s = desiredNodeState([rec("b", "10.244.2.0/24", ["192.168.1.2"], "Released"), rec("c", "10.244.3.0/24", ["192.168.1.3"], "Quarantined")], "a");
    expect(s.routes).toEqual([]);
    expect(s.podNetwork).toEqual([]);
  });

  it.each([
    ["a node IP inside the pod range", ["10.244.9.7"], "InvalidNodeIP", "inside pod CIDR"],
    ["a loopback node IP", ["127.0.0.1"], "InvalidNodeIP", "loopback"],
    ["an unparsable node IP", ["node-b.example"], "InvalidNodeIP", "unparsable"],
    ["a loopback node IP of the other family, when it would carry the tunnel", ["::1"], "InvalidNodeIP", "loopback"],
  ])("rejects %s and still routes to healthy nodes", (_case, ips, reason, message) => {
    const s = desiredNodeState([rec("b", "10.244.2.0/24", ips), rec("c", "10.244.3.0/24", ["192.168.1.3"]), rec("x", "10.244.9.0/24", ["192.168.1.9"])], "a");
    expect(s.rejected).toHaveLength(1);
    expect(s.rejected[0]).toMatchObject({ nodeName: "b", reason });
    expect(s.rejected[0]!.message).toContain(message);
    expect(s.routes.map((r) => r.nodeName)).toEqual(["c", "x"]);
  });

  it.each([
    ["the cloud's metadata range", "169.254.169.0/24", "overlaps the special-purpose range 169.254.0.0/16 (link-local)"],
    ["a host route to another node's address", "192.168.1.3/32", "is narrower than a node's pod CIDR can be (/30)"],
    ["the whole IPv6 space", "::/0", "overlaps the special-purpose range ::/8 (reserved (unspecified, loopback, IPv4-mapped))"],
  ])("routes no record over %s (written before the schema refused it), and still routes to healthy nodes", (_case, cidr, message) => {
    const s = desiredNodeState([rec("b", cidr, ["192.168.1.2", "fd00::2"]), rec("c", "10.244.3.0/24", ["192.168.1.3"])], "a");
    expect(s.rejected).toEqual([{ name: rec("b", cidr, []).name, nodeName: "b", reason: "InvalidCIDR", message: `${cidr} of node b ${message}; no route is installed for it` }]);
    expect(s.routes.map((r) => r.dst)).toEqual(["10.244.3.0/24"]);
    expect(s.podNetwork).toEqual(["10.244.3.0/24"]);
  });

  it("routes a CIDR whose node has no IP of its family without a gateway: only the overlay can carry it", () => {
    const s = desiredNodeState([rec("b", "fd00:10:244:2::/64", ["192.168.1.2"]), rec("c", "10.244.3.0/24", ["192.168.1.3", "fd00::3"])], "a");
    expect(s.rejected).toEqual([]);
    expect(s.routes).toEqual([
      { dst: "10.244.3.0/24", via: "192.168.1.3", nodeName: "c", nodeIPs: ["192.168.1.3", "fd00::3"] },
      { dst: "fd00:10:244:2::/64", nodeName: "b", nodeIPs: ["192.168.1.2"] },
    ]);
  });

  it("withholds routes for two records claiming overlapping ranges, and only for them", () => {
    const s = desiredNodeState([rec("b", "10.244.2.0/24", ["192.168.1.2"]), rec("c", "10.244.2.0/23", ["192.168.1.3"]), rec("d", "10.244.4.0/24", ["192.168.1.4"])], "a");
    expect(s.rejected.map((r) => [r.nodeName, r.reason]).sort()).toEqual([["b", "OverlappingCIDR"], ["c", "OverlappingCIDR"]]);
    expect(s.routes.map((r) => r.dst)).toEqual(["10.244.4.0/24"]);
  });

  it("names this node's own refused records, so it says why it has no pod CIDR instead of \"none yet\"", () => {
    const s = desiredNodeState([rec("a", "10.244.2.0/24", ["192.168.1.1"]), rec("c", "10.244.2.0/23", ["192.168.1.3"]), rec("d", "10.244.4.0/24", ["192.168.1.4"])], "a");
    expect(s.ownCidrs).toEqual([]);
    expect(s.ownWithheld).toEqual([expect.objectContaining({ nodeName: "a", reason: "OverlappingCIDR", message: expect.stringContaining("10.244.2.0/24 of node a overlaps") })]);
    expect(noPodCidrReason(s)).toMatch(/^this node's NodeCIDRs are not used: 10-244-2-0-24: OverlappingCIDR: 10\.244\.2\.0\/24 of node a overlaps/);
    const fine = desiredNodeState([rec("d", "10.244.4.0/24", ["192.168.1.4"])], "a");
    expect(fine.ownWithheld).toEqual([]);
    expect(noPodCidrReason(fine)).toBe("no NodeCIDR is allocated to this node yet");
  });

  it("finds an overlap hidden behind a large range that contains two disjoint ones", () => {
    const s = desiredNodeState([rec("b", "10.0.0.0/8", ["192.168.1.2"]), rec("c", "10.1.0.0/24", ["192.168.1.3"]), rec("d", "10.200.0.0/24", ["192.168.1.4"])], "a");
    expect(s.rejected.map((r) => r.nodeName).sort()).toEqual(["b", "c", "d"]);
  });
});

describe("desiredNodeState: the pod network that is never masqueraded", () => {
  it.each([
    ["pool ranges cover the node CIDRs: just the ranges", ["10.244.0.0/16"], ["10.244.1.0/24", "10.244.2.0/24"], ["10.244.0.0/16"]],
    ["a live CIDR outside every pool is added (in network order)", ["10.244.0.0/16"], ["10.244.1.0/24", "10.99.0.0/24"], ["10.99.0.0/24", "10.244.0.0/16"]],
    ["adjacent pool ranges are merged", ["10.244.1.0/24", "10.244.0.0/24", "10.244.2.0/23"], ["10.244.1.0/24"], ["10.244.0.0/22"]],
    ["a nested pool range counts once", ["10.244.0.0/16", "10.244.8.0/21"], ["10.244.9.0/24"], ["10.244.0.0/16"]],
    ["a live CIDR outside the pools merges with the range it adjoins", ["10.244.0.0/24"], ["10.244.1.0/24"], ["10.244.0.0/23"]],
    ["a live CIDR wider than the pool range holding its network is outside it", ["10.244.0.0/25"], ["10.244.0.0/24"], ["10.244.0.0/24"]],
    ["no pools known (pools not readable yet): the node CIDRs", [], ["10.244.2.0/24", "10.244.1.0/24"], ["10.244.1.0/24", "10.244.2.0/24"]],
    ["both families", ["10.244.0.0/16", "fd00:10:244::/56"], ["10.244.1.0/24", "fd00:10:244:1::/64"], ["10.244.0.0/16", "fd00:10:244::/56"]],
    ["an unparsable pool range is skipped", ["not-a-cidr", "10.244.0.0/16"], ["10.244.1.0/24"], ["10.244.0.0/16"]],
  ])("%s", (_what, pools, nodeCidrs, expected) => {
    const records = nodeCidrs.map((c, i) => rec(`n${i}`, c, [`192.168.1.${i + 1}`]));
    expect(desiredNodeState(records, "n0", pools).podNetwork).toEqual(expected);
  });

  it("finds node CIDRs inside or outside thousands of scattered pool ranges, and follows a change of the ranges", () => {
    const pools = Array.from({ length: 2000 }, (_, i) => `10.${i >> 6}.${(i & 63) * 4}.0/24`); // every fourth /24: nothing merges
    const records = [rec("a", "10.17.8.0/24", ["192.168.1.1"]), rec("b", "10.17.9.0/24", ["192.168.1.2"]), rec("c", "10.31.252.0/24", ["192.168.1.3"])];
    const s = desiredNodeState(records, "a", pools).podNetwork;
    expect(s).toHaveLength(2001);
    expect(s.filter((c) => c.startsWith("10.17.") && Number(c.split(".")[2]) >= 8 && Number(c.split(".")[2]) < 12)).toEqual(["10.17.8.0/23"]);
    expect(s.at(-1)).toBe("10.31.252.0/24");
    expect(desiredNodeState(records, "a", ["10.0.0.0/8"]).podNetwork).toEqual(["10.0.0.0/8"]);
  });

  it("does not change when a node joins inside a pool range", () => {
    const before = desiredNodeState([rec("a", "10.244.1.0/24", ["192.168.1.1"])], "a", ["10.244.0.0/16"]);
    const after = desiredNodeState([rec("a", "10.244.1.0/24", ["192.168.1.1"]), rec("b", "10.244.2.0/24", ["192.168.1.2"])], "a", ["10.244.0.0/16"]);
    expect(after.podNetwork).toEqual(before.podNetwork);
    expect(after.routes).toHaveLength(1);
  });

  it("judges the same record objects afresh as other records come and go", () => {
    const b = rec("b", "10.244.2.0/24", ["10.250.0.7"]);
    const c = rec("c", "10.244.3.0/24", ["192.168.1.3"]);
    expect(desiredNodeState([b, c], "a").routes.map((r) => r.nodeName)).toEqual(["b", "c"]);
    // A record whose range holds b's node IP arrives: b's route would loop, so it is withheld ...
    const wide = desiredNodeState([b, c, rec("d", "10.250.0.0/24", ["192.168.1.4"])], "a");
    expect(wide.rejected.map((r) => [r.nodeName, r.reason])).toEqual([["b", "InvalidNodeIP"]]);
    expect(wide.routes.map((r) => r.nodeName)).toEqual(["c", "d"]);
    // ... and b is routed again once that record is gone; a copy of c with a new node IP is routed through it.
    const back = desiredNodeState([b, { ...c, nodeIPs: ["192.168.1.33"] }], "a");
    expect(back.rejected).toEqual([]);
    expect(back.routes.map((r) => `${r.nodeName} via ${r.via}`)).toEqual(["b via 10.250.0.7", "c via 192.168.1.33"]);
  });

  it("lists routes in address order, IPv4 before IPv6", () => {
    // The two IPv6 networks differ only below their top 53 bits.
    const s = desiredNodeState([rec("w", "fd00:10:244:2::/64", ["fd00::2"]), rec("x", "fd00:10:244:1::/64", ["fd00::1"]),
      rec("y", "10.244.10.0/24", ["192.168.1.10"]), rec("z", "10.244.9.0/24", ["192.168.1.9"])], "a");
    expect(s.routes.map((r) => r.dst)).toEqual(["10.244.9.0/24", "10.244.10.0/24", "fd00:10:244:1::/64", "fd00:10:244:2::/64"]);
  });
});

describe("desiredNodeState: one pod CIDR per family for this node", () => {
  const own = (cidr: string, created?: number): ObservedNodeCidr => ({ ...rec("a", cidr, ["192.168.1.1"]), ...(created === undefined ? {} : { created }) });
  it.each([
    ["one per family: nothing unused", [own("10.244.1.0/24"), own("fd00:10:244:1::/64")], ["10.244.1.0/24", "fd00:10:244:1::/64"], []],
    ["a later second IPv4 record sorting first by name: the older one stays", [own("10.244.9.0/24", 1_000), own("10.244.0.0/24", 2_000)], ["10.244.9.0/24"], ["10.244.0.0/24"]],
    ["the same, listed the other way round", [own("10.244.0.0/24", 2_000), own("10.244.9.0/24", 1_000)], ["10.244.9.0/24"], ["10.244.0.0/24"]],
    ["created in the same second: the first by name", [own("10.244.9.0/24", 1_000), own("10.244.0.0/24", 1_000)], ["10.244.0.0/24"], ["10.244.9.0/24"]],
    ["two of each family", [own("fd00:10:244:2::/64", 2), own("10.244.2.0/24", 2), own("fd00:10:244:1::/64", 1), own("10.244.1.0/24", 1)],
      ["10.244.1.0/24", "fd00:10:244:1::/64"], ["10.244.2.0/24", "fd00:10:244:2::/64"]],
  ])("%s", (_name, records, ownCidrs, unused) => {
    const s = desiredNodeState([...records, rec("b", "10.244.5.0/24", ["192.168.1.2"])], "a");
    expect(s.ownCidrs).toEqual(ownCidrs);
    expect(s.unusedOwnCidrs).toEqual(unused);
    expect(s.rejected).toEqual([]);
    expect(s.routes.map((r) => r.dst)).toEqual(["10.244.5.0/24"]);
  });
});

describe("desiredNodeState: othersLive, who holds a range, for a node without a record of its own", () => {
  const n9 = (nodeIPs: string[]) => rec("n9", "10.244.1.0/24", nodeIPs);
  it.each([
    ["routed", [n9(["192.168.1.9"])], "a", [{ dst: "10.244.1.0/24", nodeName: "n9" }]],
    ["node IPs not mirrored yet (no route, no rejection)", [n9([])], "a", [{ dst: "10.244.1.0/24", nodeName: "n9" }]],
    ["refused for its node IP (InvalidNodeIP)", [n9(["127.0.0.1"])], "a", [{ dst: "10.244.1.0/24", nodeName: "n9" }]],
    ["two overlapping records, both withheld", [n9(["192.168.1.9"]), rec("n8", "10.244.0.0/23", ["192.168.1.8"])], "a",
      [{ dst: "10.244.0.0/23", nodeName: "n8" }, { dst: "10.244.1.0/24", nodeName: "n9" }]],
    ["Released or Quarantined: nobody holds it", [rec("n9", "10.244.1.0/24", [], "Released"), rec("n8", "10.244.2.0/24", [], "Quarantined")], "a", []],
    ["this node has a record: not listed at all", [rec("a", "10.244.5.0/24", ["192.168.1.1"]), n9([])], "a", []],
  ])("%s", (_name, records, self, expected) => {
    expect(desiredNodeState(records, self).othersLive).toEqual(expected);
  });
});
