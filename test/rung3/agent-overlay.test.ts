import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mergePatch, podnetResource } from "../../src/lib/k8s.js";
import { nftChainCount } from "../../src/node-agent/masquerade.js";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { iperf } from "../../src/localcluster/iperf.js";
import { createNetBed, ipIn, ipJson, isRoot, type BedNode, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping, sourceSeenBy } from "../../src/localcluster/udp-probe.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

// Two subnets behind a router: n1 and n2 share 192.168.71.0/24, n3 sits alone on 192.168.72.0/24.
const fx = useControlPlane();
let bed: NetBed;
const agents = new Map<string, TestAgent>();
const pods: Pod[] = [];
const cidrs = (i: number) => [`10.244.${i}.0/24`, `fd00:10:244:${i}::/64`];
type JsonRoute = { dst: string; gateway?: string; dev: string; flags?: string[] };
const podnetRoutes = (ns: string) => [4, 6].flatMap((f) => ipJson<JsonRoute[]>(ns, `-${f}`, "route", "show", "proto", "249"))
  .map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}${r.flags?.includes("onlink") ? " onlink" : ""}`).sort();
const neighbours = (ns: string) => ipJson<Array<{ dst: string; lladdr?: string }>>(ns, "neigh", "show", "dev", "podnet.vxlan").map((n) => n.dst);
const fdbDestinations = (ns: string) => (JSON.parse(execFileSync("bridge", ["-n", ns, "-json", "fdb", "show", "dev", "podnet.vxlan"], { encoding: "utf8" }) || "[]") as Array<{ dst?: string }>)
  .flatMap((f) => (f.dst ? [f.dst] : []));
const node = (name: string): BedNode => bed.nodes.find((n) => n.name === name)!;

describe.skipIf(!isRoot())("node agent overlay: VXLAN to nodes behind a router, direct routes to neighbours (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("ov", 0, 71, 2);
    bed.addNode("n1", 0);
    bed.addNode("n2", 0);
    bed.addNode("n3", 1);
    for (const [i, n] of bed.nodes.entries()) for (const c of cidrs(i + 1)) await putNodeCidr(fx.api(), n.name, c, [n.ip, n.ip6]);
    for (const n of bed.nodes) agents.set(n.name, await startAgent(fx, n));
    await waitFor("routes everywhere and every node Ready", async () => {
      if (!bed.nodes.every((n) => podnetRoutes(n.ns).length === 4)) return undefined;
      for (const i of [1, 2, 3]) if (!(await conditionsOf(fx.api(), `10-244-${i}-0-24`)).some((c) => c.type === "Ready" && c.status === "True")) return undefined;
      return true;
    }, 20_000);
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    for (const a of agents.values()) await a.stop();
    bed?.destroy();
  });

  it("routes a neighbour directly and the node behind the router through podnet.vxlan, both families", () => {
    expect(podnetRoutes(node("n1").ns)).toEqual([
      "10.244.2.0/24 via 192.168.71.12 dev eth0",
      "10.244.3.0/24 via 10.244.3.0 dev podnet.vxlan onlink",
      "fd00:10:244:2::/64 via fd00:71::12 dev eth0",
      "fd00:10:244:3::/64 via fd00:10:244:3:: dev podnet.vxlan onlink",
    ]);
    expect(podnetRoutes(node("n3").ns)).toEqual([
      "10.244.1.0/24 via 10.244.1.0 dev podnet.vxlan onlink",
      "10.244.2.0/24 via 10.244.2.0 dev podnet.vxlan onlink",
      "fd00:10:244:1::/64 via fd00:10:244:1:: dev podnet.vxlan onlink",
      "fd00:10:244:2::/64 via fd00:10:244:2:: dev podnet.vxlan onlink",
    ]);
    const [link] = ipJson<Array<{ mtu: number; address: string; linkinfo: { info_data: { id: number; port: number; local: string } } }>>(node("n3").ns, "-d", "link", "show", "podnet.vxlan");
    expect(link!.linkinfo.info_data).toMatchObject({ id: 1, port: 8472, local: "192.168.72.13" });
    expect(link!.address).toBe("0e:50:c0:a8:48:0d"); // derived from 192.168.72.13: peers need no exchange
    expect(link!.mtu).toBe(1450);
  });

  it("turns IPv6 forwarding on without costing the node its router advertisements (accept_ra 1 → 2 first)", () => {
    const sysctl = (key: string) => execFileSync("ip", ["netns", "exec", node("n1").ns, "sysctl", "-n", key], { encoding: "utf8" }).trim();
    expect(sysctl("net.ipv6.conf.all.forwarding")).toBe("1");
    // With forwarding on, the kernel ignores RAs on interfaces at accept_ra 1 (the default), so the node would
    // drop its RA-learned default route when it expires; 2 keeps accepting them.
    expect(sysctl("net.ipv6.conf.eth0.accept_ra")).toBe("2");
    expect(sysctl("net.ipv6.conf.default.accept_ra")).toBe("2");
  });

  it("changes nothing on a pass after convergence (device, addresses, neighbours, fdb entries and routes all read back as planned)", async () => {
    for (const [name, a] of agents) {
      const outcome = await a.agent.syncNow();
      expect(outcome.routes).toMatchObject({ overlayChanges: 0, added: 0, replaced: 0, deleted: 0, installed: 4, overlay: name === "n3" ? 4 : 2 });
    }
  });

  it("gives pods the link's full MTU (the overlay only clamps) and reports the overlay routes in the NodeCIDR status", async () => {
    const conflist = JSON.parse(readFileSync(join(agents.get("n1")!.confDir, "10-podnet.conflist"), "utf8"));
    expect(conflist.plugins[0].mtu).toBe(1500);
    const conds = await waitFor("RoutesProgrammed", async () => {
      const c = await conditionsOf(fx.api(), "10-244-1-0-24");
      return c.find((x) => x.type === "RoutesProgrammed" && x.message.includes("VXLAN")) ? c : undefined;
    }, 15_000);
    expect(conds.find((c) => c.type === "RoutesProgrammed")).toMatchObject({ status: "True", message: "4/4 routes installed (2 through VXLAN)" });
    const obj = (await fx.api().custom.getClusterCustomObject({ ...podnetResource("nodecidrs"), name: "10-244-1-0-24" })) as { status: { agent: { overlayRoutes: number } } };
    expect(obj.status.agent.overlayRoutes).toBe(2);
  });

  it("connects pods across the router over VXLAN without NAT, IPv4 and IPv6, and pods on neighbours directly", async () => {
    const a = addPod(node("n1").ns, agents.get("n1")!.confDir, "ova");
    const c = addPod(node("n3").ns, agents.get("n3")!.confDir, "ovc");
    const b = addPod(node("n2").ns, agents.get("n2")!.confDir, "ovb");
    pods.push(a, b, c);
    expect(a.ips).toHaveLength(2);
    for (const [from, to] of [[a, c], [c, a], [c, b]] as const) {
      expect(ping(from.ns, to.ips[0]!)).toBe(true);
      expect(ping(from.ns, to.ips[1]!)).toBe(true);
      expect(await sourceSeenBy(to.ns, to.ips[0]!, from.ns, 7711)).toBe(from.ips[0]);
      expect(await sourceSeenBy(to.ns, to.ips[1]!, from.ns, 7712)).toBe(from.ips[1]);
    }
  });

  it("TCP into the overlay gets the tunnel's MSS, TCP to a neighbour the link's; other packets too big for the tunnel are fragmented or answered by the node", async () => {
    const [a, b, c] = ["ova", "ovb", "ovc"].map((name) => pods.find((p) => p.name === name)!) as [Pod, Pod, Pod];
    const clamped = () => nftChainCount(node("n1").ns, "forward");
    {
      const before = await clamped();
      // Pods' MTU is 1500 and the tunnel's 1450: without the clamp both would start at 1448 (1500 less IPv4, TCP
      // and timestamp headers) and the overlay connection would stall on its first full segment until path MTU
      // discovery caught up.
      const overlay = iperf(c.ns, c.ips[0]!, a.ns, { bytes: "2M" });
      const direct = iperf(b.ns, b.ips[0]!, a.ns, { bytes: "2M" });
      expect(overlay.mss).toBe(1450 - 20 - 20 - 12);
      expect(direct.mss).toBe(1448);
      expect(overlay.gbps).toBeGreaterThan(0);
      expect(await clamped()).toBeGreaterThan(before);
      const overlay6 = iperf(c.ns, c.ips[1]!, a.ns, { bytes: "1M" });
      expect(overlay6.mss).toBe(1450 - 40 - 20 - 12);
      // A full-size datagram without DF is fragmented by the node; with DF the node, the first hop, says why.
      const pingBig = (df: "do" | "dont") => spawnSync("ip", ["netns", "exec", a.ns, "ping", "-c", "1", "-W", "2", "-M", df, "-s", "1472", c.ips[0]!], { encoding: "utf8", timeout: 10_000 });
      expect(pingBig("dont").status).toBe(0);
      const refused = pingBig("do");
      expect(refused.stdout + refused.stderr).toMatch(/mtu = 1450|message too long, mtu=1450/i);
    }
  });

  it("reaches the IPv6 pods of a neighbour that names only an IPv4 node IP through the tunnel, instead of not at all", async () => {
    const [a, b] = ["ova", "ovb"].map((name) => pods.find((p) => p.name === name)!) as [Pod, Pod];
    await fx.api().custom.patchClusterCustomObject({ ...podnetResource("nodecidrs"), name: "fd00-10-244-2---64", body: { spec: { nodeIPs: [node("n2").ip] } } }, mergePatch());
    await waitFor("n2's IPv6 pods through podnet.vxlan on n1", async () => (podnetRoutes(node("n1").ns).includes("fd00:10:244:2::/64 via fd00:10:244:2:: dev podnet.vxlan onlink") ? true : undefined), 15_000);
    expect(podnetRoutes(node("n1").ns)).toContain("10.244.2.0/24 via 192.168.71.12 dev eth0"); // IPv4 stays direct
    expect(ping(a.ns, b.ips[1]!)).toBe(true);
    expect(await sourceSeenBy(b.ns, b.ips[1]!, a.ns, 7713)).toBe(a.ips[1]);
    const conds = await waitFor("n1 Ready with 3 overlay routes", async () => {
      const c = await conditionsOf(fx.api(), "10-244-1-0-24");
      return c.find((x) => x.type === "RoutesProgrammed" && x.message.includes("3 through VXLAN")) ? c : undefined;
    }, 15_000);
    expect(conds.find((c) => c.type === "Ready")).toMatchObject({ status: "True" });
  });

  it("restores a hand-deleted neighbour entry on the next resync, and forgets a node that left", async () => {
    ipIn(node("n1").ns, "neigh", "del", "10.244.3.0", "dev", "podnet.vxlan");
    await waitFor("neighbour restored", async () => (neighbours(node("n1").ns).includes("10.244.3.0") ? true : undefined), 15_000);
    for (const c of cidrs(2)) await fx.api().custom.deleteClusterCustomObject({ ...podnetResource("nodecidrs"), name: c.replace(/[.:/]/g, "-") });
    expect(fdbDestinations(node("n3").ns).sort()).toEqual(["192.168.71.11", "192.168.71.12"]);
    // Its fdb entry goes by `bridge` after the `ip` batch that drops route and neighbour: waited for with them.
    await waitFor("n2 gone from n3's overlay", async () => (podnetRoutes(node("n3").ns).length === 2 && !neighbours(node("n3").ns).includes("10.244.2.0")
      && fdbDestinations(node("n3").ns).length === 1 ? true : undefined), 15_000);
    expect(fdbDestinations(node("n3").ns)).toEqual(["192.168.71.11"]);
  });

  it("a node whose own IP changes keeps its overlay: device moved to the new source, routes in place, pods' MTU unchanged, pods reach each other", async () => {
    // The resync an hour away: only the event pass that follows the NodeCIDR change may act.
    await agents.get("n1")!.stop();
    const n1 = await startAgent(fx, node("n1"), { "resync-period": "1h" });
    agents.set("n1", n1);
    await waitFor("first pass", async () => (n1.agent.syncs > 0 ? true : undefined), 10_000);
    const passes = n1.agent.syncs;
    // Old address out first: deleting a subnet's primary IPv4 address takes its secondaries along.
    ipIn(node("n1").ns, "addr", "del", "192.168.71.11/24", "dev", "eth0");
    ipIn(node("n1").ns, "addr", "add", "192.168.71.21/24", "dev", "eth0");
    // The default route went with the old address; a DHCP client puts it back with the new lease.
    ipIn(node("n1").ns, "route", "replace", "default", "via", "192.168.71.1");
    for (const c of cidrs(1)) {
      await fx.api().custom.patchClusterCustomObject({ ...podnetResource("nodecidrs"), name: c.replace(/[.:/]/g, "-"), body: { spec: { nodeIPs: ["192.168.71.21", node("n1").ip6] } } }, mergePatch());
    }
    // The address change wakes a pass of its own (it may come before the NodeCIDR's): wait for the result.
    const local = () => ipJson<Array<{ linkinfo: { info_data: { local: string } } }>>(node("n1").ns, "-d", "link", "show", "podnet.vxlan")[0]?.linkinfo.info_data.local;
    const overlayRoutes = ["10.244.3.0/24 via 10.244.3.0 dev podnet.vxlan onlink", "fd00:10:244:3::/64 via fd00:10:244:3:: dev podnet.vxlan onlink"];
    await waitFor("the device moved by an event pass, its routes back", async () =>
      (n1.agent.syncs > passes && local() === "192.168.71.21" && JSON.stringify(podnetRoutes(node("n1").ns)) === JSON.stringify(overlayRoutes) ? true : undefined), 10_000);
    expect(JSON.parse(readFileSync(join(n1.confDir, "10-podnet.conflist"), "utf8")).plugins[0].mtu).toBe(1500);
    // The tunnel peer sends to the new address once it has read n1's NodeCIDRs: pods across it reach each other, both ways.
    await waitFor("n3 tunnels to n1's new address", async () => (fdbDestinations(node("n3").ns).includes("192.168.71.21") ? true : undefined), 10_000);
    const [a, c] = ["ova", "ovc"].map((name) => pods.find((p) => p.name === name)!) as [Pod, Pod];
    for (const [from, to] of [[a, c], [c, a]] as const) {
      // Within seconds, not at the first packet: the router and n1 resolve each other's new neighbour entries first,
      // and a loaded CI host lost both pings of one try (2 packets, 1 s) once.
      for (const ip of to.ips.slice(0, 2)) await waitFor(`${from.name} reaches ${ip}`, async () => (ping(from.ns, ip) ? true : undefined), 10_000);
      expect(await sourceSeenBy(to.ns, to.ips[0]!, from.ns, 7714)).toBe(from.ips[0]);
    }
    // A NodeCIDR naming an address the node does not have (mirrored before the address moved): the overlay and
    // the pods' MTU stay as they are, and the sync says why instead of tearing the device down.
    await fx.api().custom.patchClusterCustomObject({ ...podnetResource("nodecidrs"), name: "10-244-1-0-24", body: { spec: { nodeIPs: ["192.168.71.99", node("n1").ip6] } } }, mergePatch());
    // Passes for earlier events (the IPv6 record's patch, the address change) may still come first.
    await waitFor("a pass over the new NodeCIDR", async () =>
      (n1.agent.lastOutcome?.routes.error?.includes("node IP 192.168.71.99 is not an address of this node; podnet.vxlan left as it is") ? true : undefined), 10_000);
    expect(podnetRoutes(node("n1").ns)).toHaveLength(2);
    expect(JSON.parse(readFileSync(join(n1.confDir, "10-podnet.conflist"), "utf8")).plugins[0].mtu).toBe(1500);
  });

  it("with --overlay=none reports the node behind the router unreachable and makes no device", async () => {
    // n3's pods hold addresses in the IPAM directory of the agent being replaced: release them while it exists.
    for (const p of pods.filter((q) => q.nodeNs === node("n3").ns)) { deletePod(p); pods.splice(pods.indexOf(p), 1); }
    await agents.get("n3")!.stop();
    agents.delete("n3");
    const flat = await startAgent(fx, node("n3"), { overlay: "none" });
    agents.set("n3", flat);
    const conds = await waitFor("NodeUnreachable", async () => {
      const c = await conditionsOf(fx.api(), "10-244-3-0-24");
      return c.find((x) => x.type === "RoutesProgrammed" && x.reason === "NodeUnreachable") ? c : undefined;
    }, 15_000);
    expect(conds.find((c) => c.type === "RoutesProgrammed")!.message).toContain("overlay is off");
    expect(podnetRoutes(node("n3").ns)).toEqual([]);
    expect(ipJson(node("n3").ns, "link", "show")).not.toContainEqual(expect.objectContaining({ ifname: "podnet.vxlan" }));
  });
});
