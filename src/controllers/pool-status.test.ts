import { describe, expect, it } from "vitest";
import { silentLogger } from "../log.js";
import { controllerMetrics } from "./metrics.js";
import { writePoolStatuses } from "./pool-status.js";
import type { KubeApi } from "../lib/k8s.js";
import type { Informer } from "../lib/informer.js";
import type { KubernetesObject } from "@kubernetes/client-node";
import type { PoolObject } from "./observe.js";

describe("writePoolStatuses", () => {
  // The lease can pass while a plan's writes are under way; no API server produces that moment on demand.
  it("after the lease is lost: no figures reported, nothing written", async () => {
    const metrics = controllerMetrics();
    const touched: string[] = [];
    const pools = { cache: { get: (name: string) => (touched.push(name), { metadata: { name, generation: 1 } }) } } as unknown as Informer<PoolObject & KubernetesObject>;
    await writePoolStatuses({ api: {} as KubeApi, pools, metrics, log: silentLogger(), leading: () => false }, [
      { pool: "default", usage: { 4: { size: 256n, allocated: 3n, free: 253n } }, conditions: [] },
    ]);
    expect(touched).toEqual([]);
    expect((await metrics.poolSize.get()).values).toEqual([]);
  });
});
