import { execFileSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { connectivityMatrix } from "../../src/demo/matrix.js";
import { LocalCluster } from "../../src/localcluster/cluster.js";
import { ipIn, ipJson, isRoot } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping } from "../../src/localcluster/udp-probe.js";

let cluster: LocalCluster;
const ipNetnsNft = (ns: string, ...args: string[]) => execFileSync("ip", ["netns", "exec", ns, "nft", ...args], { encoding: "utf8" });
const cidrOf = async (node: string) => (await cluster.nodeCidrs()).find((r) => r.spec.nodeName === node && r.status?.phase === "Allocated")?.spec.cidr;
const routesEverywhereTo = (cidr: string) => [...cluster.nodes.keys()].filter((n) => cluster.ownRoutes(n).some((r) => r.startsWith(`${cidr} `)));

describe.skipIf(!isRoot())("local cluster: apiserver + controller + agents in node namespaces (rung 4)", () => {
  beforeAll(async () => {
    cluster = await LocalCluster.start({ nodes: 3, tag: "e2e", segment: 79, releaseCooldown: "3s", resyncPeriod: "2s" });
    await cluster.waitReady(90_000);
  }, 150_000);
  afterAll(async () => { await cluster?.stop(); }, 60_000);
  afterEach((ctx) => { if (ctx.task.result?.state === "fail") console.error(cluster.logs()); });

  it("connects all pod pairs across 3 nodes × 2 pods by pod IP, without NAT", async () => {
    for (const n of cluster.nodes.keys()) for (const i of [1, 2]) cluster.addPod(n, `${n}-p${i}`);
    const matrix = await connectivityMatrix(cluster.pods);
    expect(matrix.cells).toHaveLength(24);
    expect(matrix.cells.filter((c) => !c.ok)).toEqual([]);
  });

  it("routes to a new node everywhere; after it leaves, routes vanish, its CIDR is released and reused after the cooldown", async () => {
    const ns1 = cluster.nodes.get("node-1")!.node.ns;
    const podNetworkSet = () => ipNetnsNft(ns1, "list", "set", "inet", "podnet", "pod_v4");
    // A table deleted and made again gets a new handle, even with the same content.
    const tableHandle = () => /table inet podnet \{ # handle (\d+)/.exec(ipNetnsNft(ns1, "-a", "list", "table", "inet", "podnet"))?.[1];
    const setBefore = podNetworkSet();
    const handleBefore = tableHandle();
    expect(handleBefore).toBeDefined();
    expect(setBefore).toContain("10.244.0.0/16"); // the pool's range, not a list of node CIDRs
    await cluster.addNode("node-4");
    await cluster.waitReady(60_000);
    const cidr = (await cidrOf("node-4"))!;
    expect(routesEverywhereTo(cidr).sort()).toEqual(["node-1", "node-2", "node-3"]);
    expect(podNetworkSet()).toBe(setBefore);
    expect(tableHandle()).toBe(handleBefore); // a join rewrites no nft table on the other nodes
    const pod4 = cluster.addPod("node-4", "n4-pod");
    expect(ping(cluster.pods[0]!.ns, pod4.ips[0]!)).toBe(true);
    await cluster.removeNode("node-4");
    expect(existsSync(join(cluster.dir, "node-4"))).toBe(false); // its conflist and IPAM state go with it
    await waitFor("routes gone", async () => (routesEverywhereTo(cidr).length === 0 ? true : undefined), 20_000);
    const released = (await cluster.nodeCidrs()).find((r) => r.spec.cidr === cidr);
    expect(released?.status?.phase).toBe("Released");
    // The departed agent's Ready=True does not stand in `kubectl get nodecidrs` through the cooldown.
    expect(released?.status?.conditions?.find((c) => c.type === "Ready")).toMatchObject({ status: "False", reason: "NodeDeleted" });
    await waitFor("released CIDR deleted after cooldown", async () => ((await cluster.nodeCidrs()).some((r) => r.spec.cidr === cidr) ? undefined : true), 20_000);
    await cluster.addNode("node-5");
    await cluster.waitReady(60_000);
    expect(await cidrOf("node-5")).toBe(cidr); // lowest free slice again
    const pod5 = cluster.addPod("node-5", "n5-pod");
    expect(ping(cluster.pods[0]!.ns, pod5.ips[0]!)).toBe(true);
    await cluster.removeNode("node-5");
  }, 120_000);

  it("an agent restarted while nodes churn converges; a controller restart changes no existing CIDR", async () => {
    const before = new Map((await cluster.nodeCidrs()).filter((r) => r.status?.phase === "Allocated").map((r) => [r.spec.nodeName, r.spec.cidr]));
    await cluster.stopAgent("node-1");
    await cluster.addNode("node-6");
    // An agent stopped on purpose (node-1's) is no failure: the wait runs out as for any cluster not ready. A
    // controller that dies (a crash, a bad flag) ends it at once, naming it, not after the timeout.
    await expect(cluster.waitReady(1_000)).rejects.toThrow(/^timed out after 1000 ms waiting for all NodeCIDRs Ready/);
    cluster.controller!.child.kill("SIGKILL");
    await cluster.controller!.exited;
    await expect(cluster.waitReady(60_000)).rejects.toThrow(/^podnet-controller exited SIGKILL/); // a timeout says "timed out"
    await cluster.restartController();
    await waitFor("node-6 allocated", async () => ((await cidrOf("node-6")) ? true : undefined), 30_000);
    await cluster.startAgent("node-1");
    await cluster.waitReady(60_000);
    const cidr6 = (await cidrOf("node-6"))!;
    expect(routesEverywhereTo(cidr6)).toContain("node-1");
    const after = new Map((await cluster.nodeCidrs()).filter((r) => r.status?.phase === "Allocated").map((r) => [r.spec.nodeName, r.spec.cidr]));
    for (const [node, cidr] of before) expect(after.get(node)).toBe(cidr);
    await cluster.removeNode("node-6");
    await waitFor("no stale route to node-6", async () => (routesEverywhereTo(cidr6).length === 0 ? true : undefined), 20_000);
  }, 120_000);

  it("a control-plane outage leaves pods talking and agents and controller running; afterwards a joining node is routed everywhere", async () => {
    const routesBefore = new Map([...cluster.nodes.keys()].map((n) => [n, cluster.ownRoutes(n).sort()]));
    await cluster.cp.stopApiserver();
    try {
      // Several resyncs (2 s) and watch retries with no apiserver to answer them.
      await new Promise((r) => setTimeout(r, 8_000));
      const matrix = await connectivityMatrix(cluster.pods.filter((p) => [...cluster.nodes.values()].some((n) => n.node.ns === p.nodeNs)));
      expect(matrix.cells.length).toBeGreaterThan(0);
      expect(matrix.cells.filter((c) => !c.ok)).toEqual([]);
      for (const [name, n] of cluster.nodes) {
        expect(cluster.ownRoutes(name).sort(), name).toEqual(routesBefore.get(name));
        expect(n.agent!.child.exitCode, name).toBeNull();
        expect((await fetch(`http://127.0.0.1:${n.metricsPort}/healthz`)).ok, name).toBe(true); // no liveness restart
      }
      expect(cluster.controller!.child.exitCode).toBeNull();
    } finally {
      await cluster.cp.startApiserver();
    }
    await cluster.addNode("node-7");
    await cluster.waitReady(60_000);
    const cidr = (await cidrOf("node-7"))!;
    expect(routesEverywhereTo(cidr).sort()).toEqual([...cluster.nodes.keys()].filter((n) => n !== "node-7").sort());
    const pod7 = cluster.addPod("node-7", "n7-pod");
    expect(ping(cluster.pods[0]!.ns, pod7.ips[0]!)).toBe(true);
    await cluster.removeNode("node-7");
  }, 120_000);

  it("repairs drift (hand-deleted route), leaves a foreign route alone and shows a shadowing conflist in kubectl get nodecidrs", async () => {
    const ns1 = cluster.nodes.get("node-1")!.node.ns;
    const cidr2 = (await cidrOf("node-2"))!;
    ipIn(ns1, "route", "del", cidr2);
    ipIn(ns1, "route", "add", "10.99.0.0/24", "via", cluster.nodes.get("node-3")!.node.ip, "proto", "static");
    await waitFor("route restored", async () => (cluster.ownRoutes("node-1").some((r) => r.startsWith(`${cidr2} `)) ? true : undefined), 15_000);
    expect(ipJson<Array<{ protocol: string }>>(ns1, "route", "show", "10.99.0.0/24")).toEqual([expect.objectContaining({ protocol: "static" })]);
    writeFileSync(join(cluster.nodes.get("node-2")!.confDir, "00-other.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "other", plugins: [{ type: "bridge" }] }));
    const table = await waitFor("shadow visible", async () => {
      const out = cluster.kubectl("get", "nodecidrs", "-o", "wide");
      return out.split("\n").some((l) => l.includes("node-2") && l.includes("CNIConfigShadowed")) ? out : undefined;
    }, 20_000);
    expect(table).toContain("CNIConfigShadowed");
  }, 60_000);
});
