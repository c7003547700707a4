import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeApi } from "../../src/lib/k8s.js";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { putNodeCidr, startAgent, toolShells, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { proxiedKubeconfig, type TcpProxy } from "../harness/tcp-proxy.js";

/**
 * What the agent's /metrics and /healthz tell about its node, read over HTTP as Prometheus and kubelet do:
 * its conditions (also on a node with no NodeCIDR to write them on), and a pass loop that is stuck, not one
 * that merely has no API server.
 */
const fx = useControlPlane();
let bed: NetBed;
let proxy: TcpProxy | undefined;
const agents: TestAgent[] = [];
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

const get = (a: TestAgent, path: string) => fetch(`http://127.0.0.1:${a.agent.metricsPort}${path}`);
/** podnet_agent_condition's series as `type status reason`, sorted. */
async function conditions(a: TestAgent): Promise<string[]> {
  const text = await (await get(a, "/metrics")).text();
  return [...text.matchAll(/^podnet_agent_condition\{type="(\w+)",status="(\w+)",reason="(\w+)"\} 1$/gm)].map((m) => `${m[1]} ${m[2]} ${m[3]}`).sort();
}
const showing = (a: TestAgent, wanted: string[], absent: string[] = []) => async () => {
  const now = await conditions(a);
  return wanted.every((w) => now.includes(w)) && absent.every((x) => !now.includes(x)) ? now : undefined;
};

describe.skipIf(!isRoot())("node agent's /metrics conditions and /healthz (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("hm", 2, 58);
    await putNodeCidr(fx.api(), bed.nodes[0]!.name, "10.244.58.0/24", [bed.nodes[0]!.ip]);
    const proxied = await proxiedKubeconfig(fx, "health");
    proxy = proxied.proxy;
    // A pass counts as stuck after 5 s here (10 minutes by default); resync 1 s.
    agents.push(await startAgent(fx, bed.nodes[0]!, { "resync-period": "1s" }, { api: KubeApi.fromKubeconfig(proxied.kubeconfig, "podnet-agent"), stuckPassMs: 5_000 }));
  }, 120_000);
  afterAll(async () => {
    for (const pid of toolShells()) try { process.kill(pid, "SIGCONT"); } catch { /* gone */ }
    proxy?.resume();
    for (const a of agents) await a.stop();
    await proxy?.close();
    bed?.destroy();
  });

  it("a conflist that shadows podnet's shows as CNIConfigured False (CNIConfigShadowed) and Ready False, and clears when it goes", async () => {
    const a = agents[0]!;
    await waitFor("CNIConfigured True", showing(a, ["CNIConfigured True Written", "Ready True NodeNetworkReady"]), 20_000);
    const shadow = join(a.confDir, "00-other.conflist");
    writeFileSync(shadow, JSON.stringify({ cniVersion: "1.0.0", name: "other", plugins: [{ type: "bridge" }] }));
    const shadowed = await waitFor("shadowed", showing(a, ["CNIConfigured False CNIConfigShadowed"], ["CNIConfigured True Written"]), 10_000);
    expect(shadowed).toEqual(expect.arrayContaining(["Ready False CNIConfigShadowed", "CNIConfigShadowed True EarlierConfigPresent"]));
    expect(shadowed.filter((s) => s.startsWith("CNIConfigured "))).toHaveLength(1);
    rmSync(shadow);
    const cleared = await waitFor("cleared", showing(a, ["CNIConfigured True Written", "Ready True NodeNetworkReady"]), 10_000);
    expect(cleared.filter((s) => s.includes(" False ") && !s.startsWith("CNIConfigShadowed "))).toEqual([]);
  });

  it("a node without a NodeCIDR, which has no record to carry its conditions, says NoPodCIDR in the metric", async () => {
    const bare = await startAgent(fx, bed.nodes[1]!, { "resync-period": "1s" });
    agents.push(bare);
    expect(await waitFor("NoPodCIDR", showing(bare, ["CNIConfigured False NoPodCIDR", "Ready False NoPodCIDR"]), 20_000)).toHaveLength(6);
  });

  it("/healthz stays 200 through an API outage longer than its limit (passes go on from the cache)", async () => {
    const a = agents[0]!;
    expect((await get(a, "/healthz")).status).toBe(200);
    proxy!.blackhole();
    const passesBefore = a.agent.syncs;
    const until = Date.now() + 40_000; // past the idle limit: 3 resyncs + 30 s
    while (Date.now() < until) {
      expect((await get(a, "/healthz")).status).toBe(200);
      await pause(1_000);
    }
    expect(a.agent.syncs - passesBefore).toBeGreaterThan(20);
    proxy!.resume();
  }, 90_000);

  it("/healthz fails while a pass hangs on a tool that does not answer, and recovers once the pass ends", async () => {
    const a = agents[0]!;
    await waitFor("a pass", async () => (a.agent.syncs > 0 ? true : undefined), 20_000);
    expect((await get(a, "/healthz")).status).toBe(200);
    const shells = toolShells();
    expect(shells.length).toBeGreaterThan(0);
    for (const pid of shells) process.kill(pid, "SIGSTOP"); // the next pass's ip call is written to a stopped shell
    let stopped = true;
    try {
      const startedAt = Date.now();
      await waitFor("/healthz 503", async () => ((await get(a, "/healthz")).status === 503 ? true : undefined), 15_000, 200);
      expect(Date.now() - startedAt).toBeGreaterThan(3_500); // not before the pass limit (5 s; a pass may have begun before the stop)
      for (const pid of shells) process.kill(pid, "SIGCONT");
      stopped = false;
      await waitFor("/healthz 200 again", async () => ((await get(a, "/healthz")).status === 200 ? true : undefined), 10_000, 200);
    } finally {
      if (stopped) for (const pid of shells) try { process.kill(pid, "SIGCONT"); } catch { /* gone */ }
    }
  }, 60_000);
});
