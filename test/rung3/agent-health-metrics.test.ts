import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeApi } from "../../src/lib/k8s.js";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { proxiedKubeconfig, type TcpProxy } from "../harness/tcp-proxy.js";

/**
 * What the agent's /metrics tells about its node, read over HTTP as Prometheus does: its conditions (also on a
 * node with no NodeCIDR to write them on).
 */
const fx = useControlPlane();
let bed: NetBed;
let proxy: TcpProxy | undefined;
const agents: TestAgent[] = [];

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

describe.skipIf(!isRoot())("node agent's conditions on /metrics (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("hm", 2, 58);
    await putNodeCidr(fx.api(), bed.nodes[0]!.name, "10.244.58.0/24", [bed.nodes[0]!.ip]);
    const proxied = await proxiedKubeconfig(fx, "health");
    proxy = proxied.proxy;
    agents.push(await startAgent(fx, bed.nodes[0]!, { "resync-period": "1s" }, { api: KubeApi.fromKubeconfig(proxied.kubeconfig, "podnet-agent") }));
  }, 120_000);
  afterAll(async () => {
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
});
