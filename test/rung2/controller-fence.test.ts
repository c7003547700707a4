import { Watch } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { controllerConfigSchema } from "../../src/config.js";
import { AllocationController } from "../../src/controllers/controller.js";
import type { NodeCidrObject } from "../../src/controllers/observe.js";
import { KubeApi } from "../../src/lib/k8s.js";
import { createLogger, silentLogger } from "../../src/log.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, createNodes, emptyCluster, listNodeCidrs } from "../harness/cluster-objects.js";
import { allowNodeCidrs, denyNodeCidrsFor, until } from "../harness/controller-fixture.js";
import { killControllerProcesses, spawnController } from "../harness/controller-process.js";
import { proxiedKubeconfig, type TcpProxy } from "../harness/tcp-proxy.js";

/**
 * A leader that was frozen or cut off, and the writes it had planned or sent before: none may land on what its
 * successor made of the cluster since. The lease is 3 s, the renew deadline 2 s.
 */
const fx = useControlPlane();
const replicas: AllocationController[] = [];
const proxies: TcpProxy[] = [];
const watches: AbortController[] = [];
afterEach(async () => {
  killControllerProcesses();
  for (const w of watches.splice(0)) w.abort();
  // Before the replicas stop: one waiting on a held request would wait out its 60 s silence timeout.
  for (const p of proxies.splice(0)) await p.close();
  for (const c of replicas.splice(0)) await c.stop();
  await allowNodeCidrs(fx);
  await emptyCluster(fx.api());
});

const flagsFor = (lease: string, clusterCidr: string, cooldown: string) => ({
  "leader-elect": "true", "lease-namespace": "default", "lease-name": lease, "lease-duration": "3s", "renew-deadline": "2s", "retry-period": "200ms",
  "release-cooldown": cooldown, "resync-period": "60s", "metrics-address": "127.0.0.1:0", "cluster-cidr": clusterCidr, "default-pool": lease,
});
const cliArgs = (flags: Record<string, string>) => Object.entries(flags).map(([k, v]) => `--${k}=${v}`);

async function replica(api: KubeApi, flags: Record<string, string>): Promise<AllocationController> {
  const c = new AllocationController(api, controllerConfigSchema.parse(flags), process.env.PODNET_TEST_LOGS ? createLogger(`ctl-${replicas.length}`, "debug") : silentLogger());
  replicas.push(c);
  await c.start();
  return c;
}
const holder = async (lease: string) => (await fx.api().coordination.readNamespacedLease({ name: lease, namespace: "default" }).catch(() => undefined))?.spec?.holderIdentity;
const recordsOf = async (node: string) => (await listNodeCidrs(fx.api())).filter((r) => r.spec.nodeName === node);
const cidrsOf = async (node: string) => { const r = allocated(await recordsOf(node)); return r.length ? r.map((x) => x.spec.cidr) : undefined; };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every NodeCIDR event from now on, as `TYPE/phase` per record uid (with its name and node). */
async function recordHistory() {
  const byUid = new Map<string, { name: string; node: string; events: string[] }>();
  const abort = await new Watch(fx.api().kc).watch("/apis/podnet.io/v1alpha1/nodecidrs", {}, (type, o: NodeCidrObject) => {
    const uid = o.metadata!.uid!;
    const h = byUid.get(uid) ?? { name: o.metadata!.name!, node: o.spec.nodeName, events: [] };
    h.events.push(`${type}/${o.status?.phase ?? "-"}`);
    byUid.set(uid, h);
  }, () => undefined);
  watches.push(abort);
  return {
    byUid,
    /** Records seen Released and later Allocated again: a release undone. */
    undone: () => [...byUid.values()].filter((h) => { const i = h.events.indexOf("MODIFIED/Released"); return i >= 0 && h.events.slice(i).includes("MODIFIED/Allocated"); })
      .map((h) => `${h.name} (${h.node}): ${h.events.join(" ")}`),
  };
}

describe("controller on the real API server: a former leader's writes are fenced", () => {
  it("a leader frozen past its lease that takes the released lease back lists afresh before it plans: a live Node keeps its CIDR", async () => {
    const flags = flagsFor("fence-lapse", "10.210.0.0/16", "30s");
    // l1 in a process of its own (SIGSTOP), through a proxy that can stall its watches; its idle pooled
    // connections, stalled too, are closed after 1 s and opened again, so it goes on renewing.
    const { proxy, kubeconfig } = await proxiedKubeconfig(fx, "lapse");
    proxies.push(proxy);
    const l1 = spawnController(cliArgs({ ...flags, kubeconfig }), { silenceTimeoutMs: 1_000 });
    await until("l1 leads", async () => (l1.holds(await holder("fence-lapse")) ? true : undefined));
    const l2 = await replica(fx.api("podnet-controller"), flags);
    // x-1 joins while its NodeCIDR is refused: l1 sees the Node and has no record for it.
    await denyNodeCidrsFor(fx, "x-1");
    await createNodes(fx.api(), [{ name: "x-1", ip: "192.168.95.2" }]);
    await until("l1 tried x-1", async () => (l1.log.some((l) => l.action === "create" && l.target === "x-1") ? true : undefined));
    // From here l1's watches hear nothing; it renews on over fresh connections.
    const stalledAt = Date.now();
    proxy.stallOpen();
    await until("l1 renews after the stall", async () => {
      const lease = await fx.api().coordination.readNamespacedLease({ name: "fence-lapse", namespace: "default" });
      return l1.holds(lease.spec?.holderIdentity) && new Date(lease.spec?.renewTime ?? 0).getTime() > stalledAt + 1_500 ? true : undefined;
    });
    l1.child.kill("SIGSTOP");
    await until("l2 takes over", async () => (l2.isLeader ? true : undefined));
    // While l1 is frozen: a-1 joins and gets the lowest range from l2, then x-1 is let have the next.
    await createNodes(fx.api(), [{ name: "a-1", ip: "192.168.95.3" }]);
    const [aCidr] = await until("a-1 allocated", () => cidrsOf("a-1"));
    await allowNodeCidrs(fx);
    const [xCidr] = await until("x-1 allocated", () => cidrsOf("x-1"));
    expect(aCidr).toBe("10.210.0.0/24"); // the range l1, behind, would hand x-1
    await l2.stop(); // a rollout: the lease goes back at once
    replicas.splice(replicas.indexOf(l2), 1);

    const history = await recordHistory();
    const contAt = Date.now();
    l1.child.kill("SIGCONT");
    await until("l1 leads again", async () => (l1.holds(await holder("fence-lapse")) ? true : undefined));
    await sleep(3_000); // its first plans and their writes
    const said = `l1 after SIGCONT:\n${l1.logSince(contAt).join("\n")}`;
    // Planned on its stale caches, l1 met a-1's record creating x-1's, took it in and released it: no a-1 for it.
    expect((await recordsOf("a-1")).map((r) => `${r.spec.cidr} ${r.status?.phase}`), said).toEqual([`${aCidr} Allocated`]);
    expect((await recordsOf("x-1")).map((r) => `${r.spec.cidr} ${r.status?.phase}`), said).toEqual([`${xCidr} Allocated`]);
    expect([...history.byUid.values()].flatMap((h) => h.events), said).not.toContain("MODIFIED/Released");
  }, 120_000);
});
