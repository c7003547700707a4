import type { KubernetesObject } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Informer, type ListPage } from "../../src/lib/informer.js";
import { podnetResource } from "../../src/lib/k8s.js";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { silentLogger } from "../../src/log.js";
import { putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

/**
 * What the agents write to the API server, read back through a watch as every agent would see it: each status
 * write reaches all N agents, so at 5,000 nodes a write per agent per join is 5,000 writes and 25 million
 * deliveries. Quiet clusters must cost nothing, and a join's count updates must not land all at once.
 */
const fx = useControlPlane();
const nodecidrs = podnetResource("nodecidrs");
let bed: NetBed;
const agents: TestAgent[] = [];
const writes: Array<{ at: number; name: string }> = [];
let watcher: Informer<KubernetesObject>;
const owners = new Map<string, string>(); // record name → its node

describe.skipIf(!isRoot())("node agents' status writes (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("sw", 4, 65);
    for (const [i, n] of bed.nodes.entries()) owners.set(await putNodeCidr(fx.api(), n.name, `10.244.${60 + i}.0/24`, [n.ip]), n.name);
    const api = fx.api();
    watcher = new Informer<KubernetesObject>({ api, path: "/apis/podnet.io/v1alpha1/nodecidrs", log: silentLogger(),
      list: (t) => api.custom.listClusterCustomObject({ ...nodecidrs, limit: 500, _continue: t }) as Promise<ListPage<KubernetesObject>>,
      onEvent: (event, obj) => { if (event === "update" && owners.has(obj.metadata!.name!)) writes.push({ at: performance.now(), name: obj.metadata!.name! }); } });
    watcher.start();
    await watcher.synced;
    // Fixed draws for the random part of a count-only update's wait: agent i waits i/4 of the interval.
    for (const [i, n] of bed.nodes.entries()) agents.push(await startAgent(fx, n, { "resync-period": "1s" }, { statusRandom: () => i / 4 }));
  });
  afterAll(async () => {
    watcher?.stop();
    for (const a of agents) await a.stop();
    bed?.destroy();
  });

  it("write once each at start, nothing while quiet, and spread a join's count updates instead of writing together", async () => {
    const routed = (o: KubernetesObject) => (o as { status?: { agent?: { routesInstalled?: number } } }).status?.agent?.routesInstalled;
    await waitFor("every agent reported 3 routes", async () => ([...owners.keys()].every((n) => routed(watcher.cache.get(n)!) === 3) ? true : undefined), 30_000);
    await new Promise((r) => setTimeout(r, 3_000)); // a count-only update still due would land here
    const atStart = new Map([...owners.keys()].map((n) => [n, writes.filter((w) => w.name === n).length]));
    // Quiet: 4 resyncs of every agent, no write.
    writes.length = 0;
    await new Promise((r) => setTimeout(r, 4_000));
    expect(writes).toEqual([]);
    // A fifth node's record (no agent of its own): each agent's route count changes, nothing else does.
    const joinedAt = performance.now();
    await putNodeCidr(fx.api(), "sw-peer", "10.244.69.0/24", [bed.nodes[0]!.ip.replace(/\.\d+$/, ".99")]);
    await waitFor("every agent reported 4 routes", async () => ([...owners.keys()].every((n) => routed(watcher.cache.get(n)!) === 4) ? true : undefined), 30_000);
    expect(writes.map((w) => w.name).sort()).toEqual([...owners.keys()].sort()); // one write each
    // Agent i writes no sooner than i/4 of the 2 s interval after the join: spread, where all had written at once.
    const delays = bed.nodes.map((n) => writes.find((w) => owners.get(w.name) === n.name)!.at - joinedAt);
    delays.forEach((ms, i) => expect(ms).toBeGreaterThanOrEqual(i * 500));
    expect(atStart).toEqual(new Map([...owners.keys()].map((n) => [n, 1])));
  });
});
