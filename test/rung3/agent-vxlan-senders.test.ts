import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { podnetResource } from "../../src/lib/k8s.js";
import { nftChainCount } from "../../src/node-agent/masquerade.js";
import { vtepMac } from "../../src/node-agent/overlay-plan.js";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { createNetBed, ipIn, ipJson, isRoot, type BedNode, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping, sourceSeenBy } from "../../src/localcluster/udp-probe.js";
import { putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

/**
 * podnet.vxlan hands on whatever arrives on the VXLAN port: without a filter, a host that is no node (x, on
 * n1's segment) or a pod (its VXLAN leaves masqueraded as its node's IP) injects packets into the pod network
 * under any source address. n1 and n2 sit behind a router, so they are overlay peers.
 */
const fx = useControlPlane();
let bed: NetBed;
const agents = new Map<string, TestAgent>();
const pods: Pod[] = [];
const node = (name: string): BedNode => bed.nodes.find((n) => n.name === name)!;
const podnetRoutes = (ns: string) => ipJson<Array<{ dst: string }>>(ns, "route", "show", "proto", "249").map((r) => r.dst);
const senders = (ns: string) => {
  const out = JSON.parse(execFileSync("ip", ["netns", "exec", ns, "nft", "-j", "list", "set", "inet", "podnet", "vxlan_senders_v4"], { encoding: "utf8" })) as
    { nftables: Array<{ set?: { elem?: string[] } }> };
  return out.nftables.flatMap((i) => i.set?.elem ?? []).sort();
};
const rxPackets = (ns: string) => ipJson<Array<{ stats64: { rx: { packets: number } } }>>(ns, "-s", "link", "show", "podnet.vxlan")[0]!.stats64.rx.packets;

/**
 * A VXLAN device of its own in `ns`, sending to `remote`, through which `targetCidr` is reached as if from
 * `spoofed`: frames carry the target node's VTEP MAC, which peers derive from its IP, so anyone can.
 */
function vxlanInto(ns: string, local: string, remote: string, spoofed: string, targetCidr: string, targetGw: string) {
  ipIn(ns, "link", "add", "vx0", "type", "vxlan", "id", "1", "local", local, "dstport", "8472", "nolearning");
  ipIn(ns, "link", "set", "vx0", "up");
  execFileSync("bridge", ["-n", ns, "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", remote]);
  ipIn(ns, "addr", "add", `${spoofed}/32`, "dev", "vx0");
  ipIn(ns, "neigh", "add", targetGw, "lladdr", vtepMac(remote), "dev", "vx0", "nud", "permanent");
  ipIn(ns, "route", "add", targetCidr, "via", targetGw, "dev", "vx0", "onlink");
}

/**
 * A datagram sent to a pod's IP through the sender's own VXLAN device must not arrive: the chain of podnet's
 * table that should drop it counts it, and the receiving podnet.vxlan never sees it.
 */
async function expectDropped(probe: { to: Pod; from: string; port: number }, where: { dropsAt: string; chain: "vxlan_in" | "vxlan_from_pods"; deviceOf: string }) {
  const [dropsBefore, rxBefore] = [await nftChainCount(where.dropsAt, where.chain), rxPackets(where.deviceOf)];
  await expect(sourceSeenBy(probe.to.ns, probe.to.ips[0]!, probe.from, probe.port)).rejects.toThrow(/no datagram reached/);
  expect(await nftChainCount(where.dropsAt, where.chain)).toBeGreaterThan(dropsBefore);
  expect(rxPackets(where.deviceOf)).toBe(rxBefore);
}

describe.skipIf(!isRoot())("node agent: VXLAN is taken only from nodes (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("vs", 0, 61, 2);
    bed.addNode("n1", 0);
    bed.addNode("n2", 1);
    bed.addNode("x", 0); // no NodeCIDR: not a node of the cluster
    // A pool, as every cluster has: the pod network then stays the same when a node joins.
    await fx.api().custom.createClusterCustomObject({ ...podnetResource("podcidrpools"), body: {
      apiVersion: "podnet.io/v1alpha1", kind: "PodCIDRPool", metadata: { name: "default" }, spec: { ipv4: { cidrs: ["10.244.0.0/16"], nodeMaskSize: 24 } },
    } });
    await putNodeCidr(fx.api(), "n1", "10.244.1.0/24", [node("n1").ip, node("n1").ip6]);
    await putNodeCidr(fx.api(), "n2", "10.244.2.0/24", [node("n2").ip, node("n2").ip6]);
    for (const name of ["n1", "n2"]) agents.set(name, await startAgent(fx, node(name)));
    await waitFor("overlay routes on both nodes", async () => ["n1", "n2"].every((n) => podnetRoutes(node(n).ns).length === 1) || undefined, 20_000);
    for (const a of agents.values()) await a.agent.syncNow(); // the conflist too: a pass writes it after the routes
    pods.push(addPod(node("n1").ns, agents.get("n1")!.confDir, "vsa"), addPod(node("n2").ns, agents.get("n2")!.confDir, "vsb"));
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    for (const a of agents.values()) await a.stop();
    bed?.destroy();
  });

  it("pods still reach each other through the overlay: a node's VXLAN is taken", async () => {
    const [a, b] = pods as [Pod, Pod];
    expect(ping(a.ns, b.ips[0]!)).toBe(true);
    expect(await sourceSeenBy(b.ns, b.ips[0]!, a.ns, 7721)).toBe(a.ips[0]);
    expect(senders(node("n1").ns)).toEqual([node("n2").ip]);
  });

  it("drops VXLAN from a host that is no node, before the device sees it", async () => {
    const [a] = pods as [Pod];
    const x = node("x");
    vxlanInto(x.ns, x.ip, node("n1").ip, "10.244.2.200", "10.244.1.0/24", "10.244.1.0");
    await expectDropped({ to: a, from: x.ns, port: 7722 }, { dropsAt: node("n1").ns, chain: "vxlan_in", deviceOf: node("n1").ns });
  });

  it("drops a pod's own VXLAN to another node on its way out (it would leave as its node's IP, a sender the peer takes)", async () => {
    const [, b] = pods as [Pod, Pod];
    const evil = addPod(node("n1").ns, agents.get("n1")!.confDir, "vsevil");
    pods.push(evil);
    // Posing as another pod of its own node: the receiver's reverse-path check would pass it.
    vxlanInto(evil.ns, evil.ips[0]!, node("n2").ip, "10.244.1.77", "10.244.2.0/24", "10.244.2.0");
    await expectDropped({ to: b, from: evil.ns, port: 7723 }, { dropsAt: node("n1").ns, chain: "vxlan_from_pods", deviceOf: node("n2").ns });
  });

  it("drops VXLAN a pod sends to another address of a node (a VIP): VXLAN is taken only at the node's underlay address", async () => {
    const [, b] = pods as [Pod, Pod];
    const evil = pods.find((p) => p.name === "vsevil")!;
    ipIn(node("n2").ns, "addr", "add", "192.168.62.250/24", "dev", "eth0");
    ipIn(evil.ns, "link", "del", "vx0");
    vxlanInto(evil.ns, evil.ips[0]!, "192.168.62.250", "10.244.1.78", "10.244.2.0/24", "10.244.2.0");
    await expectDropped({ to: b, from: evil.ns, port: 7724 }, { dropsAt: node("n2").ns, chain: "vxlan_in", deviceOf: node("n2").ns });
    // Operators see it: the agent reads nft's counts on its full passes.
    await agents.get("n2")!.agent.syncNow();
    const dropped = (await agents.get("n2")!.agent.metrics.vxlanDropped.get()).values.find((v) => v.labels.chain === "vxlan_in")?.value;
    expect(dropped).toBeGreaterThan(0);
  });

  it("a joining node is added to the senders in place (the drop counter survives), a leaving one removed; a hand-deleted sender comes back", async () => {
    const n1 = node("n1");
    const drops = await nftChainCount(n1.ns, "vxlan_in");
    expect(drops).toBeGreaterThan(0);
    const n3 = bed.addNode("n3", 1);
    const name = await putNodeCidr(fx.api(), "n3", "10.244.3.0/24", [n3.ip]);
    agents.set("n3", await startAgent(fx, n3));
    await waitFor("n1 takes VXLAN from n3", async () => senders(n1.ns).includes(n3.ip) || undefined, 15_000);
    // Rewriting the whole table would have zeroed the counter; so would a full pass that took its own
    // senders (IPv6 among them, as nft spells them) for a hand edit.
    expect(await nftChainCount(n1.ns, "vxlan_in")).toBeGreaterThanOrEqual(drops);
    await agents.get("n1")!.agent.syncNow();
    expect(await nftChainCount(n1.ns, "vxlan_in")).toBeGreaterThanOrEqual(drops);
    const c = addPod(n3.ns, agents.get("n3")!.confDir, "vsc");
    pods.push(c);
    await waitFor("n3 routes to n1's pods", async () => podnetRoutes(n3.ns).length === 2 || undefined, 15_000);
    expect(ping(pods[0]!.ns, c.ips[0]!)).toBe(true);

    execFileSync("ip", ["netns", "exec", n1.ns, "nft", "delete", "element", "inet", "podnet", "vxlan_senders_v4", `{ ${node("n2").ip} }`]);
    await agents.get("n1")!.agent.syncNow();
    expect(senders(n1.ns)).toEqual([node("n2").ip, n3.ip].sort());

    await agents.get("n3")!.stop();
    agents.delete("n3");
    await fx.api().custom.deleteClusterCustomObject({ ...podnetResource("nodecidrs"), name });
    await waitFor("n1 no longer takes VXLAN from n3", async () => !senders(n1.ns).includes(n3.ip) || undefined, 15_000);
    expect(senders(n1.ns)).toEqual([node("n2").ip]);
  });
});
