import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeApi } from "../../src/lib/k8s.js";
import { createNetBed, ipIn, ipJson, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { eventsFor } from "../harness/cluster-objects.js";
import { proxiedKubeconfig, type TcpProxy } from "../harness/tcp-proxy.js";

/**
 * A status write on an API server gone silent (a dead VM behind a load balancer: no reset, no answer) must not
 * hold the kernel passes. It did: the pass awaited the write, which waits out the 60 s silence timeout, so a
 * hand-deleted route stayed away for a minute and more, and a stop waited out every call queued behind it.
 */
const fx = useControlPlane();
let bed: NetBed;
let proxy: TcpProxy | undefined;
let agent: TestAgent | undefined;
let retryProxy: TcpProxy | undefined;
let retryAgent: TestAgent | undefined;
const OWN = "10-244-110-0-24";
const PEER = "10-244-111-0-24";
const PEER_CIDR = "10.244.111.0/24";
const routes = (ns: string) => ipJson<Array<{ dst: string }>>(ns, "route", "show", "proto", "249").map((r) => r.dst);
const cniConfigured = async (name = OWN) => (await conditionsOf(fx.api(), name)).find((c) => c.type === "CNIConfigured");
const networkUnavailable = async (name: string) => (await fx.api().core.readNodeStatus({ name })).status?.conditions?.find((c) => c.type === "NetworkUnavailable");
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Deletes the route to the peer by hand and returns how long the agent took to put it back. */
async function deleteAndTimeRepair(ns: string): Promise<number> {
  ipIn(ns, "route", "del", PEER_CIDR);
  const started = performance.now();
  await waitFor("route back", async () => (routes(ns).includes(PEER_CIDR) ? true : undefined), 20_000, 20);
  return performance.now() - started;
}

describe.skipIf(!isRoot())("node agent with its API server gone silent (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("so", 2, 64);
    const [n1, n2] = bed.nodes;
    await putNodeCidr(fx.api(), n1!.name, "10.244.110.0/24", [n1!.ip]);
    await putNodeCidr(fx.api(), n2!.name, PEER_CIDR, [n2!.ip]);
    await fx.api().core.createNode({ body: { metadata: { name: n1!.name }, status: { conditions: [
      { type: "NetworkUnavailable", status: "True", reason: "NoRouteCreated", message: "set by the cloud's route controller", lastTransitionTime: new Date() },
    ] } } });
    const proxied = await proxiedKubeconfig(fx, "status-outage");
    proxy = proxied.proxy;
    agent = await startAgent(fx, n1!, { "resync-period": "1s" }, { api: KubeApi.fromKubeconfig(proxied.kubeconfig, "podnet-agent") });
  });
  afterAll(async () => {
    proxy?.resume();
    retryProxy?.resume();
    await agent?.stop();
    await retryAgent?.stop();
    await proxy?.close();
    await retryProxy?.close();
    bed?.destroy();
  });

  it("repairs the kernel within a resync or two while a status write hangs, writes the newest status once the API answers, and stops at once", async () => {
    const n1 = bed.nodes[0]!;
    const a = agent!;
    await waitFor("Ready written", async () => ((await conditionsOf(fx.api(), OWN)).some((c) => c.type === "Ready" && c.status === "True") ? true : undefined), 20_000);
    await waitFor("NetworkUnavailable cleared", async () => ((await networkUnavailable(n1.name))?.status === "False" ? true : undefined), 15_000);
    expect(routes(n1.ns)).toContain(PEER_CIDR);

    // The API server goes silent, then a condition flips: its write hangs.
    proxy!.blackhole();
    writeFileSync(join(a.confDir, "00-other.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "other", plugins: [{ type: "bridge" }] }));
    await waitFor("a pass saw the shadowing conflist", async () => ((a.agent.lastOutcome?.cni.shadowedBy.length ?? 0) > 0 ? true : undefined), 10_000);
    await pause(1_500); // the write is on its way (into the silence)

    // Resync 1 s: a hand-deleted route is back within a few resyncs, twice over, while the write still hangs.
    expect(await deleteAndTimeRepair(n1.ns)).toBeLessThan(5_000);
    await pause(2_000);
    expect(await deleteAndTimeRepair(n1.ns)).toBeLessThan(5_000);
    expect(await cniConfigured()).toMatchObject({ status: "True" }); // nothing got through meanwhile

    // The API server answers again: the newest status lands (the hung call ends at its own deadline), and the
    // shadowing is one Warning.
    proxy!.resume();
    const c = await waitFor("CNIConfigured=False written", async () => { const x = await cniConfigured(); return x?.status === "False" ? x : undefined; }, 45_000);
    expect(c.reason).toBe("CNIConfigShadowed");
    await pause(2_000);
    expect((await eventsFor(fx.api(), "NodeCIDR", OWN)).filter((e) => e.reason === "CNIConfigShadowed")).toHaveLength(1);

    // Silent again, and the condition flips back: a stop with that write hanging returns at once.
    proxy!.blackhole();
    rmSync(join(a.confDir, "00-other.conflist"));
    await waitFor("a pass saw the conflist gone", async () => (a.agent.lastOutcome?.cni.shadowedBy.length === 0 ? true : undefined), 10_000);
    await pause(1_500);
    const stopping = performance.now();
    await a.stop();
    agent = undefined;
    expect(performance.now() - stopping).toBeLessThan(3_000);
  }, 120_000);

  it("tries a failed status write again within seconds of the API answering, not at the next resync", async () => {
    // n2's agent, on its own proxy, with the default-ish 30 s resync: nothing but the writer's retry wakes it.
    const retried = await proxiedKubeconfig(fx, "status-retry");
    retryProxy = retried.proxy;
    const a = retryAgent = await startAgent(fx, bed.nodes[1]!, { "resync-period": "30s" }, { api: KubeApi.fromKubeconfig(retried.kubeconfig, "podnet-agent") });
    await waitFor("Ready written", async () => ((await conditionsOf(fx.api(), PEER)).some((c) => c.type === "Ready" && c.status === "True") ? true : undefined), 20_000);

    // The API refuses connections; a condition flips and its write fails (a pass forced: the conf dir wakes nobody).
    retryProxy.pause();
    writeFileSync(join(a.confDir, "00-other.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "other", plugins: [{ type: "bridge" }] }));
    await a.agent.syncNow();
    await pause(3_000); // failed writes, each bringing a fresh pass after 1, 2 … s
    expect(await cniConfigured(PEER)).toMatchObject({ status: "True" });

    // Back: the newest status lands within the backoff (here at most ~4 s), where it waited for the resync (30 s).
    retryProxy.resume();
    const back = performance.now();
    const c = await waitFor("CNIConfigured=False written", async () => { const x = await cniConfigured(PEER); return x?.status === "False" ? x : undefined; }, 10_000, 100);
    expect(c.reason).toBe("CNIConfigShadowed");
    expect(performance.now() - back).toBeLessThan(8_000);
  }, 60_000);
});
