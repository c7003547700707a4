import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { ConditionInput } from "../lib/conditions.js";
import type { SyncOutcome } from "./report.js";
import { registerProcessMetrics } from "../lib/process-metrics.js";

export function agentMetrics() {
  const registry = new Registry();
  registerProcessMetrics(registry, "podnet_agent_");
  return {
    registry,
    routesDesired: new Gauge({ name: "podnet_agent_routes_desired", help: "Routes to other nodes' pod CIDRs this node should have", registers: [registry] }),
    routesInstalled: new Gauge({ name: "podnet_agent_routes_installed", help: "podnet routes present in the kernel after the last sync", registers: [registry] }),
    routeChanges: new Counter({ name: "podnet_agent_route_changes_total", help: "Routes added, replaced or deleted; early-add: added while the first list was still arriving", labelNames: ["op"], registers: [registry] }),
    syncDuration: new Histogram({ name: "podnet_agent_sync_duration_seconds", help: "One full sync pass", buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5], registers: [registry] }),
    errors: new Counter({ name: "podnet_agent_errors_total", help: "Failed sync steps", labelNames: ["step"], registers: [registry] }),
    vxlanDropped: new Gauge({
      name: "podnet_agent_vxlan_dropped_packets", labelNames: ["chain"], registers: [registry],
      help: "VXLAN datagrams podnet's nft table dropped: arriving from no node or to no address of this node's underlay (chain=vxlan_in), or sent by a pod on this node to a node (chain=vxlan_from_pods); nft's counts, read every resync, reset when podnet rewrites its table",
    }),
    removalsHeld: new Gauge({
      name: "podnet_agent_removals_held", registers: [registry],
      help: "1 while the agent removes nothing it programmed: this node's NodeCIDR is gone without a release (deleted by hand or with its CRD), or came back within the hold-down; a node that never had one holds nothing",
    }),
    rejected: new Gauge({ name: "podnet_agent_rejected_records", help: "NodeCIDRs the agent refuses to route (bad node IP, overlap)", registers: [registry] }),
    conditions: new Gauge({
      name: "podnet_agent_condition", labelNames: ["type", "status", "reason"], registers: [registry],
      help: "The agent's conditions from its last pass, one series per type (value 1) with the status and reason it has now, as on its node's NodeCIDRs; also where the node has none (CNIConfigured NoPodCIDR). None before the first pass",
    }),
  };
}
export type AgentMetrics = ReturnType<typeof agentMetrics>;

/**
 * A pass's conditions into the gauge, replacing the last pass's: one series per condition type, so a reason
 * that changed leaves no series behind (reasons are a closed set: per agent, six series at a time).
 */
export function exportConditions(gauge: AgentMetrics["conditions"], conditions: readonly ConditionInput[]): void {
  gauge.reset();
  for (const c of conditions) gauge.set({ type: c.type, status: c.status, reason: c.reason }, 1);
}

/** One pass's figures: its duration, route counts, rejected records, VXLAN drops, changes made and failed steps. */
export function recordPass(metrics: AgentMetrics, outcome: SyncOutcome, seconds: number, dryRun: boolean): void {
  metrics.syncDuration.observe(seconds);
  metrics.routesDesired.set(outcome.routes.desired);
  metrics.routesInstalled.set(outcome.routes.installed);
  metrics.rejected.set(outcome.rejected.length);
  const drops = outcome.masquerade.vxlanDrops;
  if (drops) { metrics.vxlanDropped.set({ chain: "vxlan_in" }, drops.in); metrics.vxlanDropped.set({ chain: "vxlan_from_pods" }, drops.fromPods); }
  // A dry run's counts are what it would change: nothing changed.
  if (!dryRun) {
    for (const op of ["added", "replaced", "deleted"] as const) if (outcome.routes[op]) metrics.routeChanges.inc({ op }, outcome.routes[op]);
    if (outcome.routes.overlayChanges) metrics.routeChanges.inc({ op: "overlay" }, outcome.routes.overlayChanges);
  }
  const { routes, cni, masquerade, sysctls } = outcome;
  for (const [step, failed] of [["routes", routes.error], ["cni", cni.error], ["masquerade", masquerade.error],
    ["sysctls", sysctls.error ?? sysctls.forwardAcceptError ?? sysctls.bridgeNetfilterError], ["overlay", routes.overlayError]] as const) {
    if (failed) metrics.errors.inc({ step });
  }
}
