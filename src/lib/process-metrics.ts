import { Registry, collectDefaultMetrics } from "prom-client";

/**
 * The runtime series worth their cost on every node: prom-client's full default set is about 120 series per
 * process (13 heap spaces × 3, a GC histogram per kind, 8 event-loop statistics), which a 5,000-node cluster
 * pays 600,000 times over in its Prometheus. These answer "is it using CPU, memory, fds, is its loop stalling".
 */
// In this order: prom-client sets several series from one metric's collect (the lag statistics from
// nodejs_eventloop_lag_seconds', the heap figures from nodejs_heap_size_total_bytes'), and a scrape reads them in
// registration order. Without their collecting metric first, they read 0 (lag) or one scrape late (heap).
const KEPT = [
  "process_cpu_user_seconds_total", "process_cpu_system_seconds_total", "process_cpu_seconds_total",
  "process_start_time_seconds", "process_resident_memory_bytes", "process_open_fds", "process_max_fds",
  "nodejs_eventloop_lag_seconds", "nodejs_eventloop_lag_p99_seconds", "nodejs_eventloop_lag_max_seconds",
  "nodejs_heap_size_total_bytes", "nodejs_heap_size_used_bytes", "nodejs_external_memory_bytes", "nodejs_version_info",
];

/** Registers the kept runtime series under `prefix` (podnet_agent_, podnet_controller_). */
export function registerProcessMetrics(registry: Registry, prefix: string): void {
  const all = new Registry(); // prom-client offers all or nothing; keep a few of all
  collectDefaultMetrics({ register: all, prefix });
  for (const name of KEPT) {
    const metric = all.getSingleMetric(prefix + name);
    if (metric) registry.registerMetric(metric);
  }
}
