import { Watch, type KubernetesObject } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { controllerConfigSchema } from "../../src/config.js";
import { applyActions } from "../../src/controllers/act.js";
import { AllocationController } from "../../src/controllers/controller.js";
import type { NodeCidrObject } from "../../src/controllers/observe.js";
import { RetryGate } from "../../src/lib/backoff.js";
import { EventRecorder } from "../../src/lib/events.js";
import { applyStatus, KubeApi, podnetResource } from "../../src/lib/k8s.js";
import { createLogger, silentLogger } from "../../src/log.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, createNodes, deleteNodes, emptyCluster, listNodeCidrs } from "../harness/cluster-objects.js";
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

  it("a release the former leader sent into a partition, delivered after the handover, leaves the live Node that holds the name since alone", async () => {
    const flags = flagsFor("fence-held", "10.230.0.0/16", "3s");
    // l1's requests can be held in the proxy (an asymmetric partition) while its watches still hear everything.
    const { proxy, kubeconfig } = await proxiedKubeconfig(fx, "held");
    proxies.push(proxy);
    const l1 = await replica(KubeApi.fromKubeconfig(kubeconfig, "podnet-controller"), flags);
    await until("l1 leads", async () => (l1.isLeader ? true : undefined));
    const l2 = await replica(fx.api("podnet-controller"), flags);
    await createNodes(fx.api(), [{ name: "x-1", ip: "192.168.97.1" }]);
    const [xCidr] = await until("x-1 allocated", () => cidrsOf("x-1"));
    const releasesSent = async () => (await l1.metrics.apiWrites.get()).values.find((v) => v.labels.action === "release")?.value ?? 0;
    proxy.holdRequests();
    await deleteNodes(fx.api(), ["x-1"]);
    await until("l1 sent x-1's release (held)", async () => (await releasesSent() > 0 ? true : undefined));
    await until("l2 takes over", async () => (l2.isLeader ? true : undefined));
    // l2 releases x-1's record itself, deletes it after the 3 s cooldown, and hands its range to y-1.
    await until("x-1's record deleted", async () => ((await listNodeCidrs(fx.api())).some((r) => r.spec.cidr === xCidr) ? undefined : true));
    await createNodes(fx.api(), [{ name: "y-1", ip: "192.168.97.2" }]);
    const [yCidr] = await until("y-1 allocated", () => cidrsOf("y-1"));
    expect(yCidr).toBe(xCidr); // the same record name: the held release is addressed to it
    const [before] = await recordsOf("y-1");

    const history = await recordHistory();
    expect(proxy.deliverHeld()).toBeGreaterThan(0);
    await sleep(3_000);
    // Applied without a version, the release marked y-1's record Released with x-1's old releasedAt, past the
    // cooldown: l2 deleted the live Node's record at once.
    const seen = [...history.byUid.values()].map((h) => `${h.name} (${h.node}): ${h.events.join(" ")}`);
    expect(seen.filter((s) => /Released|DELETED/.test(s))).toEqual([]);
    expect((await recordsOf("y-1")).map((r) => `${r.metadata!.uid} ${r.status?.phase}`)).toEqual([`${before!.metadata!.uid} Allocated`]);
  }, 120_000);

  it("a leader frozen with its creates in flight writes no status after waking: the successor's releases stand", async () => {
    const flags = flagsFor("fence-stop", "10.231.0.0/16", "30s");
    const { proxy, kubeconfig } = await proxiedKubeconfig(fx, "stop");
    proxies.push(proxy);
    const l1 = spawnController(cliArgs({ ...flags, kubeconfig }));
    await until("l1 leads", async () => (l1.holds(await holder("fence-stop")) ? true : undefined));
    const l2 = await replica(fx.api("podnet-controller"), flags);
    await until("l2 synced", async () => (l2.synced ? true : undefined));
    // A first batch leaves l1 with open pooled connections: the creates below need no new TLS handshake.
    const warm = Array.from({ length: 8 }, (_, i) => ({ name: `w-${i}`, ip: `192.168.98.${i + 1}` }));
    await createNodes(fx.api(), warm);
    await until("first batch allocated", async () => (allocated(await listNodeCidrs(fx.api())).length === 8 ? true : undefined));
    // l1 done with them (podCIDRs, conditions, pool status): a pass left waiting on a held write would send no create.
    const writes = () => l1.metric("podnet_controller_api_writes_total");
    await until("l1 idle", async () => { const before = await writes(); await sleep(700); return await writes() === before ? true : undefined; });
    const history = await recordHistory();

    // Nodes join: l1's creates for them are held in the proxy, l1 is frozen, then the creates land. Their answers
    // wait in l1's sockets while it sleeps. (Its first pass waits on its held writes: those Nodes it saw by then.)
    const burst = Array.from({ length: 4 }, (_, i) => ({ name: `b-${i}`, ip: `192.168.99.${i + 1}` }));
    const createsSent = () => l1.metric("podnet_controller_api_writes_total", 'action="create"');
    const sentBefore = await createsSent();
    proxy.holdRequests();
    await createNodes(fx.api(), burst);
    const held = await until("l1 sent its creates (held)", async () => {
      const sent = await createsSent() - sentBefore;
      await sleep(300);
      return sent > 0 && await createsSent() - sentBefore === sent ? sent : undefined;
    }, 5_000);
    l1.child.kill("SIGSTOP");
    proxy.deliverHeld();
    await until("l1's creates landed", async () => ((await listNodeCidrs(fx.api())).filter((r) => r.spec.nodeName.startsWith("b-")).length === held ? true : undefined), 5_000);
    expect(l2.isLeader).toBe(false); // they are l1's, not l2's
    // l2 takes over, confirms them and allocates to the rest; then the Nodes leave again and l2 releases their CIDRs.
    await until("l2 takes over", async () => (l2.isLeader ? true : undefined));
    await until("burst confirmed", async () => (allocated(await listNodeCidrs(fx.api())).filter((r) => r.spec.nodeName.startsWith("b-")).length === 4 ? true : undefined));
    await deleteNodes(fx.api(), burst.map((n) => n.name));
    await until("burst released", async () => ((await listNodeCidrs(fx.api())).filter((r) => r.spec.nodeName.startsWith("b-") && r.status?.phase === "Released").length === 4 ? true : undefined));

    const contAt = Date.now();
    l1.child.kill("SIGCONT");
    await sleep(3_000);
    // Without a check after the create and a version on the status write, l1 wrote Allocated over each release.
    expect(history.undone(), `l1 after SIGCONT:\n${l1.logSince(contAt).join("\n")}`).toEqual([]);
    expect((await listNodeCidrs(fx.api())).filter((r) => r.spec.nodeName.startsWith("b-")).map((r) => r.status?.phase)).toEqual(["Released", "Released", "Released", "Released"]);
  }, 120_000);

  it("writes planned on a version of a record older than the server's are refused, neither failed nor backed off", async () => {
    // The act shell on its own, given a plan made before the record last changed: a former leader's.
    const api = fx.api("podnet-controller");
    const shell = new AllocationController(api, controllerConfigSchema.parse({ "metrics-address": "127.0.0.1:0", "leader-elect": "false" }), silentLogger());
    const name = "10-232-0-0-24";
    type Rec = NodeCidrObject & KubernetesObject;
    const read = await api.custom.createClusterCustomObject({ ...podnetResource("nodecidrs"), body: { apiVersion: "podnet.io/v1alpha1", kind: "NodeCIDR", metadata: { name },
      spec: { nodeName: "gone", cidr: "10.232.0.0/24", family: "IPv4", pool: "p", nodeIPs: ["192.168.96.1"] } } }) as Rec;
    // Written since the plan read it (as the successor's confirm would).
    const now = await applyStatus(api, "nodecidrs", name, "NodeCIDR", { phase: "Allocated" }) as Rec;
    const retry = new RetryGate();
    const ctx = (planned: Rec) => ({ api, nodes: shell.nodes, records: shell.records, recorder: new EventRecorder(api, "test", silentLogger()),
      metrics: shell.metrics, log: silentLogger(), planned: new Map([[name, planned]]), leading: () => true, retry });
    await applyActions(ctx(read), [{ kind: "release", name, nodeName: "gone" }, { kind: "updateNodeIPs", name, nodeIPs: ["192.168.96.9"] }, { kind: "delete", name }]);
    const after = await api.custom.getClusterCustomObject({ ...podnetResource("nodecidrs"), name }) as NodeCidrObject;
    expect({ version: after.metadata!.resourceVersion, phase: after.status?.phase, nodeIPs: after.spec.nodeIPs })
      .toEqual({ version: now.metadata!.resourceVersion, phase: "Allocated", nodeIPs: ["192.168.96.1"] });
    expect((await shell.metrics.errors.get()).values.reduce((n, v) => n + v.value, 0)).toBe(0);
    expect(["release", "updateNodeIPs", "delete"].filter((kind) => retry.waiting(`${kind}:${name}`, Date.now()))).toEqual([]);
    // Planned on the version the server has, the release goes through.
    await applyActions(ctx(now), [{ kind: "release", name, nodeName: "gone" }]);
    expect((await api.custom.getClusterCustomObject({ ...podnetResource("nodecidrs"), name }) as NodeCidrObject).status?.phase).toBe("Released");
  });
});
