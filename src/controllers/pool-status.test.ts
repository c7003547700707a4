import { afterEach, describe, expect, it, vi } from "vitest";
import { RetryGate } from "../lib/backoff.js";
import { silentLogger } from "../log.js";
import { controllerMetrics } from "./metrics.js";
import { writePoolStatuses } from "./pool-status.js";
import type { KubeApi } from "../lib/k8s.js";
import type { Informer } from "../lib/informer.js";
import type { KubernetesObject } from "@kubernetes/client-node";
import type { PoolObject } from "./observe.js";
import type { PoolStatusReport } from "./plan-pools.js";
import type { EventRecorder } from "../lib/events.js";
import type { ConditionInput } from "../lib/conditions.js";

const report = (pool: string, allocated: bigint): PoolStatusReport => ({ pool, usage: { 4: { size: 256n, allocated, free: 256n - allocated } }, conditions: [] });
const noEvents = { emit: () => Promise.resolve("sent") } as unknown as EventRecorder;
const poolCache = (names: string[]) => ({ cache: { get: (name: string) => (names.includes(name) ? { metadata: { name, generation: 1 } } : undefined) }, assume: () => "newer" }) as unknown as Informer<PoolObject & KubernetesObject>;

describe("writePoolStatuses", () => {
  afterEach(() => { vi.useRealTimers(); });

  // The lease can pass while a plan's writes are under way; no API server produces that moment on demand.
  it("after the lease is lost: no figures reported, nothing written", async () => {
    const metrics = controllerMetrics();
    const touched: string[] = [];
    const pools = { cache: { get: (name: string) => (touched.push(name), { metadata: { name, generation: 1 } }) } } as unknown as Informer<PoolObject & KubernetesObject>;
    await writePoolStatuses({ api: {} as KubeApi, pools, metrics, log: silentLogger(), recorder: noEvents, leading: () => false, retry: new RetryGate() }, [report("default", 3n)]);
    expect(touched).toEqual([]);
    expect((await metrics.poolSize.get()).values).toEqual([]);
  });

  it("a pool whose status write is refused waits its backoff (1 s, then 2 s) while the other pools are written on every plan, and figures go on", async () => {
    vi.useFakeTimers({ toFake: ["performance"] }); // retries are timed on the monotonic clock
    let now = 0;
    const moveTo = (at: number) => { vi.advanceTimersByTime(at - now); now = at; };
    const attempts: string[] = [];
    const api = { custom: { patchClusterCustomObjectStatus: (req: { name: string }) => {
      attempts.push(req.name);
      return req.name === "refused" ? Promise.reject(new Error("HTTP-Code: 422 Message: denied by policy")) : Promise.resolve({ metadata: { name: req.name } });
    } }, fieldManager: "podnet-controller" } as unknown as KubeApi;
    const metrics = controllerMetrics();
    const ctx = { api, pools: poolCache(["refused", "fine"]), metrics, log: silentLogger(), recorder: noEvents, leading: () => true, retry: new RetryGate() };
    // A plan every 200 ms, each with a new figure (as nodes join): the cached status never matches it.
    const plan = async (at: number) => { moveTo(at); await writePoolStatuses(ctx, [report("refused", BigInt(at / 100)), report("fine", BigInt(at / 100))]); };
    for (let at = 0; at <= 3_800; at += 200) await plan(at);
    expect(attempts.filter((p) => p === "refused")).toHaveLength(3); // at 0, 1,000 and 3,000 ms: not 20
    expect(attempts.filter((p) => p === "fine")).toHaveLength(20);
    expect((await metrics.poolAllocated.get()).values.find((v) => v.labels.pool === "refused")?.value).toBe(38);
    // Gone from the plan (the pool deleted), it is forgotten: a pool of that name made again is written at once.
    await writePoolStatuses(ctx, [report("fine", 1n)]);
    moveTo(4_000);
    attempts.length = 0;
    await writePoolStatuses(ctx, [report("refused", 1n)]);
    expect(attempts).toEqual(["refused"]);
  });

  it("warns with an Event when Valid turns False or changes its reason, not on every write while it stays so", async () => {
    let status: { conditions?: unknown[] } | undefined;
    const pools = { cache: { get: (name: string) => ({ metadata: { name, uid: "u-1", generation: 1 }, status }) }, assume: () => "newer" } as unknown as Informer<PoolObject & KubernetesObject>;
    const api = { custom: { patchClusterCustomObjectStatus: (req: { name: string; body: { status: typeof status } }) => {
      status = req.body.status;
      return Promise.resolve({ metadata: { name: req.name }, status });
    } }, fieldManager: "podnet-controller" } as unknown as KubeApi;
    const events: string[] = [];
    const recorder = { emit: (target: { name: string; uid: string }, type: string, reason: string) => { events.push(`${target.name}/${target.uid} ${type} ${reason}`); return Promise.resolve("sent"); } } as unknown as EventRecorder;
    const ctx = { api, pools, metrics: controllerMetrics(), log: silentLogger(), recorder, leading: () => true, retry: new RetryGate() };
    const valid = (status: ConditionInput["status"], reason: string): ConditionInput => ({ type: "Valid", status, reason, message: reason });
    const steps: Array<[ConditionInput, bigint, string[]]> = [
      [valid("True", "RangesValid"), 1n, []],
      [valid("False", "InvalidRanges"), 1n, ["p/u-1 Warning InvalidRanges"]],
      [valid("False", "InvalidRanges"), 2n, []], // written again (usage), still False for that reason
      [valid("False", "AnotherCatchAllPool"), 2n, ["p/u-1 Warning AnotherCatchAllPool"]],
      [valid("True", "RangesValid"), 2n, []],
      [valid("False", "AnotherCatchAllPool"), 2n, ["p/u-1 Warning AnotherCatchAllPool"]],
    ];
    for (const [condition, allocated, expected] of steps) {
      events.length = 0;
      await writePoolStatuses(ctx, [{ ...report("p", allocated), conditions: [condition] }]);
      expect(events).toEqual(expected);
    }
  });
});
