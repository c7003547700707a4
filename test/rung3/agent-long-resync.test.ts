import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNetBed, ipIn, ipJson, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ExpectedRoutes, netEvent, OnLinkSubnets, removesHolder, type AddressEvent } from "../../src/node-agent/link-watch.js";
import { putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { podnetResource } from "../../src/lib/k8s.js";

const fx = useControlPlane();
let bed: NetBed;
const agents: TestAgent[] = [];
const routes = (ns: string) => ipJson<Array<{ dst: string }>>(ns, "route", "show", "proto", "249").map((r) => r.dst).sort();

describe("netEvent", () => {
  it.each([
    ["3: eth0@if7: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state LOWERLAYERDOWN", { kind: "link", device: "eth0" }],
    ["2: ens5: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 qdisc mq state UP", { kind: "link", device: "ens5" }],
    ["Deleted 9: veth1a2b3c4d@if2: <BROADCAST,MULTICAST> mtu 1500", { kind: "link", device: "veth1a2b3c4d" }],
    ["3: eth0    inet 192.168.200.5/24 scope global eth0\\       valid_lft forever preferred_lft forever", { kind: "address", device: "eth0", address: "192.168.200.5/24", scope: "global", deleted: false }],
    ["Deleted 3: eth0    inet6 fd00:200::5/64 scope global nodad \\       valid_lft forever", { kind: "address", device: "eth0", address: "fd00:200::5/64", scope: "global", deleted: true }],
    ["9: veth1a2b3c4d    inet6 fe80::78dc:4aff:fe34:eb4b/64 scope link \\       valid_lft forever", { kind: "address", device: "veth1a2b3c4d", address: "fe80::78dc:4aff:fe34:eb4b/64", scope: "link", deleted: false }],
    ["12: kube-ipvs0    inet 10.96.0.10/32 scope global kube-ipvs0\\       valid_lft forever", { kind: "address", device: "kube-ipvs0", address: "10.96.0.10/32", scope: "global", deleted: false }],
    ["7: wg0    inet 10.1.1.1 peer 10.1.1.2/30 scope global wg0\\       valid_lft forever", { kind: "address", device: "wg0", address: "10.1.1.1/30", scope: "global", deleted: false }],
    ["    link/ether 9e:12:1d:49:b5:46 brd ff:ff:ff:ff:ff:ff", undefined],
    ["Deleted 10.244.3.0/24 via 192.168.50.3 dev eth0 proto 249 ", { kind: "route-gone", dst: "10.244.3.0/24" }],
    ["Deleted fd00:10:244:2::/64 nhid 9 via fd00:50::2 dev eth0 proto 249 metric 1024 pref medium", { kind: "route-gone", dst: "fd00:10:244:2::/64" }],
    ["Deleted 10.244.3.0/24 nhid 9 proto 249 ", { kind: "route-gone", dst: "10.244.3.0/24" }], // nexthop_compat_mode=0: the id alone
    ["Deleted id 7 via 192.168.50.2 dev eth0 scope link proto 249 ", { kind: "nexthop-gone", via: "192.168.50.2" }],
    ["Deleted id 8 group 7/9 proto podnet ", { kind: "nexthop-gone" }],
    ["10.244.3.0/24 via 192.168.50.3 dev eth0 proto 249 ", undefined], // added: podnet's own doing or harmless
    ["Deleted 10.244.3.0/24 via 192.168.50.3 dev eth0 proto static ", { kind: "foreign-route-gone", dst: "10.244.3.0/24" }], // not podnet's
    ["Deleted 10.244.1.5 dev cali12ab scope link ", { kind: "foreign-route-gone", dst: "10.244.1.5" }],
    ["Deleted broadcast 10.244.1.255 dev cni0 table local proto kernel scope link src 10.244.1.1 ", undefined],
    ["Deleted local 10.244.3.1 dev podnet0 table local proto kernel scope host src 10.244.3.1 ", undefined],
  ])("%s → %o", (line, event) => expect(netEvent(line)).toEqual(event));
});

describe("OnLinkSubnets", () => {
  const event = (address: string, deleted = false, device = "eth0"): AddressEvent => ({ kind: "address", device, address, scope: "global", deleted });
  it("calls for a pass only when an on-link subnet appears or goes", () => {
    const subnets = new OnLinkSubnets();
    expect(subnets.changedBy(event("192.168.1.5/24"))).toBe(true);
    expect(subnets.changedBy(event("192.168.1.5/24"))).toBe(false); // seen again (a lifetime refresh)
    expect(subnets.changedBy(event("192.168.1.6/24"))).toBe(false); // a second address in the same subnet
    expect(subnets.changedBy(event("192.168.1.6/24", true))).toBe(false);
    expect(subnets.changedBy(event("192.168.1.5/24", true))).toBe(true); // the subnet is gone
    expect(subnets.changedBy(event("10.96.0.10/32", false, "kube-ipvs0"))).toBe(false); // a Service IP (IPVS): no neighbours
    expect(subnets.changedBy(event("fd00::10/128", false, "lo"))).toBe(false);
    expect(subnets.changedBy(event("fd00:1::5/64"))).toBe(true);
    expect(subnets.changedBy(event("10.1.1.1"))).toBe(true); // a form it cannot read: look again rather than miss it
    const own = new OnLinkSubnets(["podnet0"]);
    expect(own.changedBy(event("10.244.1.1/24", false, "podnet0"))).toBe(false); // the pod bridge's gateway: podnet's doing
    expect(own.changedBy({ ...event("fe80::1/64", false, "veth1"), scope: "link" })).toBe(false); // a pod's veth
    expect(own.changedBy(event("192.168.1.5/24"))).toBe(true);
    own.forget();
    expect(own.changedBy(event("192.168.1.5/24"))).toBe(true); // seen afresh after a monitor restart
  });
});

describe("removesHolder", () => {
  it("wakes a pass only for a route of a reported holder", () => {
    const holders = [{ routes: [{ dst: "10.244.1.5/32" }, { dst: "10.244.1.0/24" }] }];
    expect(removesHolder({ kind: "foreign-route-gone", dst: "10.244.1.5" }, holders)).toBe(true);
    expect(removesHolder({ kind: "foreign-route-gone", dst: "10.244.1.0/24" }, holders)).toBe(true);
    expect(removesHolder({ kind: "foreign-route-gone", dst: "10.244.9.0/24" }, holders)).toBe(false);
    expect(removesHolder({ kind: "foreign-route-gone", dst: "10.244.1.5" }, undefined)).toBe(false); // nothing reported: kube-proxy's churn wakes nothing
  });
});

describe("ExpectedRoutes", () => {
  it("calls a deletion someone else's only for a route still wanted or a nexthop one goes through", () => {
    const expected = new ExpectedRoutes();
    expected.expect([{ dst: "10.244.2.0/24", via: "192.168.1.2", nodeIPs: ["192.168.1.2", "192.168.2.2"] }, { dst: "fd00:10:244:2::/64" }]);
    expect(expected.wanted({ kind: "route-gone", dst: "10.244.2.0/24" })).toBe(true);
    expect(expected.wanted({ kind: "route-gone", dst: "fd00:10:244:2:0::/64" })).toBe(true); // the kernel's spelling
    expect(expected.wanted({ kind: "route-gone", dst: "10.244.9.0/24" })).toBe(false); // a departed node's: the agent's own
    expect(expected.wanted({ kind: "nexthop-gone", via: "192.168.1.2" })).toBe(true);
    expect(expected.wanted({ kind: "nexthop-gone", via: "192.168.1.9" })).toBe(false);
    expect(expected.wanted({ kind: "nexthop-gone", via: "10.244.2.0" })).toBe(true); // through the tunnel: the CIDR's first address
    expect(expected.wanted({ kind: "nexthop-gone", via: "fd00:10:244:2::" })).toBe(true);
    expect(expected.wanted({ kind: "nexthop-gone", via: "192.168.2.2" })).toBe(true); // another of the node's IPs
    expect(expected.wanted({ kind: "nexthop-gone" })).toBe(true); // a group or one it cannot place: look again
    expect(expected.wanted({ kind: "route-gone", dst: "not-a-prefix" })).toBe(true);
    expected.expect([]);
    expect(expected.wanted({ kind: "route-gone", dst: "10.244.2.0/24" })).toBe(false);
  });
});

// The kernel flushes nexthop objects, and the routes through them, from a device that loses its carrier, and does
// not restore them with the carrier. The resync is an hour away here: only the link watch can bring them back.
describe.skipIf(!isRoot())("node agent with a resync of an hour: woken by events and retries only (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("lf", 2, 68);
    for (const [i, n] of bed.nodes.entries()) await putNodeCidr(fx.api(), n.name, `10.244.${90 + i}.0/24`, [n.ip]);
    for (const n of bed.nodes) agents.push(await startAgent(fx, n, { "resync-period": "1h" }));
    await waitFor("routes", async () => (bed.nodes.every((n) => routes(n.ns).length === 1) ? true : undefined), 15_000);
  });
  afterAll(async () => {
    for (const a of agents) await a.stop();
    bed?.destroy();
  });

  it("has its routes back moments after the carrier returns, and reports them missing meanwhile", async () => {
    const [n1] = bed.nodes;
    // The switch's end of n1's cable: n1's eth0 loses its carrier, as when a switch port or NIC resets.
    ipIn(bed.switches[0]!, "link", "set", "p1", "down");
    await waitFor("routes flushed by the kernel", async () => (routes(n1!.ns).length === 0 ? true : undefined), 5_000);
    await waitFor("reported", async () => (agents[0]!.agent.lastOutcome?.routes.error ? true : undefined), 5_000);
    ipIn(bed.switches[0]!, "link", "set", "p1", "up");
    await waitFor("routes back", async () => (routes(n1!.ns).length === 1 ? true : undefined), 5_000);
    await waitFor("clean pass", async () => (agents[0]!.agent.lastOutcome?.routes.error === undefined ? true : undefined), 5_000);
    expect(routes(n1!.ns)).toEqual(["10.244.91.0/24"]);
  });

  it("routes neighbours directly again once the uplink's address is back after its link (ifupdown, DHCP, NetworkManager)", async () => {
    const [n1, n2] = bed.nodes;
    // Without the overlay, a pass while eth0 has no address withdraws the route as unreachable, which is no
    // failure: no retry comes, and only the address's return can bring the route back (the resync is 1 h away).
    await agents[0]!.stop();
    agents[0] = await startAgent(fx, n1!, { "resync-period": "1h", overlay: "none" });
    await waitFor("route", async () => (routes(n1!.ns).length === 1 ? true : undefined), 10_000);
    const devOf = () => ipJson<Array<{ dst: string; dev?: string; gateway?: string; nhid?: number }>>(n1!.ns, "route", "show", "proto", "249");
    // The interface restarted: addresses gone, link down and up, and the addresses back a moment later.
    ipIn(n1!.ns, "addr", "flush", "dev", "eth0");
    ipIn(n1!.ns, "link", "set", "eth0", "down");
    ipIn(n1!.ns, "link", "set", "eth0", "up");
    await waitFor("a pass while eth0 has no address: the peer unreachable", async () => (agents[0]!.agent.lastOutcome?.routes.unreachable.length ? true : undefined), 5_000);
    expect(routes(n1!.ns)).toEqual([]);
    expect(agents[0]!.agent.lastOutcome?.routes.error).toBeUndefined();
    // Let the passes this change set off (its status write among them) run out first: none may be what repairs.
    for (let seen = -1, round = 0; seen !== agents[0]!.agent.syncs && round < 8; round++) {
      seen = agents[0]!.agent.syncs;
      await new Promise((r) => setTimeout(r, 2_500)); // longer than a held-back status update waits (2 s at least)
    }
    ipIn(n1!.ns, "addr", "add", `${n1!.ip}/24`, "dev", "eth0");
    ipIn(n1!.ns, "-6", "addr", "add", `${n1!.ip6}/64`, "dev", "eth0", "nodad");
    // Only the address event can wake the agent now (resync 1 h): the route goes via n2 on eth0 again.
    await waitFor("direct route back", async () => {
      const nexthops = ipJson<Array<{ id: number; gateway?: string; dev?: string }>>(n1!.ns, "nexthop", "show");
      const [route] = devOf();
      const nh = nexthops.find((n) => n.id === route?.nhid);
      return route && (route.gateway === n2!.ip || nh?.gateway === n2!.ip) && (route.dev ?? nh?.dev) === "eth0" ? true : undefined;
    }, 5_000);
    expect(routes(n1!.ns)).toEqual(["10.244.91.0/24"]);
  });

  it("puts routes back at once that another program flushed (systemd-networkd's foreign routes), routes or nexthops", async () => {
    const [n1] = bed.nodes;
    const before = routes(n1!.ns);
    expect(before).toEqual(["10.244.91.0/24"]);
    // networkd removes each route it does not know, one by one (`ip route flush` refuses routes through nexthop
    // objects); removing a nexthop object takes its routes along without a notice for each.
    ipIn(n1!.ns, "route", "del", before[0]!, "proto", "249");
    await waitFor("route back after a route flush", async () => (routes(n1!.ns).length === 1 ? true : undefined), 5_000);
    ipIn(n1!.ns, "nexthop", "flush", "proto", "249");
    await waitFor("route back after a nexthop flush", async () => (routes(n1!.ns).length === 1 ? true : undefined), 5_000);
    expect(routes(n1!.ns)).toEqual(before);

    // Through the tunnel, a route's nexthop goes via the first address of the peer's pod CIDR, not its node IP.
    await agents[0]!.stop();
    agents[0] = await startAgent(fx, n1!, { "resync-period": "1h", overlay: "vxlan" });
    try {
      const tunnelled = () => ipJson<Array<{ dst: string; dev?: string }>>(n1!.ns, "nexthop", "show").some((n) => n.dev === "podnet.vxlan") && routes(n1!.ns).length === 1;
      await waitFor("route through the tunnel", async () => (tunnelled() ? true : undefined), 10_000);
      ipIn(n1!.ns, "nexthop", "flush", "proto", "249");
      await waitFor("tunnel route back after a nexthop flush", async () => (tunnelled() ? true : undefined), 5_000);
    } finally {
      await agents[0]!.stop();
      agents[0] = await startAgent(fx, n1!, { "resync-period": "1h" });
    }
  });

  it("reports a foreign route that only a failed batch revealed at once, not at the next full pass", async () => {
    const [n1] = bed.nodes;
    // Added by hand after the agent last read the kernel: its event pass plans an add, which the kernel refuses.
    ipIn(n1!.ns, "route", "add", "10.244.95.0/24", "via", "192.168.68.50", "proto", "static");
    const name = await putNodeCidr(fx.api(), "lf-ghost", "10.244.95.0/24", ["192.168.68.50"]);
    try {
      const outcome = await waitFor("conflict reported", async () => {
        const o = agents[0]!.agent.lastOutcome;
        return o?.routes.conflicts.some((c) => c.includes("10.244.95.0/24")) ? o : undefined;
      }, 5_000);
      expect(outcome.routes.error).toBeUndefined(); // the foreign route is left alone, reported, not retried as a failure
      expect(ipJson<Array<{ protocol: string }>>(n1!.ns, "route", "show", "10.244.95.0/24")).toEqual([expect.objectContaining({ protocol: "static" })]);
    } finally {
      await fx.api().custom.deleteClusterCustomObject({ ...podnetResource("nodecidrs"), name });
      ipIn(n1!.ns, "route", "del", "10.244.95.0/24", "proto", "static");
    }
  });

  it("writes its conflist moments after the runtime creates the config dir, retrying the pass that failed", async () => {
    const late = bed.addNode("n3");
    await putNodeCidr(fx.api(), late.name, "10.244.93.0/24", [late.ip]);
    const parent = mkdtempSync(join(tmpdir(), "podnet-late-dir-"));
    const confDir = join(parent, "net.d"); // not there yet: the container runtime makes it when it starts
    const agent = await startAgent(fx, late, { "resync-period": "1h", "cni-conf-dir": confDir });
    try {
      await waitFor("the missing dir reported", async () => (agent.agent.lastOutcome?.cni.error ? true : undefined), 5_000);
      mkdirSync(confDir);
      // Before, nothing woke the agent: the conflist came with the next resync, an hour later.
      await waitFor("conflist written and reported", async () =>
        (existsSync(join(confDir, "10-podnet.conflist")) && agent.agent.lastOutcome?.cni.error === undefined ? true : undefined), 10_000);
    } finally {
      await agent.stop();
      rmSync(parent, { recursive: true, force: true });
    }
  });
});
