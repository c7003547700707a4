import { describe, expect, it } from "vitest";
import { linkInfoOf, type JsonAddr } from "./ip-route.js";

const addr = (local: string, prefixlen: number, scope = "global") => ({ family: local.includes(":") ? "inet6" : "inet", local, prefixlen, scope });
const lo = (...extra: ReturnType<typeof addr>[]): JsonAddr => ({ ifname: "lo", mtu: 65536, link_type: "loopback", addr_info: [addr("127.0.0.1", 8, "host"), ...extra] });
const eth = (ifname: string, mtu: number, ip: string): JsonAddr => ({ ifname, mtu, link_type: "ether", addr_info: [addr(ip, 24)] });

describe("linkInfoOf (ip -details -json addr show)", () => {
  it("gives the node IP's own link MTU", () => {
    const links = linkInfoOf([lo(), eth("eth0", 1450, "192.168.1.5")]);
    expect(links.mtuOf("192.168.1.5")).toBe(1450);
    expect(links.deviceFor("192.168.1.9")).toBe("eth0");
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

  it("knows no MTU for a node IP on the loopback of a host with no uplink address (unnumbered links), but knows the IP is its own", () => {
    const links = linkInfoOf([lo(addr("10.0.0.5", 32), addr("fd00::5", 128)), { ifname: "eth0", mtu: 1500, link_type: "ether", addr_info: [addr("fe80::1", 64, "link")] }]);
    expect(links.mtuOf("10.0.0.5")).toBeUndefined();
    expect(links.isLocal("10.0.0.5")).toBe(true);
    expect(links.isLocal("fd00:0::5")).toBe(true);
    expect(links.isLocal("10.0.0.6")).toBe(false);
  });
});
