// Issue #4: leader failover of two controller replicas (separate processes, the bundle the image runs) on the
// real API server. Graceful: the leader gets SIGTERM and releases its Lease. Crash: the leader gets SIGKILL and
// the follower must wait out the lease. Each measured from the signal to the follower reporting
// podnet_controller_is_leader 1, then to the follower's first allocation (a Node created right after the signal).
// Usage: tsx bench/controller-failover.bench.ts [rounds]   (default 3)
import { join } from "node:path";
import { crdSources, renderCrdYaml } from "../src/crds/generate.js";
import { installCrds, KubeApi, podnetResource } from "../src/lib/k8s.js";
import { startControlPlane, type ControlPlane } from "../src/localcluster/control-plane.js";
import { CONTROLLER_NODE_FLAGS, podnetCliArgv, podnetCliEnv } from "../src/localcluster/podnet-cli.js";
import { freePort, startProcess, stopProcess, waitFor, type ManagedProcess } from "../src/localcluster/processes.js";

const LEASE = { duration: "6s", renew: "4s", retry: "500ms" };
const millis = (d: string) => (d.endsWith("ms") ? Number(d.slice(0, -2)) : Number(d.slice(0, -1)) * 1000);

async function replica(cp: ControlPlane, id: string): Promise<{ proc: ManagedProcess; leading: () => Promise<boolean> }> {
  const [cmd, ...args] = await podnetCliArgv(cp.dir);
  const port = await freePort();
  const proc = startProcess(`controller-${id}`, cmd!, [...CONTROLLER_NODE_FLAGS, ...args, "controller", `--kubeconfig=${cp.kubeconfig}`, "--lease-namespace=default",
    `--lease-duration=${LEASE.duration}`, `--renew-deadline=${LEASE.renew}`, `--retry-period=${LEASE.retry}`, `--metrics-address=127.0.0.1:${port}`],
  join(cp.dir, `controller-${id}.log`), { env: podnetCliEnv(cp.dir) });
  const leading = async () => {
    const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => "");
    return /^podnet_controller_is_leader 1$/m.test(text);
  };
  return { proc, leading };
}

async function failover(signal: "SIGTERM" | "SIGKILL", round: number): Promise<{ leaderMs: number; allocMs: number }> {
  const cp = await startControlPlane();
  const replicas: Array<Awaited<ReturnType<typeof replica>>> = [];
  try {
    const api = KubeApi.fromKubeconfig(cp.kubeconfig, "podnet-cli");
    await installCrds(api, crdSources.map(renderCrdYaml));
    replicas.push(await replica(cp, "a"), await replica(cp, "b"));
    const leader = await waitFor("a leader", async () => {
      for (const r of replicas) if (await r.leading()) return r;
      return undefined;
    }, 60_000, 50);
    const follower = replicas.find((r) => r !== leader)!;
    const t0 = performance.now();
    leader.proc.child.kill(signal);
    const node = `failover-${signal.toLowerCase()}-${round}`;
    await api.core.createNode({ body: { metadata: { name: node } } });
    await waitFor("follower leads", async () => ((await follower.leading()) ? true : undefined), 60_000, 20);
    const leaderMs = performance.now() - t0;
    await waitFor("node allocated by the new leader", async () => {
      const list = (await api.custom.listClusterCustomObject({ ...podnetResource("nodecidrs") })) as { items: Array<{ spec: { nodeName: string } }> };
      return list.items.some((r) => r.spec.nodeName === node) ? true : undefined;
    }, 60_000, 20);
    return { leaderMs, allocMs: performance.now() - t0 };
  } finally {
    for (const r of replicas) await stopProcess(r.proc);
    await cp.stop();
  }
}

const rounds = Number(process.argv[2] ?? 3);
console.log(`controller failover, 2 replicas, lease ${LEASE.duration} / renew ${LEASE.renew} / retry ${LEASE.retry} (the chart's defaults: 15s / 10s / 2s)`);
for (const signal of ["SIGTERM", "SIGKILL"] as const) {
  const results = [];
  for (let i = 0; i < rounds; i++) results.push(await failover(signal, i));
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const what = signal === "SIGTERM" ? "graceful (lease released)" : "crash (lease must expire)";
  const leaderMs = med(results.map((r) => r.leaderMs));
  // Baselines, the waits the protocol itself sets: a crash cannot be noticed before the lease expires, a
  // released lease not before the follower's next retry.
  const floor = signal === "SIGKILL" ? { ms: millis(LEASE.duration), what: "the lease duration" } : { ms: millis(LEASE.retry), what: "the retry period" };
  console.log(`${what.padEnd(27)} new leader after ${leaderMs.toFixed(0).padStart(5)} ms (${(leaderMs / floor.ms).toFixed(2)}x ${floor.what}), first allocation after ${med(results.map((r) => r.allocMs)).toFixed(0).padStart(5)} ms (median of ${rounds})`);
}
