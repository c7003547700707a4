import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { registerProcessMetrics } from "./process-metrics.js";

const seriesOf = (text: string) => text.split("\n").filter((l) => l && !l.startsWith("#"));

describe("runtime series on every node", () => {
  it("exports a dozen readings of this process, not prom-client's ~120 series", async () => {
    const registry = new Registry();
    registerProcessMetrics(registry, "podnet_agent_");
    const series = seriesOf(await registry.metrics());
    expect(series.length).toBeLessThanOrEqual(15);
    const value = (name: string) => Number(series.find((l) => l.startsWith(`podnet_agent_${name} `))?.split(" ")[1]);
    expect(value("process_resident_memory_bytes")).toBeGreaterThan(10e6); // a reading of this process, not a zero
    expect(value("process_open_fds")).toBeGreaterThan(2);
    expect(value("nodejs_heap_size_used_bytes")).toBeGreaterThan(1e6); // on the first scrape, not one late
    expect(series.filter((l) => /heap_space|gc_duration|active_/.test(l))).toEqual([]);
  });

  it("reports a stalled event loop in its lag p99 and max", async () => {
    const registry = new Registry();
    registerProcessMetrics(registry, "podnet_agent_");
    await registry.metrics(); // what the histogram held before
    for (let i = 0; i < 3; i++) {
      const until = performance.now() + 120;
      while (performance.now() < until) { /* a synchronous stall, as a big JSON parse would be */ }
      await new Promise((r) => setTimeout(r, 20));
    }
    const series = seriesOf(await registry.metrics());
    const value = (name: string) => Number(series.find((l) => l.startsWith(`podnet_agent_${name} `))?.split(" ")[1]);
    expect(value("nodejs_eventloop_lag_max_seconds")).toBeGreaterThan(0.1);
    expect(value("nodejs_eventloop_lag_p99_seconds")).toBeGreaterThan(0.1);
  });

  it("lets two registries in one process (tests run several controllers) each keep their own", async () => {
    const a = new Registry(), b = new Registry();
    registerProcessMetrics(a, "podnet_controller_");
    registerProcessMetrics(b, "podnet_controller_");
    expect(seriesOf(await b.metrics()).length).toBe(seriesOf(await a.metrics()).length);
  });
});
