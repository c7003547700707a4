// Issue #4 benchmark: time until N Nodes all have their pod CIDR, each scenario on a fresh control plane, one run:
//   raw-nodes   the load alone: N Nodes created (+ InternalIP status) by this process, nothing allocates
//   raw-writes  the same Nodes plus every write podnet makes per Node (NodeCIDR create, its status, the Node's
//               podCIDRs), issued straight from this process at the same parallelism: podnet minus its logic
//   podnet      the Nodes created while the podnet controller (its own process, the bundle the image runs) allocates
//   nodeipam    the Nodes created while kube-controller-manager's nodeipam range allocator allocates
// Completion is seen through watches (not by re-listing everything), so the observer costs the apiserver
// little. CPU seconds per scenario show where time goes on a machine whose 2 cores everything shares.
// With --kubelet-status, every Node also carries what kubelet reports (conditions, capacity, node info, 40
// images: ≈9 KB of JSON), as real Nodes do; podnet's controller caches only the part it reads.
// Usage: tsx bench/controller-allocation.bench.ts [--kubelet-status] [N ...]   (default 100 1000 5000)
import { join } from "node:path";
import type { KubernetesObject, V1Node } from "@kubernetes/client-node";
import { crdSources, renderCrdYaml } from "../src/crds/generate.js";
import { Informer, type ListPage } from "../src/lib/informer.js";
import { applyStatus, forEachLimited, installCrds, KubeApi, mergePatch, podnetResource } from "../src/lib/k8s.js";
import { cidrObjectName } from "../src/lib/cidr.js";
import { silentLogger } from "../src/log.js";
import type { NodeCidrObject } from "../src/controllers/observe.js";
import { startControlPlane, type ControlPlane } from "../src/localcluster/control-plane.js";
import { kubeBin } from "../src/localcluster/kube-bins.js";
import { CONTROLLER_NODE_FLAGS, cpuSeconds, peakRssMb, podnetCliArgv, podnetCliEnv } from "../src/localcluster/podnet-cli.js";
import { freePort, startProcess, stopProcess, waitFor, type ManagedProcess } from "../src/localcluster/processes.js";
import { createNodes } from "../test/harness/cluster-objects.js";

const PARALLELISM = 16;
const POOL = "10.128.0.0/9";
const kubeletStatus = process.argv.includes("--kubelet-status");
const nodes = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `bench-${i}`, ip: `10.${100 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${(i % 254) + 1}`, kubeletStatus }));
const sliceOf = (i: number) => `10.${128 + Math.floor(i / 256)}.${i % 256}.0/24`; // the i-th /24 of POOL

type Scenario = "raw-nodes" | "raw-writes" | "podnet" | "nodeipam";
interface Result { s: number; cpCpu: number; ctrlCpu: number; ctrlRssMb: number; writesPerNode?: number }

/** Count objects satisfying `done` through a watch; resolves when `n` do. */
function watchCount<T extends KubernetesObject>(api: KubeApi, path: string, list: (t?: string) => Promise<ListPage<T>>, done: (o: T) => boolean, n: number) {
  const hits = new Set<string>();
  let resolveAll!: () => void;
  const all = new Promise<void>((r) => (resolveAll = r));
  const informer = new Informer<T>({ api, path, list, log: silentLogger(), onEvent: (_e, o) => {
    if (done(o)) hits.add(o.metadata!.name!);
    if (hits.size >= n) resolveAll();
  } });
  informer.start();
  return { synced: informer.synced, all, stop: () => informer.stop() };
}

const nodeWatch = (api: KubeApi, n: number) => watchCount<V1Node>(api, "/api/v1/nodes",
  (t) => api.core.listNode({ limit: 500, _continue: t }) as Promise<ListPage<V1Node>>, (node) => Boolean(node.spec?.podCIDRs?.length), n);
const recordWatch = (api: KubeApi, n: number) => watchCount<NodeCidrObject & KubernetesObject>(api, "/apis/podnet.io/v1alpha1/nodecidrs",
  (t) => api.custom.listClusterCustomObject({ ...podnetResource("nodecidrs"), limit: 500, _continue: t }) as Promise<ListPage<NodeCidrObject & KubernetesObject>>,
  (r) => r.status?.phase === "Allocated", n);

/** Every write podnet's controller makes for one Node, issued directly. */
async function podnetWrites(api: KubeApi, i: number, node: string): Promise<void> {
  const cidr = sliceOf(i);
  const name = cidrObjectName(cidr);
  await api.custom.createClusterCustomObject({ ...podnetResource("nodecidrs"), fieldManager: api.fieldManager, body: {
    apiVersion: "podnet.io/v1alpha1", kind: "NodeCIDR", metadata: { name, labels: { "podnet.io/node": node, "podnet.io/pool": "default" } },
    spec: { nodeName: node, cidr, family: "IPv4", pool: "default", nodeIPs: [] },
  } });
  await applyStatus(api, "nodecidrs", name, "NodeCIDR", { phase: "Allocated", observedGeneration: 1, conditions: [
    { type: "Allocated", status: "True", reason: "Allocated", message: `${cidr} from pool default`, observedGeneration: 1, lastTransitionTime: new Date().toISOString() },
  ] });
  await api.core.patchNode({ name: node, body: { spec: { podCIDR: cidr, podCIDRs: [cidr] } }, fieldManager: api.fieldManager }, mergePatch());
}

async function startController(kind: "podnet" | "nodeipam", cp: ControlPlane, port: number): Promise<ManagedProcess> {
  if (kind === "podnet") {
    const [cmd, ...args] = await podnetCliArgv(cp.dir);
    return startProcess("podnet-controller", cmd!, [...CONTROLLER_NODE_FLAGS, ...args, "controller", `--kubeconfig=${cp.kubeconfig}`, `--cluster-cidr=${POOL}`,
      "--leader-elect=false", `--metrics-address=127.0.0.1:${port}`], join(cp.dir, "controller.log"), { env: podnetCliEnv(cp.dir) });
  }
  return startProcess("kube-controller-manager", kubeBin("kube-controller-manager"), [
    `--kubeconfig=${cp.kubeconfig}`, "--controllers=nodeipam", "--allocate-node-cidrs=true", `--cluster-cidr=${POOL}`,
    "--service-cluster-ip-range=10.96.0.0/12", "--node-cidr-mask-size=24", "--leader-elect=false", "--use-service-account-credentials=false",
    `--secure-port=${port}`, "--bind-address=127.0.0.1", "--kube-api-qps=1000", "--kube-api-burst=1000",
  ], join(cp.dir, "kcm.log"));
}

async function apiWritesPerNode(port: number, n: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const writes = text.split("\n").filter((l) => l.startsWith("podnet_controller_api_writes_total")).reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
  return writes / n;
}

async function run(kind: Scenario, n: number): Promise<Result> {
  const cp = await startControlPlane();
  let controller: ManagedProcess | undefined;
  try {
    const api = KubeApi.fromKubeconfig(cp.kubeconfig, "podnet-cli");
    await installCrds(api, crdSources.map(renderCrdYaml));
    const port = await freePort();
    if (kind === "podnet" || kind === "nodeipam") controller = await startController(kind, cp, port);
    const watches = kind === "podnet" ? [nodeWatch(api, n), recordWatch(api, n)] : kind === "nodeipam" ? [nodeWatch(api, n)] : [];
    await Promise.all(watches.map((w) => w.synced));
    if (controller?.name === "podnet-controller") await waitFor("controller metrics", async () => (await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false)) || undefined, 30_000);
    const cpu0 = cp.processes.reduce((s, p) => s + cpuSeconds(p.child.pid), 0);
    const ctrl0 = cpuSeconds(controller?.child.pid);
    const t0 = performance.now();
    // raw-writes: the same load shape as podnet's: PARALLELISM creators, and PARALLELISM writers (podnet's act
    // parallelism is 16 too) issuing each Node's three writes as soon as it exists, while creates go on. (All
    // creates first and then all writes, or create-then-write in one worker, would measure other shapes.)
    if (kind === "raw-writes") {
      const list = nodes(n);
      const created = list.map(() => { let done!: () => void; const p = new Promise<void>((r) => (done = r)); return { p, done }; });
      await Promise.all([
        forEachLimited(list.map((node, i) => ({ node, i })), PARALLELISM, async ({ node, i }) => { await createNodes(api, [node], 1); created[i]!.done(); }),
        forEachLimited(list.map((node, i) => ({ node, i })), PARALLELISM, async ({ node, i }) => { await created[i]!.p; await podnetWrites(api, i, node.name); }),
      ]);
    } else await createNodes(api, nodes(n), PARALLELISM);
    await Promise.race([Promise.all(watches.map((w) => w.all)), new Promise((_, reject) => setTimeout(() => reject(new Error(`${kind} N=${n} not done in 600 s`)), 600_000).unref())]);
    const s = (performance.now() - t0) / 1000;
    const result: Result = {
      s, cpCpu: cp.processes.reduce((sum, p) => sum + cpuSeconds(p.child.pid), 0) - cpu0,
      ctrlCpu: cpuSeconds(controller?.child.pid) - ctrl0, ctrlRssMb: peakRssMb(controller?.child.pid),
      ...(kind === "podnet" ? { writesPerNode: await apiWritesPerNode(port, n) } : {}),
    };
    for (const w of watches) w.stop();
    return result;
  } finally {
    if (controller) await stopProcess(controller);
    await cp.stop();
  }
}

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const f = (x: number, w = 8) => x.toFixed(2).padStart(w);
if (kubeletStatus) console.log("Nodes carry kubelet's status (conditions, capacity, node info, 40 images)");
console.log("N      scenario     time      ratio vs raw-nodes  vs raw-writes  vs nodeipam   apiserver+etcd CPU/node  controller CPU/node  controller peak RSS  API writes/node");
for (const n of sizes.length ? sizes : [100, 1000, 5000]) {
  const results = new Map<Scenario, Result>();
  for (const kind of ["raw-nodes", "raw-writes", "podnet", "nodeipam"] as const) results.set(kind, await run(kind, n));
  const base = results.get("raw-nodes")!.s;
  for (const [kind, r] of results) {
    const ratio = (other: Scenario) => f(r.s / results.get(other)!.s, 6) + "x";
    const ctrl = kind === "podnet" || kind === "nodeipam";
    console.log(`${String(n).padEnd(6)} ${kind.padEnd(11)} ${f(r.s)}s ${f(r.s / base, 10)}x ${ratio("raw-writes").padStart(14)} ${ratio("nodeipam").padStart(12)} ${f(r.cpCpu * 1000 / n, 16)} ms ${ctrl ? `${f(r.ctrlCpu * 1000 / n, 14)} ms` : " ".repeat(17)} ${ctrl ? `${r.ctrlRssMb.toFixed(0).padStart(14)} MB` : " ".repeat(17)} ${r.writesPerNode !== undefined ? f(r.writesPerNode, 12) : ""}`);
  }
}
