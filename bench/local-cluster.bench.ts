// Issue #6 benchmark on the local cluster (real apiserver, controller and one agent process per node namespace):
//  1. Node object created → route to its pod CIDR present on every other agent's node: p50/p99 for each size
//     (split into the controller's share, Node created → NodeCIDR Allocated as a watcher sees it, and the agents')
//     (goal p99 < 1 s at 50 nodes), with controller and agent peak RSS;
//  2. iperf3 pod→pod across nodes vs node→node, same run (PODNET_IPERF_AFFINITY=0,0 puts client and server on
//     core 0, iperf3's -A, for less placement noise): on one segment with the overlay off and on (goal ≥ 0.95),
//     and on with the pods' MTU pinned to the tunnel's (podnet's earlier default),
//     unshaped and with the uplinks limited to a NIC's 10 Gbit/s, and through VXLAN across a router against
//     the routed underlay.
import { spawn, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { LocalCluster } from "../src/localcluster/cluster.js";
import { iperf } from "../src/localcluster/iperf.js";
import { waitFor } from "../src/localcluster/processes.js";
import type { KubernetesObject } from "@kubernetes/client-node";
import { Informer, type ListPage } from "../src/lib/informer.js";
import { podnetResource } from "../src/lib/k8s.js";
import { silentLogger } from "../src/log.js";
import type { NodeCidrObject } from "../src/controllers/observe.js";

const JOINS = 5;
const IPERF_ROUNDS = 5;
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;

/** Watch every node namespace's route table; resolve per node when a route to `cidr` appears. */
function watchRoutes(cluster: LocalCluster): { arrivals: Map<string, Array<{ line: string; at: number }>>; stop: () => void } {
  const arrivals = new Map<string, Array<{ line: string; at: number }>>();
  const monitors = [...cluster.nodes.entries()].map(([name, n]) => {
    const m = spawn("ip", ["-n", n.node.ns, "monitor", "route"], { stdio: ["ignore", "pipe", "ignore"] });
    arrivals.set(name, []);
    m.stdout.on("data", (d: Buffer) => { const at = performance.now(); for (const line of d.toString().split("\n")) if (line) arrivals.get(name)!.push({ line, at }); });
    return m;
  });
  return { arrivals, stop: () => monitors.forEach((m) => m.kill()) };
}

/** When each node's NodeCIDR is first seen Allocated by a watcher (as agents see it): the controller's share of a join. */
function watchAllocations(cluster: LocalCluster): { allocatedAt: Map<string, number>; stop: () => void } {
  const allocatedAt = new Map<string, number>();
  const informer = new Informer<NodeCidrObject & KubernetesObject>({
    api: cluster.api, path: "/apis/podnet.io/v1alpha1/nodecidrs", log: silentLogger(),
    onEvent: (_event, r) => { if (r.status?.phase === "Allocated" && !allocatedAt.has(r.spec.nodeName)) allocatedAt.set(r.spec.nodeName, performance.now()); },
    list: (t) => cluster.api.custom.listClusterCustomObject({ ...podnetResource("nodecidrs"), limit: 500, _continue: t }) as Promise<ListPage<NodeCidrObject & KubernetesObject>>,
  });
  informer.start();
  return { allocatedAt, stop: () => informer.stop() };
}

async function joinLatency(size: number): Promise<void> {
  const cluster = await LocalCluster.start({ nodes: size, tag: `b${size}`, segment: 90, resyncPeriod: "30s" });
  const allocations = watchAllocations(cluster);
  try {
    await cluster.waitReady(300_000);
    const samples: number[] = [];
    const controllerShare: number[] = [];
    const agentShare: number[] = [];
    for (let j = 0; j < JOINS; j++) {
      const existing = [...cluster.nodes.keys()];
      const watch = watchRoutes(cluster);
      await new Promise((r) => setTimeout(r, 200));
      const name = `join-${j}`;
      await cluster.addNode(name);
      const t0 = cluster.nodes.get(name)!.registeredAt!; // the Node object's creation, not the namespace set-up before it
      const cidr = await waitFor("NodeCIDR", async () => (await cluster.nodeCidrs()).find((r) => r.spec.nodeName === name && r.status?.phase === "Allocated")?.spec.cidr, 30_000, 20);
      await waitFor("route on every node", async () => (existing.every((n) => watch.arrivals.get(n)!.some((a) => a.line.startsWith(`${cidr} `))) ? true : undefined), 30_000, 20);
      const allocatedAt = await waitFor("allocation seen by the watcher", async () => allocations.allocatedAt.get(name), 30_000, 20);
      controllerShare.push(allocatedAt - t0);
      for (const n of existing) {
        const at = watch.arrivals.get(n)!.find((a) => a.line.startsWith(`${cidr} `))!.at;
        samples.push(at - t0);
        agentShare.push(at - allocatedAt);
      }
      watch.stop();
      await cluster.waitReady(120_000);
    }
    const rss = cluster.peakRssMb();
    const agentsMax = Math.max(...rss.agents);
    console.log(`${String(size).padStart(4)} nodes  p50 ${pct(samples, 50).toFixed(0).padStart(5)} ms  p99 ${pct(samples, 99).toFixed(0).padStart(5)} ms  (${samples.length} samples)  controller RSS ${rss.controller.toFixed(0)} MB  agent RSS max ${agentsMax.toFixed(0)} MB`);
    // Where the time goes: Node created → its NodeCIDR Allocated as a watcher sees it (the controller, two API
    // writes and a watch delivery), then → the route in each node's kernel (the agents).
    console.log(`            controller share p50 ${pct(controllerShare, 50).toFixed(0).padStart(5)} ms  p99 ${pct(controllerShare, 99).toFixed(0).padStart(5)} ms;`
      + `  agents' share p50 ${pct(agentShare, 50).toFixed(0).padStart(5)} ms  p99 ${pct(agentShare, 99).toFixed(0).padStart(5)} ms`);
  } finally {
    allocations.stop();
    await cluster.stop();
  }
}

/**
 * Pod→pod across two nodes vs node→node between the same two nodes, same run, in rounds (the machine is
 * shared and noisy: one round's ratio ranges over ±20 % unshaped; the median ratio is reported with its range). One segment: direct routes. Two segments: the nodes sit on subnets
 * behind a router, so pod traffic goes through VXLAN and the baseline is the routed underlay.
 * Unshaped, every hop is CPU on two shared cores, so the ratio is the cost of the pod's extra hops (veth,
 * bridge, one more forward on each node). With `wireRate` each node's uplink sends at most that rate (tbf,
 * inside the node namespace), as a NIC would: then the ratio says whether pods get the link's full rate.
 */
async function throughput(segments: number, overlay: "auto" | "none" = "auto", wireRate?: string, podMtu?: number): Promise<void> {
  const cluster = await LocalCluster.start({ nodes: 2, segments, overlay, ...(podMtu ? { podMtu } : {}), tag: `bip${segments}${overlay}`, segment: 91 });
  try {
    await cluster.waitReady(60_000);
    const [a, b] = [cluster.addPod("node-1", "ip-a"), cluster.addPod("node-2", "ip-b")];
    const [n1, n2] = [cluster.nodes.get("node-1")!.node, cluster.nodes.get("node-2")!.node];
    if (wireRate) for (const n of [n1, n2]) execFileSync("ip", ["netns", "exec", n.ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", wireRate, "burst", "4mb", "latency", "20ms"]);
    // Each round measures both paths back to back, in alternating order, so a ratio compares two runs made
    // seconds apart; the machine's speed drifts by more than the effect between rounds.
    const rounds = Array.from({ length: IPERF_ROUNDS }, (_, i) => {
      const nodePath = () => iperf(n2.ns, n2.ip, n1.ns).gbps;
      const podPath = () => iperf(b.ns, b.ips[0]!, a.ns).gbps;
      if (i % 2 === 0) { const node = nodePath(); return { node, pod: podPath() }; }
      const pod = podPath();
      return { node: nodePath(), pod };
    });
    const ratios = rounds.map((r) => r.pod / r.node).sort((x, y) => x - y);
    const nodeToNode = median(rounds.map((r) => r.node));
    const podToPod = median(rounds.map((r) => r.pod));
    const mtu = JSON.parse(readFileSync(`${cluster.nodes.get("node-1")!.confDir}/10-podnet.conflist`, "utf8")).plugins[0].mtu as number;
    const path = (segments > 1 ? `through VXLAN across a router, pod MTU ${mtu} (baseline: the routed underlay)` : `direct routes on one segment, --overlay=${overlay}, pod MTU ${mtu}`)
      + (wireRate ? `, uplinks limited to ${wireRate}/s` : ", unshaped");
    console.log(`iperf3 ${path}: node→node ${nodeToNode.toFixed(1)} Gbit/s, pod→pod ${podToPod.toFixed(1)} Gbit/s (medians), `
      + `ratio ${median(ratios).toFixed(2)} (median of ${ratios.length} rounds, ${ratios[0]!.toFixed(2)}–${ratios.at(-1)!.toFixed(2)})${segments > 1 ? "" : " (goal ≥ 0.95)"}`);
  } finally {
    await cluster.stop();
  }
}

// Arguments: cluster sizes for the join latency (default 10 25 50); --throughput-only skips it.
const args = process.argv.slice(2);
const sizes = args.map(Number).filter((n) => n > 1);
if (!args.includes("--throughput-only")) {
  console.log(`node join → route on every other node (${JOINS} joins per size):`);
  for (const size of sizes.length ? sizes : [10, 25, 50]) await joinLatency(size);
}
console.log(`throughput (${IPERF_ROUNDS} rounds, each both paths back to back in alternating order):`);
await throughput(1, "none");
await throughput(1, "auto");
// podnet's earlier default: with the overlay on, every pod got the tunnel's MTU, even towards direct peers.
await throughput(1, "auto", undefined, 1450);
await throughput(1, "auto", "10gbit");
await throughput(2);
