import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { podnetResource, strategicMergePatch } from "../../src/lib/k8s.js";
import { nftChainCount } from "../../src/node-agent/masquerade.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { createNodeMarkedUnavailable, networkUnavailableOf, ownNexthops, ownRoutes } from "../harness/node-reads.js";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { createNetBed, ipIn, ipJson, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping, sourceSeenBy } from "../../src/localcluster/udp-probe.js";

const fx = useControlPlane();
const nodecidrs = podnetResource("nodecidrs");
let bed: NetBed;
const agents: TestAgent[] = [];
const pods: Pod[] = [];

describe.skipIf(!isRoot())("node agent on real kernel routes and real CNI plugins (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("ag", 3);
    for (const [i, n] of bed.nodes.entries()) await putNodeCidr(fx.api(), n.name, `10.244.${i + 1}.0/24`, [n.ip]);
    // Node 1's pods reach node 3 with their own address: a range that routes pod ranges back (node 3 has routes).
    for (const [i, n] of bed.nodes.entries()) agents.push(await startAgent(fx, n, i === 0 ? { "no-masquerade-cidrs": `${bed.nodes[2]!.ip}/32,fd00:77::/64` } : {}));
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    for (const a of agents) await a.stop();
    bed?.destroy();
  });

  it("programs a route to every other node's pod CIDR via its node IP, tagged with podnet's protocol", async () => {
    const [n1] = bed.nodes;
    await waitFor("routes on n1", async () => (ownRoutes(n1!.ns).length === 2 ? true : undefined), 15_000);
    expect(ownRoutes(n1!.ns)).toEqual(["10.244.2.0/24 via 192.168.77.12", "10.244.3.0/24 via 192.168.77.13"]);
    // Through one podnet nexthop object per node (see nexthop-plan.ts for why).
    expect(ownNexthops(n1!.ns)).toEqual(["192.168.77.12", "192.168.77.13"]);
    expect(ipJson<Array<{ nhid?: number }>>(n1!.ns, "route", "show", "proto", "249").every((r) => r.nhid)).toBe(true);
    const conds = await waitFor("Ready condition", async () => {
      const c = await conditionsOf(fx.api(), "10-244-1-0-24");
      return c.some((x) => x.type === "Ready" && x.status === "True") ? c : undefined;
    }, 15_000);
    expect(conds.find((c) => c.type === "RoutesProgrammed")!.message).toContain("2/2 routes installed");
  });

  it("writes a conflist the real plugins accept: pods on different nodes ping each other without NAT", async () => {
    const [n1, n2] = bed.nodes;
    const conflist = JSON.parse(readFileSync(join(agents[0]!.confDir, "10-podnet.conflist"), "utf8"));
    expect(conflist.plugins.map((p: { type: string }) => p.type)).toEqual(["bridge", "portmap"]);
    expect(conflist.loadOnlyInlinedPlugins).toBe(true);
    expect(conflist.plugins[0].ipam.ranges).toEqual([[{ subnet: "10.244.1.0/24" }]]);
    const a = addPod(n1!.ns, agents[0]!.confDir, "a");
    const b = addPod(n2!.ns, agents[1]!.confDir, "b");
    pods.push(a, b);
    expect(a.ips[0]).toMatch(/^10\.244\.1\./);
    expect(b.ips[0]).toMatch(/^10\.244\.2\./);
    expect(ping(a.ns, b.ips[0]!)).toBe(true);
    expect(await sourceSeenBy(b.ns, b.ips[0]!, a.ns)).toBe(a.ips[0]);
  });

  it("a hostPort given to portmap through podnet's conflist reaches the pod from another node; DEL removes the mapping", async () => {
    const [n1, n2] = bed.nodes;
    const web = addPod(n1!.ns, agents[0]!.confDir, "hp", [{ hostPort: 30080, containerPort: 8080, protocol: "udp" }]);
    const natRules = () => execFileSync("ip", ["netns", "exec", n1!.ns, "iptables-save", "-t", "nat"], { encoding: "utf8" }).split("\n").filter((l) => l.includes("30080"));
    try {
      expect(natRules().length).toBeGreaterThan(0);
      // The node's own address is the sender's (node → node IP, nothing to masquerade); the pod sees it unchanged.
      expect(await sourceSeenBy(web.ns, "0.0.0.0", n2!.ns, 8080, { ip: n1!.ip, port: 30080 })).toBe(n2!.ip);
    } finally {
      deletePod(web);
    }
    expect(natRules()).toEqual([]);
  });

  it("masquerades pod traffic leaving the pod network (pod → another node's IP) and counts it", async () => {
    const [, n2] = bed.nodes;
    const a = pods[0]!;
    const before = await nftChainCount(bed.nodes[0]!.ns);
    expect(await sourceSeenBy(n2!.ns, n2!.ip, a.ns, 7778)).toBe(bed.nodes[0]!.ip);
    expect(await nftChainCount(bed.nodes[0]!.ns)).toBeGreaterThan(before);
  });

  it("leaves pod traffic to a no-masquerade CIDR un-NATed (the receiver sees the pod's IP) and says so in MasqueradeReady", async () => {
    const [n1, , n3] = bed.nodes;
    const a = pods[0]!;
    const before = await nftChainCount(n1!.ns);
    expect(await sourceSeenBy(n3!.ns, n3!.ip, a.ns, 7779)).toBe(a.ips[0]);
    expect(await nftChainCount(n1!.ns)).toBe(before);
    const masq = (await conditionsOf(fx.api(), "10-244-1-0-24")).find((c) => c.type === "MasqueradeReady")!;
    expect(masq.message).toContain(`except to ${n3!.ip}/32, fd00:77::/64`);
    // Node 2's agent has no exceptions: the same destination is masqueraded from its pods.
    const b = pods[1]!;
    expect(await sourceSeenBy(n3!.ns, n3!.ip, b.ns, 7780)).toBe(bed.nodes[1]!.ip);
  });

  it("keeps the masquerade counters across resyncs, and rewrites the nft table once it is changed by hand", async () => {
    const ns = bed.nodes[0]!.ns;
    const counted = await nftChainCount(ns);
    expect(counted).toBeGreaterThan(0);
    const passes = agents[0]!.agent.syncs;
    await waitFor("two more passes (resync 1 s)", async () => (agents[0]!.agent.syncs >= passes + 2 ? true : undefined), 10_000);
    expect(await nftChainCount(ns)).toBeGreaterThanOrEqual(counted); // a full pass left the unchanged table alone
    const nft = (...args: string[]) => execFileSync("ip", ["netns", "exec", ns, "nft", ...args], { encoding: "utf8" });
    nft("flush", "chain", "inet", "podnet", "postrouting");
    await waitFor("rules restored", async () => (nft("list", "chain", "inet", "podnet", "postrouting").includes("masquerade") ? true : undefined), 10_000);
    nft("delete", "table", "inet", "podnet");
    await waitFor("table restored", async () => (nft("list", "tables").includes("inet podnet") ? true : undefined), 10_000);
  });

  it("sets ip_forward inside the node namespace (the net bed starts each node with it off)", () => {
    for (const n of bed.nodes) expect(ipIn(n.ns, "netconf", "show", "dev", "eth0")).toContain("forwarding on");
  });

  it("restores a hand-deleted route and a hand-edited conflist on the next resync", async () => {
    const [n1] = bed.nodes;
    ipIn(n1!.ns, "route", "del", "10.244.2.0/24");
    const file = join(agents[0]!.confDir, "10-podnet.conflist");
    const original = readFileSync(file, "utf8");
    writeFileSync(file, "{}");
    await waitFor("route restored", async () => (ownRoutes(n1!.ns).includes("10.244.2.0/24 via 192.168.77.12") ? true : undefined), 10_000);
    await waitFor("conflist restored", async () => (readFileSync(file, "utf8") === original ? true : undefined), 10_000);
  });

  it("repairs drift even while routing events keep arriving more often than the resync period", async () => {
    const [n1] = bed.nodes;
    ipIn(n1!.ns, "route", "del", "10.244.2.0/24");
    let restored = false;
    // A node that comes and goes every 300 ms keeps waking the agent; its resync period is 1 s.
    for (let i = 0; i < 30 && !restored; i++) {
      if (i % 2 === 0) await putNodeCidr(fx.api(), "churn", "10.244.60.0/24", [bed.nodes[2]!.ip]);
      else await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: "10-244-60-0-24" });
      await new Promise((r) => setTimeout(r, 300));
      restored = ownRoutes(n1!.ns).includes("10.244.2.0/24 via 192.168.77.12");
    }
    await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: "10-244-60-0-24" }).catch(() => undefined);
    expect(restored).toBe(true);
  });

  it("leaves a foreign route for a node's prefix alone and reports the conflict", async () => {
    const [n1] = bed.nodes;
    const extra = bed.addNode("n4");
    ipIn(n1!.ns, "route", "add", "10.244.4.0/24", "via", "192.168.77.13", "proto", "static");
    await putNodeCidr(fx.api(), extra.name, "10.244.4.0/24", [extra.ip]);
    const cond = await waitFor("conflict reported", async () => {
      const c = (await conditionsOf(fx.api(), "10-244-1-0-24")).find((x) => x.type === "RoutesProgrammed");
      return c?.reason === "RouteConflict" ? c : undefined;
    }, 15_000);
    expect(cond.message).toContain("10.244.4.0/24");
    const route = ipJson<Array<{ gateway: string; protocol: string }>>(n1!.ns, "route", "show", "10.244.4.0/24");
    expect(route).toEqual([expect.objectContaining({ gateway: "192.168.77.13", protocol: "static" })]);
    ipIn(n1!.ns, "route", "del", "10.244.4.0/24", "proto", "static");
  });

  it("removes a deleted node's route on every node", async () => {
    await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: "10-244-4-0-24" });
    for (const n of bed.nodes.slice(0, 3)) {
      await waitFor(`route gone on ${n.name}`, async () => (ownRoutes(n.ns).some((r) => r.startsWith("10.244.4.0/24")) ? undefined : true), 10_000);
    }
  });

  it("clears the Node's NetworkUnavailable condition once the node can network pods, leaving kubelet's conditions alone", async () => {
    const name = bed.nodes[0]!.name;
    await createNodeMarkedUnavailable(fx.api(), name);
    await fx.api().core.patchNodeStatus({ name, body: { status: { conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: "kubelet is posting ready status", lastHeartbeatTime: new Date(), lastTransitionTime: new Date() }] } } }, strategicMergePatch());
    // The agent found no Node at its first passes and retries at its resync period (1 s here).
    const cond = await waitFor("NetworkUnavailable=False", async () => { const c = await networkUnavailableOf(fx.api(), name); return c?.status === "False" ? c : undefined; }, 15_000);
    expect(cond.reason).toBe("PodnetIsUp");
    expect(agents[0]!.agent.networkCondition.cleared).toBe(true);
    const node = await fx.api().core.readNodeStatus({ name });
    expect(node.status?.conditions?.find((c) => c.type === "Ready")?.reason).toBe("KubeletReady");
    // The Node registers again under its name while the agent runs (a cloud starts it NetworkUnavailable
    // again): the watch of its Node shows it, and it is cleared without a read of the Node (a timed read
    // without the watch came RECHECK_RESYNCS resyncs, 10 s here, after the last clear).
    const reads = agents[0]!.agent.networkCondition.reads;
    await fx.api().core.deleteNode({ name });
    await createNodeMarkedUnavailable(fx.api(), name);
    await waitFor("cleared again", async () => ((await networkUnavailableOf(fx.api(), name))?.status === "False" ? true : undefined), 25_000);
    expect(agents[0]!.agent.networkCondition.reads).toBe(reads);
  }, 45_000);

  it("reports a shadowing conflist as CNIConfigShadowed", async () => {
    writeFileSync(join(agents[1]!.confDir, "00-other.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "other", plugins: [{ type: "bridge" }] }));
    const c = await waitFor("shadow condition", async () => {
      const all = await conditionsOf(fx.api(), "10-244-2-0-24");
      return all.find((x) => x.type === "CNIConfigShadowed" && x.status === "True") ? all : undefined;
    }, 15_000);
    expect(c.find((x) => x.type === "CNIConfigured")!.reason).toBe("CNIConfigShadowed");
  });

  it("rejects a node IP inside the pod range and keeps routing the healthy nodes", async () => {
    const [n1] = bed.nodes;
    await putNodeCidr(fx.api(), "bad-node", "10.244.9.0/24", ["10.244.9.7"]);
    const cond = await waitFor("InvalidNodeIP", async () => {
      const c = (await conditionsOf(fx.api(), "10-244-1-0-24")).find((x) => x.type === "RoutesProgrammed");
      return c?.reason === "InvalidNodeIP" ? c : undefined;
    }, 15_000);
    expect(cond.message).toContain("bad-node");
    expect(ownRoutes(n1!.ns)).toEqual(["10.244.2.0/24 via 192.168.77.12", "10.244.3.0/24 via 192.168.77.13"]);
    await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: "10-244-9-0-24" });
  });
});
