import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { registerProcessMetrics } from "../lib/process-metrics.js";

/** The controller's Prometheus metrics, on a registry of its own (tests run several controllers at once). */
export function controllerMetrics() {
  const registry = new Registry();
  registerProcessMetrics(registry, "podnet_controller_");
  const labels = ["pool", "family"] as const;
  return {
    registry,
    poolSize: new Gauge({ name: "podnet_pool_size", help: "Node CIDRs in the pool's valid ranges", labelNames: labels, registers: [registry] }),
    poolAllocated: new Gauge({ name: "podnet_pool_allocated", help: "Node CIDRs held (allocated, released in cooldown or quarantined)", labelNames: labels, registers: [registry] }),
    poolFree: new Gauge({ name: "podnet_pool_free", help: "Node CIDRs free to hand out", labelNames: labels, registers: [registry] }),
    allocations: new Counter({ name: "podnet_allocations_total", help: "NodeCIDRs created (adopted or allocated)", labelNames: ["pool", "family", "adopted"], registers: [registry] }),
    releases: new Counter({ name: "podnet_releases_total", help: "NodeCIDRs released after their Node went away", registers: [registry] }),
    deletions: new Counter({ name: "podnet_nodecidr_deletions_total", help: "NodeCIDRs deleted after the release cooldown", registers: [registry] }),
    retained: new Gauge({ name: "podnet_nodecidrs_retained", help: "Allocated NodeCIDRs kept although no valid pool range covers them (pool deleted or made invalid)", registers: [registry] }),
    quarantined: new Counter({ name: "podnet_quarantined_total", help: "NodeCIDRs quarantined as bad records", registers: [registry] }),
    exhausted: new Counter({ name: "podnet_exhausted_total", help: "Allocation attempts that found the pool exhausted", labelNames: ["pool", "family"], registers: [registry] }),
    // Kept for dashboards that read it; podnet_nodes_in_conflict is the one to alert on.
    conflicts: new Counter({ name: "podnet_conflicts_total", help: "Conflict findings summed over plans: a lasting conflict counts again in every plan, so this grows with the plan rate (deprecated: see podnet_nodes_in_conflict)", registers: [registry] }),
    nodesInConflict: new Gauge({
      name: "podnet_nodes_in_conflict", labelNames: ["reason"], registers: [registry],
      help: "Nodes the leader's last plan found in conflict, by reason (0 for each reason without); PodCIDRConflict, PodCIDROutsidePool, PodCIDRInvalid and NoPodCIDRPool leave a Node without a pod CIDR",
    }),
    errors: new Counter({ name: "podnet_controller_errors_total", help: "API calls that failed, by action: writes, and list-watch for the caches' lists and watches", labelNames: ["action"], registers: [registry] }),
    apiWrites: new Counter({ name: "podnet_controller_api_writes_total", help: "API writes issued", labelNames: ["action"], registers: [registry] }),
    allocationLatency: new Histogram({
      name: "podnet_allocation_latency_seconds", registers: [registry],
      help: "From when this controller process first saw the Node (a Node created while it was down: from its start) to the Node's NodeCIDR marked Allocated, on the process's monotonic clock",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
    }),
    planDuration: new Histogram({ name: "podnet_plan_duration_seconds", help: "Time to compute one allocation plan", buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1], registers: [registry] }),
    crdFieldsDropped: new Gauge({ name: "podnet_crd_fields_dropped", help: "1 while the API server's NodeCIDR CRD drops a spec field the leader writes (its CRD is older than the controller: apply the chart's crds/)", labelNames: ["field"], registers: [registry] }),
    isLeader: new Gauge({ name: "podnet_controller_is_leader", help: "1 when this replica holds the lease", registers: [registry] }),
  };
}
export type ControllerMetrics = ReturnType<typeof controllerMetrics>;
