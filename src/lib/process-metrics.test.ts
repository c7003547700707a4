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
    expect(series.some((l) => l.startsWith("podnet_agent_nodejs_eventloop_lag_p99_seconds "))).toBe(true);
    expect(series.filter((l) => /heap_space|gc_duration|active_/.test(l))).toEqual([]);
  });

  it("lets two registries in one process (tests run several controllers) each keep their own", async () => {
    const a = new Registry(), b = new Registry();
    registerProcessMetrics(a, "podnet_controller_");
    registerProcessMetrics(b, "podnet_controller_");
    expect(seriesOf(await b.metrics()).length).toBe(seriesOf(await a.metrics()).length);
  });
});
