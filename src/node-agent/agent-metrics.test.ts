import { describe, expect, it } from "vitest";
import { agentMetrics, exportConditions } from "./agent-metrics.js";
import { agentConditions, type SyncOutcome } from "./report.js";

const healthy = (): SyncOutcome => ({
  routes: { desired: 2, installed: 2, overlay: 0, overlayChanges: 0, added: 0, replaced: 0, deleted: 0, conflicts: [], unreachable: [] },
  cni: { path: "/etc/cni/net.d/10-podnet.conflist", changed: false, shadowedBy: [], missingPlugins: [] },
  masquerade: { enabled: true }, sysctls: {}, rejected: [],
});
const with_ = (change: (o: SyncOutcome) => void) => { const o = healthy(); change(o); return agentConditions(o); };

/** The gauge's series as `type status reason`, sorted. */
async function series(m: ReturnType<typeof agentMetrics>): Promise<string[]> {
  const [metric] = (await m.registry.getMetricsAsJSON()).filter((x) => x.name === "podnet_agent_condition");
  return metric!.values.map((v) => { expect(v.value).toBe(1); return `${v.labels.type} ${v.labels.status} ${v.labels.reason}`; }).sort();
}

describe("podnet_agent_condition: the agent's conditions of its last pass", () => {
  it("has no series before the first pass (no reading of 0 that would look like a failure)", async () => {
    expect(await series(agentMetrics())).toEqual([]);
  });

  it("one series per condition with its status and reason, and a pass that clears a failure leaves none of it behind", async () => {
    const m = agentMetrics();
    exportConditions(m.conditions, with_((o) => o.cni.shadowedBy.push("00-other.conflist")));
    expect(await series(m)).toEqual([
      "CNIConfigShadowed True EarlierConfigPresent", "CNIConfigured False CNIConfigShadowed", "MasqueradeReady True Applied",
      "Ready False CNIConfigShadowed", "RoutesProgrammed True Programmed", "SysctlsReady True Set",
    ]);
    exportConditions(m.conditions, with_(() => {}));
    expect(await series(m)).toEqual([
      "CNIConfigShadowed False NotShadowed", "CNIConfigured True Written", "MasqueradeReady True Applied",
      "Ready True NodeNetworkReady", "RoutesProgrammed True Programmed", "SysctlsReady True Set",
    ]);
  });

  it.each([
    ["plugins missing", with_((o) => o.cni.missingPlugins.push("bridge")), "CNIConfigured False PluginsMissing"],
    ["no pod CIDR for the node yet", with_((o) => (o.cni.skipped = "no Allocated NodeCIDR for this node")), "CNIConfigured False NoPodCIDR"],
  ])("%s: CNIConfigured False with its reason", async (_what, conditions, expected) => {
    const m = agentMetrics();
    exportConditions(m.conditions, conditions);
    expect(await series(m)).toContain(expected);
  });
});
