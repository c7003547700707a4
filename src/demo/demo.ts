import { parseArgs } from "node:util";
import { FlagError } from "../config.js";
import { LocalCluster } from "../localcluster/cluster.js";
import { kubeBin } from "../localcluster/kube-bins.js";
import { sweepStaleNamespaces } from "../localcluster/netbed.js";
import { sweepStaleRunDirs } from "../localcluster/control-plane.js";
import { waitFor } from "../localcluster/processes.js";
import { sourceSeenBy } from "../localcluster/udp-probe.js";
import { DataPathFailure, masqueradeProblem } from "./data-path.js";
import { connectivityMatrix, formatMatrix } from "./matrix.js";

const t0 = performance.now();
const stamp = () => `[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)}s]`;
const step = (text: string) => console.log(`${stamp()} ${text}`);
const indent = (text: string) => text.trimEnd().split("\n").map((l) => `        ${l}`).join("\n");

/** `make demo`: the local cluster comes up, shows allocation, routes and pods pinging across nodes, tears down. */
export async function runDemo(argv: string[]): Promise<void> {
  const { values } = usageErrors(() => parseArgs({ args: argv, options: {
    nodes: { type: "string", default: "3" }, segments: { type: "string", default: "2" }, "dual-stack": { type: "boolean", default: false },
    keep: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false },
  } }));
  if (values.help) { console.log(DEMO_USAGE); return; }
  const nodeCount = wholeNumber("--nodes", values.nodes, 2, MAX_NODES, NODES_CAP_REASON);
  const segments = wholeNumber("--segments", values.segments, 1, 4);
  if (process.getuid?.() !== 0) throw new Error("the demo creates network namespaces: run it as root");
  // Handlers first, and kept (not once): Ctrl-C while the cluster comes up, or a second one (tsx and make relay
  // it, a person presses it twice), must still end in the teardown rather than in Node's default exit.
  const live: { cluster?: LocalCluster } = {};
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= (async () => {
    if (!live.cluster) return;
    step("tearing down");
    await live.cluster.stop();
    step("done: no namespaces, processes or files left behind");
  })());
  const onSignal = (code: number) => {
    if (live.cluster) { void stop().finally(() => process.exit(code)); return; }
    // Still coming up: leaving now takes it all along (namespaces and run dir on exit, servers and agents by
    // their parent-death signal), where waiting for the start would wait out its timeouts on dead servers.
    step("interrupted while the cluster came up: its namespaces, processes and files go with this process");
    process.exit(code);
  };
  process.on("SIGINT", () => onSignal(130));
  process.on("SIGTERM", () => onSignal(143));
  process.on("SIGHUP", () => onSignal(129)); // the terminal closed (during --keep, say): the same teardown
  // Once teardown has begun the show stops at its next step: it went on to start node-4 mid-teardown.
  const checkpoint = () => { if (stopping) throw new DemoStopped(); };
  step(`podnet demo: ${nodeCount} nodes${values["dual-stack"] ? ", dual-stack" : ""} (a real kube-apiserver, the podnet controller, one agent per node)`);
  if (segments > 1) step(`nodes sit on ${segments} subnets behind a router: neighbours get direct routes, the others VXLAN (podnet.vxlan)`);
  const cluster = live.cluster = await LocalCluster.start({ nodes: nodeCount, segments, dualStack: values["dual-stack"], tag: "demo", progress: (l) => step(l), releaseCooldown: "3s" });
  try {
    await cluster.waitReady(90_000);
    checkpoint();
    step("every node has its pod CIDR, routes to every other node and a CNI config:");
    console.log(indent(cluster.kubectl("get", "nodecidrs", "-o", "wide")));
    for (const name of cluster.nodes.keys()) console.log(indent(`${name} routes (proto 249): ${shortList(cluster.ownRoutes(name))}`));
    step("each agent has cleared its Node's NetworkUnavailable condition (registered True, as on a cloud with a route controller):");
    console.log(indent(cluster.kubectl("get", "nodes", "-o",
      'custom-columns=NAME:.metadata.name,NETWORK-UNAVAILABLE:.status.conditions[?(@.type=="NetworkUnavailable")].status,REASON:.status.conditions[?(@.type=="NetworkUnavailable")].reason')));
    step("creating 2 pods per node with the real CNI plugins (bridge + host-local + portmap), as a container runtime would");
    for (const name of cluster.nodes.keys()) for (const i of [1, 2]) {
      checkpoint();
      const pod = cluster.addPod(name, `${name}-pod${i}`);
      console.log(indent(`${pod.name}: ${pod.ips.join(", ")}`));
    }
    step("all-pairs connectivity by pod IP; the source each receiver sees must be the sender's pod IP (no NAT):");
    const matrix = await connectivityMatrix(cluster.pods);
    checkpoint();
    console.log(indent(formatMatrix(matrix)));
    const failures = matrix.cells.filter((c) => !c.ok).length;
    if (failures) throw new DataPathFailure(`${failures} of ${matrix.cells.length} cross-node pod pairs failed`);
    await showHostPort(cluster);
    checkpoint();
    await showJoinAndLeave(cluster, nodeCount + 1, values["dual-stack"] ? 2 : 1, checkpoint);
    if (values.keep) {
      step(`cluster kept running; Ctrl-C tears it down. In another shell:\n        export KUBECONFIG=${cluster.kubeconfig}\n        alias kubectl=${kubeBin("kubectl")}`);
      await new Promise(() => undefined);
    }
  } catch (err) {
    if (!stopping) {
      // A data-path failure is told in the demo's own lines; etcd's and the apiserver's log tails add nothing.
      const logs = err instanceof DataPathFailure ? "" : `\n${cluster.logs()}`;
      console.error(`${stamp()} demo failed: ${err instanceof Error ? err.message : String(err)}${logs}`);
      process.exitCode = 1;
    }
  } finally {
    await stop();
  }
}

/**
 * The largest --nodes that passes reliably with the default 2 segments. The ARP entries of every namespace
 * count against one kernel-wide table (net.ipv4.neigh.default.gc_thresh3, 1024 here), and the matrix makes
 * about N²/2 + 5N of them within seconds, too fresh to be collected: at 45 nodes it overflowed (1,878 of 7,920
 * pairs failed), at 40 it passed holding 1,001 entries, at 36 829, which leaves room for other namespaces on
 * the host. Raising gc_thresh3 would lift the cap, but the demo does not change host sysctls.
 */
const MAX_NODES = 36;
const NODES_CAP_REASON = `beyond ${MAX_NODES} nodes the pod matrix overflows the kernel's neighbour table (gc_thresh3), which all network namespaces share`;

/** Up to 4 items, then how many more: 30 nodes' routes would be a 1,100-character line each. */
const shortList = (items: string[]) => (items.length <= 4 ? items.join(", ") : `${items.slice(0, 3).join(", ")}, … (${items.length} in all)`);

/** Thrown at a step once teardown has begun: the teardown reports, not this. */
class DemoStopped extends Error {}

const DEMO_USAGE = `usage: podnet demo [--nodes=N] [--segments=N] [--dual-stack] [--keep]
  --nodes=N      node namespaces, 2 to ${MAX_NODES} (default 3): beyond, the pod matrix overflows the kernel's
                 neighbour table, which all network namespaces share
  --segments=N   subnets the nodes sit on, behind a router, 1 to 4 (default 2): nodes on one subnet get direct
                 routes, the others VXLAN
  --dual-stack   IPv4 and IPv6 pod CIDRs, routes and pods
  --keep         keep the cluster running after the show, for kubectl; Ctrl-C tears it down`;

/** node:util's own words for an unknown or malformed flag, as a usage error (exit 2). */
function usageErrors<T>(parse: () => T): T {
  try { return parse(); } catch (err) { throw new FlagError((err as Error).message); }
}

function wholeNumber(flag: string, text: string, min: number, max: number, whyMax?: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  const why = whyMax && n > max ? ` (${whyMax})` : "";
  if (!(n >= min && n <= max)) throw new FlagError(`${flag} must be a whole number from ${min} to ${max}, got ${text}${why}`);
  return n;
}

/** A hostPort as kubelet asks for one: the runtime hands it to portmap, the last plugin of podnet's conflist. */
async function showHostPort(cluster: LocalCluster): Promise<void> {
  const [first, second] = [...cluster.nodes.keys()];
  const node = cluster.nodes.get(first!)!.node;
  const web = cluster.addPod(first!, `${first}-web`, [{ hostPort: 30080, containerPort: 8080, protocol: "udp" }]);
  try {
    const sender = cluster.pods.find((p) => p.nodeNs === cluster.nodes.get(second!)!.node.ns)!;
    step(`a hostPort: ${web.name} (${web.ips[0]}) listens on UDP 8080, mapped to ${node.ip}:30080 by portmap; ${sender.name} sends to ${node.ip}:30080`);
    const senderNode = cluster.nodes.get(second!)!.node;
    const seen = await sourceSeenBy(web.ns, "0.0.0.0", sender.ns, 8080, { ip: node.ip, port: 30080 });
    const problem = masqueradeProblem(seen, { name: second!, ip: senderNode.ip });
    if (problem) throw new DataPathFailure(problem);
    console.log(indent(`arrived; ${web.name} saw it from ${seen} (${second}'s address: pod traffic to a node address is masqueraded)`));
  } finally {
    cluster.deletePod(web);
  }
}

/** One CIDR per family the pool serves (two with --dual-stack): the step waits for, prints and checks each of them. */
async function showJoinAndLeave(cluster: LocalCluster, index: number, families: number, checkpoint: () => void): Promise<void> {
  const name = `node-${index}`;
  checkpoint();
  step(`${name} joins the cluster`);
  await cluster.addNode(name);
  const joined = cluster.nodes.get(name)!.registeredAt!;
  const others = [...cluster.nodes.keys()].filter((n) => n !== name);
  const cidrs = await waitFor(`${families === 1 ? "a CIDR" : `a CIDR of each of ${families} families`} for ${name}`, async () => {
    const allocated = (await cluster.nodeCidrs()).filter((r) => r.spec.nodeName === name && r.status?.phase === "Allocated").map((r) => r.spec.cidr);
    return allocated.length >= families ? allocated.sort() : undefined;
  }, 30_000, 20);
  const routedTo = (node: string, cidr: string) => cluster.ownRoutes(node).filter((r) => r.startsWith(`${cidr} `));
  await waitFor(`routes to ${cidrs.join(" and ")} everywhere`, async () => (others.every((n) => cidrs.every((c) => routedTo(n, c).length)) ? true : undefined), 30_000, 20);
  step(`${name} got ${cidrs.join(" and ")}; every node routes to ${cidrs.length === 1 ? "it" : "them"} (${((performance.now() - joined) / 1000).toFixed(1)} s after the Node was created):`);
  for (const other of others) console.log(indent(`${other}: ${cidrs.flatMap((c) => routedTo(other, c)).join(", ")}`));
  await cluster.waitReady(60_000);
  checkpoint();
  step(`${name} leaves the cluster (Node deleted)`);
  await cluster.removeNode(name);
  await waitFor("routes to the departed node gone", async () => ([...cluster.nodes.keys()].every((n) => cidrs.every((c) => !routedTo(n, c).length)) ? true : undefined), 30_000, 100);
  step(`routes to ${cidrs.join(" and ")} are gone from every node; its NodeCIDR${cidrs.length === 1 ? " is" : "s are"} Released until the cooldown ends`);
}

/** `make demo-clean`: remove namespaces of demo or test runs whose process is gone. */
export async function cleanDemo(): Promise<void> {
  // Processes need no sweep: every server and agent a run starts dies with it (parent-death signal).
  const namespaces = sweepStaleNamespaces();
  const runDirs = sweepStaleRunDirs();
  if (namespaces.length) console.log(`removed ${namespaces.length} leftover namespaces: ${namespaces.join(", ")}`);
  if (runDirs.length) console.log(`removed ${runDirs.length} leftover run dirs: ${runDirs.join(", ")}`);
  if (!namespaces.length && !runDirs.length) console.log("nothing left over");
}
