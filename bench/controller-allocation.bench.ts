// Issue #4 benchmark: time until N Nodes all have an allocated pod CIDR, podnet vs kube-controller-manager's
// nodeipam range allocator vs the raw cost of creating N Node objects, each on a fresh control plane in one run.
// Usage: tsx bench/controller-allocation.bench.ts [N ...]   (default 100 1000 5000)
import { join } from "node:path";
import { controllerConfigSchema } from "../src/config.js";
import { AllocationController } from "../src/controllers/controller.js";
import { crdSources, renderCrdYaml } from "../src/crds/generate.js";
import { installCrds, KubeApi } from "../src/lib/k8s.js";
import { silentLogger } from "../src/log.js";
import { createNodes, listNodeCidrs, allocated } from "../test/harness/cluster-objects.js";
import { startControlPlane } from "../src/localcluster/control-plane.js";
import { kubeBin } from "../src/localcluster/kube-bins.js";
import { freePort, startProcess, stopProcess, waitFor } from "../src/localcluster/processes.js";

const PARALLELISM = 16;
const nodes = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `bench-${i}`, ip: `10.${100 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${(i % 254) + 1}` }));
const seconds = (t0: number) => (performance.now() - t0) / 1000;

async function withControlPlane<T>(fn: (kubeconfig: string, api: KubeApi, dir: string) => Promise<T>): Promise<T> {
  const cp = await startControlPlane();
  try {
    const api = KubeApi.fromKubeconfig(cp.kubeconfig, "podnet-cli");
    await installCrds(api, crdSources.map(renderCrdYaml));
    return await fn(cp.kubeconfig, api, cp.dir);
  } finally {
    await cp.stop();
  }
}

async function countAll<T>(list: () => Promise<T[]>, predicate: (t: T) => boolean, n: number, timeoutMs: number): Promise<void> {
  await waitFor(`${n} allocated`, async () => ((await list()).filter(predicate).length >= n ? true : undefined), timeoutMs, 200);
}

async function rawCreate(n: number): Promise<number> {
  return withControlPlane(async (_kc, api) => {
    const t0 = performance.now();
    await createNodes(api, nodes(n), PARALLELISM);
    return seconds(t0);
  });
}

async function podnet(n: number): Promise<{ s: number; rssMb: number; writesPerNode: number }> {
  return withControlPlane(async (kubeconfig) => {
    const config = controllerConfigSchema.parse({ "cluster-cidr": "10.128.0.0/9", "metrics-address": "127.0.0.1:0", "leader-elect": "false" });
    const controller = new AllocationController(KubeApi.fromKubeconfig(kubeconfig, "podnet-controller"), config, silentLogger());
    const client = KubeApi.fromKubeconfig(kubeconfig, "podnet-cli");
    await controller.start();
    const rssBefore = process.memoryUsage().rss;
    const t0 = performance.now();
    await createNodes(client, nodes(n), PARALLELISM);
    await countAll(() => listNodeCidrs(client).then(allocated), () => true, n, 300_000);
    const s = seconds(t0);
    const writes = (await controller.metrics.apiWrites.get()).values.reduce((sum, v) => sum + v.value, 0);
    const rssMb = Math.max(process.memoryUsage().rss - rssBefore, 0) / 2 ** 20;
    await controller.stop();
    return { s, rssMb, writesPerNode: writes / n };
  });
}

async function nodeipam(n: number): Promise<number> {
  return withControlPlane(async (kubeconfig, api, dir) => {
    const port = await freePort();
    const kcm = startProcess("kube-controller-manager", kubeBin("kube-controller-manager"), [
      `--kubeconfig=${kubeconfig}`, "--controllers=nodeipam", "--allocate-node-cidrs=true", "--cluster-cidr=10.128.0.0/9", "--service-cluster-ip-range=10.96.0.0/12",
      "--node-cidr-mask-size=24", "--leader-elect=false", "--use-service-account-credentials=false",
      `--secure-port=${port}`, "--bind-address=127.0.0.1", "--kube-api-qps=1000", "--kube-api-burst=1000",
    ], join(dir, "kcm.log"));
    try {
      const t0 = performance.now();
      await createNodes(api, nodes(n), PARALLELISM);
      await countAll(async () => (await listAllNodes(api)), (node) => Boolean(node.spec?.podCIDR), n, 300_000);
      return seconds(t0);
    } finally {
      await stopProcess(kcm);
    }
  });
}

async function listAllNodes(api: KubeApi) {
  const out = [];
  let token: string | undefined;
  do {
    const page = await api.core.listNode({ limit: 1000, _continue: token });
    out.push(...page.items);
    token = page.metadata?._continue;
  } while (token);
  return out;
}

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
console.log("N      raw-create  podnet    nodeipam  podnet/raw  podnet/nodeipam  writes/node  bench-rss-growth(in-process controller)");
for (const n of sizes.length ? sizes : [100, 1000, 5000]) {
  const raw = await rawCreate(n);
  const p = await podnet(n);
  const kcm = await nodeipam(n);
  console.log(`${String(n).padEnd(6)} ${raw.toFixed(2).padStart(9)}s ${p.s.toFixed(2).padStart(8)}s ${kcm.toFixed(2).padStart(8)}s ${(p.s / raw).toFixed(2).padStart(10)}x ${(p.s / kcm).toFixed(2).padStart(15)}x ${p.writesPerNode.toFixed(2).padStart(12)} ${p.rssMb.toFixed(0).padStart(10)} MB`);
}
