import { describe, expect, it } from "vitest";
import { bridgeNetfilterProblem, bridgeNetfilterSysctls, forwardingProblem, keepAcceptingRouterAdvertisements, neededSysctls } from "./forwarding.js";

describe("neededSysctls", () => {
  it.each([
    ["IPv4 only", [4], { "net.ipv4.ip_forward": "1" }],
    ["dual-stack", [4, 6], { "net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1" }],
    ["IPv6 only (IPv4 forwarding costs nothing and keeps one code path)", [6], { "net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1" }],
  ] as const)("%s", (_label, families, wanted) => {
    expect(neededSysctls([...families])).toEqual(wanted);
  });
});

describe("keepAcceptingRouterAdvertisements: before IPv6 forwarding goes on", () => {
  it.each([
    ["interfaces at the default 1 move to 2, `all` is not a device", "net.ipv6.conf.all.accept_ra = 1\nnet.ipv6.conf.default.accept_ra = 1\nnet.ipv6.conf.eth0.accept_ra = 1",
      { "net.ipv6.conf.default.accept_ra": "2", "net.ipv6.conf.eth0.accept_ra": "2" }],
    ["an owner's 0 (no RAs) and 2 stay as they are", "net.ipv6.conf.eth0.accept_ra = 0\nnet.ipv6.conf.eth1.accept_ra = 2\nnet.ipv6.conf.eth2.accept_ra = 1",
      { "net.ipv6.conf.eth2.accept_ra": "2" }],
    ["VLAN devices appear with '/' for '.' and are written back the same way", "net.ipv6.conf.bond0/100.accept_ra = 1", { "net.ipv6.conf.bond0/100.accept_ra": "2" }],
    ["other sysctls that end alike are not touched", "net.ipv6.conf.eth0.accept_ra_defrtr = 1\nnet.ipv6.conf.eth0.accept_ra_pinfo = 1", {}],
    ["nothing to do on a host without IPv6", "", {}],
  ] as const)("%s", (_label, listing, writes) => {
    expect(keepAcceptingRouterAdvertisements(listing)).toEqual(writes);
  });
});

describe("bridged pod traffic through netfilter (br_netfilter)", () => {
  it("IPv4 always, IPv6 with an IPv6 pod CIDR", () => {
    expect(bridgeNetfilterSysctls([4])).toEqual({ "net.bridge.bridge-nf-call-iptables": "1" });
    expect(bridgeNetfilterSysctls([4, 6])).toEqual({ "net.bridge.bridge-nf-call-iptables": "1", "net.bridge.bridge-nf-call-ip6tables": "1" });
  });

  it.each([
    ["module not loaded", "sysctl: cannot stat /proc/sys/net/bridge/bridge-nf-call-iptables: No such file or directory", /br_netfilter module is not loaded.*modprobe br_netfilter.*same-node Services and DNS fail/],
    ["read-only /proc/sys (the agent's container)", "sysctl: setting key \"net.bridge.bridge-nf-call-iptables\": Read-only file system", /Read-only file system: a Service's reply/],
  ])("says what it costs: %s", (_label, err, message) => {
    expect(bridgeNetfilterProblem(err)).toMatch(message);
  });
});

describe("forwardingProblem", () => {
  it("a read-only /proc/sys (the chart's agent container) says where forwarding is set and how to get IPv6 there", () => {
    // What procps's sysctl prints with /proc/sys bind-mounted read-only (measured in a scratch mount namespace).
    const err = 'sysctl -w net.ipv6.conf.all.forwarding=1 failed (255): sysctl: permission denied on key "net.ipv6.conf.all.forwarding"';
    expect(forwardingProblem(err)).toMatch(/^sysctl -w .*permission denied on key .*: \/proc\/sys is not writable .*init container.*pool\.clusterCIDRs.*helm upgrade/);
  });
  it("a refused IPv4 key points at the init container, not at IPv6 values", () => {
    const err = 'sysctl -w net.ipv4.ip_forward=1 failed (255): sysctl: permission denied on key "net.ipv4.ip_forward"';
    expect(forwardingProblem(err)).toMatch(/IPv4 forwarding is off: the chart's init container sets it; check that it ran/);
    expect(forwardingProblem(err)).not.toMatch(/IPv6/);
  });
  it("a refused accept_ra write says what it costs the node and how to get it set, not how to get IPv6 ranges", () => {
    const err = 'sysctl -w net.ipv6.conf.eth0.accept_ra=2 failed (255): sysctl: permission denied on key "net.ipv6.conf.eth0.accept_ra"';
    expect(forwardingProblem(err)).toMatch(/ignores router advertisements .*init container moves them to 2/);
    expect(forwardingProblem(err)).not.toMatch(/pool\.clusterCIDRs/);
  });
  it("any other failure is passed on as it is", () => {
    expect(forwardingProblem("sysctl: cannot stat /proc/sys/net/ipv6/conf/all/forwarding: No such file or directory")).toBe("sysctl: cannot stat /proc/sys/net/ipv6/conf/all/forwarding: No such file or directory");
  });
});
