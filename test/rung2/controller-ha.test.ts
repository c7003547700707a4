import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, createNodes, deleteNodes, emptyCluster, invariantViolations, listNodeCidrs, nodePodCidrViolations } from "../harness/cluster-objects.js";
import { startController } from "../harness/controller-fixture.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { microTime } from "../../src/lib/leader.js";
import { apiStatus } from "../../src/lib/k8s.js";
import type { AllocationController } from "../../src/controllers/controller.js";

const fx = useControlPlane();
const repo = join(import.meta.dirname, "../..");
const running: AllocationController[] = [];
const processes: ChildProcess[] = [];
afterEach(async () => {
  for (const c of running.splice(0)) await c.stop();
  // A test that failed before killing its controller process must not leave it running after the suite.
  for (const p of processes.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  // Each test brings its own pool without a nodeSelector: one left behind, older, would serve the next test's Nodes.
  await emptyCluster(fx.api());
});

function controllerProcess(args: string[]) {
  // The real CLI in its own process, so SIGKILL is a real crash: no cleanup code runs. setpriv execs it in
  // place, asking the kernel to kill it should the test runner die first.
  const child = spawn("setpriv", ["--pdeathsig", "KILL", "--", process.execPath, "--import", "tsx", join(repo, "src/cli/main.ts"), "controller", ...args], {
    cwd: repo, stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, PODNET_LOG_LEVEL: "warn" },
  });
  processes.push(child);
  return child;
}

const nodeSet = (prefix: string, n: number, subnet: number) => Array.from({ length: n }, (_, i) => ({ name: `${prefix}-${String(i).padStart(3, "0")}`, ip: `192.168.${subnet}.${i + 1}` }));

describe("controller restarts and replicas on the real API server", () => {
  it("a controller killed mid-run (SIGKILL) and restarted loses nothing and duplicates nothing", async () => {
    const args = [`--kubeconfig=${fx.cp.kubeconfig}`, "--cluster-cidr=10.244.0.0/16", "--leader-elect=false", "--metrics-address=127.0.0.1:0", "--default-pool=kill"];
    const first = controllerProcess(args);
    const nodes = nodeSet("kill", 120, 60);
    const creating = createNodes(fx.api(), nodes, 4);
    await waitFor("some allocations", async () => (allocated(await listNodeCidrs(fx.api())).length >= 20 ? true : undefined), 60_000, 50);
    first.kill("SIGKILL");
    await creating;
    const beforeRestart = new Map(allocated(await listNodeCidrs(fx.api())).map((r) => [r.spec.nodeName, r.spec.cidr]));
    expect(beforeRestart.size).toBeLessThan(120);
    const second = controllerProcess(args);
    try {
      const final = await waitFor("all 120 allocated", async () => {
        const live = allocated(await listNodeCidrs(fx.api()));
        return live.length === 120 ? live : undefined;
      }, 90_000, 250);
      for (const r of final) if (beforeRestart.has(r.spec.nodeName)) expect(r.spec.cidr).toBe(beforeRestart.get(r.spec.nodeName));
      // One record per node, none set aside: a second allocation for a node would have been quarantined.
      const mine = (await listNodeCidrs(fx.api())).filter((r) => nodes.some((n) => n.name === r.spec.nodeName));
      expect(mine.length).toBe(120);
      expect(mine.filter((r) => r.status?.phase === "Quarantined")).toEqual([]);
      expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
      expect(await nodePodCidrViolations(fx.api())).toEqual([]);
    } finally {
      second.kill("SIGTERM");
    }
    await deleteNodes(fx.api(), nodes.map((n) => n.name));
  }, 200_000);

  it("two replicas with a forced lease handover during churn never hand out a CIDR twice", async () => {
    const flags = { "leader-elect": "true", "lease-duration": "3s", "renew-deadline": "2s", "retry-period": "200ms", "cluster-cidr": "10.246.0.0/16", "default-pool": "ha" };
    const a = await startController(fx, flags);
    const b = await startController(fx, flags);
    running.push(a, b);
    const leader = await waitFor("a leader", async () => (a.isLeader ? a : b.isLeader ? b : undefined), 15_000);
    const follower = leader === a ? b : a;
    const batch1 = nodeSet("ha-a", 40, 70);
    const churn = createNodes(fx.api(), batch1, 4);
    await waitFor("some allocations", async () => (allocated(await listNodeCidrs(fx.api())).filter((r) => r.spec.pool === "ha").length >= 10 ? true : undefined), 30_000, 50);
    const handoverAt = Date.now();
    await leader.stop();
    running.splice(running.indexOf(leader), 1);
    await churn;
    await deleteNodes(fx.api(), batch1.slice(0, 10).map((n) => n.name));
    await createNodes(fx.api(), nodeSet("ha-b", 20, 71), 4);
    await waitFor("follower took over", async () => (follower.isLeader ? true : undefined), 15_000);
    const failoverMs = Date.now() - handoverAt;
    const expected = new Set([...batch1.slice(10), ...nodeSet("ha-b", 20, 71)].map((n) => n.name));
    await waitFor("all live nodes allocated", async () => {
      const live = allocated(await listNodeCidrs(fx.api())).filter((r) => r.spec.pool === "ha");
      return live.length === expected.size && live.every((r) => expected.has(r.spec.nodeName)) ? true : undefined;
    }, 60_000, 250);
    // Two leaders planning at once would have made a second record for a node, which the planner quarantines.
    expect((await listNodeCidrs(fx.api())).filter((r) => r.spec.pool === "ha" && r.status?.phase === "Quarantined")).toEqual([]);
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
    expect(await nodePodCidrViolations(fx.api())).toEqual([]);
    console.log(`graceful lease handover: follower leading ${failoverMs} ms after the leader stopped`);
  }, 120_000);

  it("a replica that loses its lease stops reporting the pools: only the leader's figures reach alerts and dashboards", async () => {
    const lease = { name: "podnet-metrics-handover", namespace: "default" };
    const c = await startController(fx, { "leader-elect": "true", "lease-name": lease.name, "lease-duration": "3s", "renew-deadline": "2s", "retry-period": "200ms", "cluster-cidr": "10.247.0.0/16", "default-pool": "lost" });
    running.push(c);
    const metrics = async () => (await fetch(`http://127.0.0.1:${c.metricsPort}/metrics`)).text();
    const poolSeries = (text: string) => text.split("\n").filter((l) => /^podnet_pool_(size|allocated|free)\{/.test(l));
    await waitFor("pool figures from the leader", async () => (poolSeries(await metrics()).some((l) => l.includes('pool="lost"')) ? true : undefined), 15_000);
    // Someone else takes the lease (a replica that thinks the lease expired, an operator): this one must step down.
    const leases = { group: "coordination.k8s.io", version: "v1", plural: "leases", ...lease };
    // The holder renews every 200 ms, so a read-then-replace may meet a newer version (409): read again.
    await waitFor("the lease taken", async () => {
      const held = await fx.api().custom.getNamespacedCustomObject(leases) as { spec: Record<string, unknown> };
      return fx.api().custom.replaceNamespacedCustomObject({ ...leases, body: { ...held, spec: { ...held.spec, holderIdentity: "intruder", leaseDurationSeconds: 3600, renewTime: microTime(Date.now()) } } })
        .then(() => true, (err: unknown) => { if (apiStatus(err) === 409) return undefined; throw err; });
    }, 10_000, 50);
    await waitFor("stepped down", async () => (c.isLeader ? undefined : true), 15_000);
    const text = await metrics();
    expect(text).toMatch(/^podnet_controller_is_leader 0$/m);
    expect(poolSeries(text)).toEqual([]);
    expect(text).toMatch(/^podnet_nodecidrs_retained 0$/m);
    await fx.api().coordination.deleteNamespacedLease(lease);
  }, 60_000);
});
