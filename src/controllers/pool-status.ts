import type { KubernetesObject } from "@kubernetes/client-node";
import type { RetryGate } from "../lib/backoff.js";
import { conditionsEqual, nextCondition } from "../lib/conditions.js";
import type { EventRecorder } from "../lib/events.js";
import type { Informer } from "../lib/informer.js";
import { apiMessage, applyStatus, logLevelFor, retryAfterMs, type KubeApi } from "../lib/k8s.js";
import type { Logger } from "../log.js";
import type { PoolStatusReport } from "./plan.js";
import type { ControllerMetrics } from "./metrics.js";
import type { PoolObject } from "./observe.js";
import type { Condition } from "../crds/common.js";

interface PoolStatusContext {
  api: KubeApi;
  pools: Informer<PoolObject & KubernetesObject>;
  metrics: ControllerMetrics;
  log: Logger;
  recorder: EventRecorder;
  /** A replica that lost the lease mid-plan neither writes the pools nor reports their figures. */
  leading: () => boolean;
  /** A status write the API server refused waits its turn, as a refused action does, instead of going out on every plan. */
  retry: RetryGate;
}

const retryKey = (pool: string) => `poolStatus:${pool}`;

interface FamilyUsage { size: string; allocated: number; free: string }
interface WrittenPoolStatus { observedGeneration?: number; ipv4?: FamilyUsage; ipv6?: FamilyUsage; conditions?: Condition[] }

// Field by field: the status read back from the API server has its keys in another order than ours.
const sameUsage = (a: FamilyUsage | undefined, b: FamilyUsage | undefined) =>
  a === b || (a !== undefined && b !== undefined && a.size === b.size && a.allocated === b.allocated && a.free === b.free);

/** Mirror each pool's usage into metrics and, when it changed, into the pool's status. */
export async function writePoolStatuses(ctx: PoolStatusContext, reports: PoolStatusReport[]): Promise<void> {
  await forgetGonePools(ctx.metrics, reports);
  ctx.retry.keepOnly(reports.map((r) => retryKey(r.pool)));
  for (const report of reports) {
    if (!ctx.leading()) return;
    const pool = ctx.pools.cache.get(report.pool);
    if (!pool) continue;
    const generation = pool.metadata?.generation;
    const current = pool.status as WrittenPoolStatus | undefined;
    const usage: Pick<WrittenPoolStatus, "ipv4" | "ipv6"> = {};
    for (const [family, key] of [[4, "ipv4"], [6, "ipv6"]] as const) {
      const u = report.usage[family];
      if (!u) continue;
      // A wide record blocking 2^64 slices must not make the status write fail (the field is an int64).
      const allocated = u.allocated > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(u.allocated);
      usage[key] = { size: String(u.size), allocated, free: String(u.free) };
      const labels = { pool: report.pool, family: `IPv${family}` };
      ctx.metrics.poolSize.set(labels, Number(u.size));
      ctx.metrics.poolAllocated.set(labels, Number(u.allocated));
      ctx.metrics.poolFree.set(labels, Number(u.free));
    }
    const conditions = report.conditions.map((c) => nextCondition(current?.conditions, c, generation, new Date()));
    const unchanged = current?.observedGeneration === generation && conditionsEqual(current?.conditions, conditions)
      && sameUsage(current?.ipv4, usage.ipv4) && sameUsage(current?.ipv6, usage.ipv6);
    const key = retryKey(report.pool);
    if (unchanged) { ctx.retry.succeeded(key); continue; }
    if (ctx.retry.waiting(key)) continue;
    try {
      ctx.metrics.apiWrites.inc({ action: "poolStatus" });
      const updated = await applyStatus(ctx.api, "podcidrpools", report.pool, "PodCIDRPool", { observedGeneration: generation, ...usage, conditions });
      ctx.pools.assume(updated as PoolObject & KubernetesObject);
      ctx.retry.succeeded(key);
      for (const c of conditions.filter((c) => c.status === "True" ? c.type === "Exhausted" : c.type === "Valid")) {
        ctx.log.warn({ pool: report.pool, condition: c.type, reason: c.reason }, c.message);
      }
      // A Warning when Valid turns False (or False for another reason), as the agents do for their conditions: once
      // on the change, not on every status write. Not for Ready, which only gathers it; Exhaustion warns on each
      // waiting Node. Lost if its create fails, as a quarantine's is: the condition stays.
      const valid = conditions.find((c) => c.type === "Valid");
      const before = current?.conditions?.find((c) => c.type === "Valid");
      if (valid?.status === "False" && (before?.status !== "False" || before.reason !== valid.reason) && ctx.leading()) {
        await ctx.recorder.emit({ kind: "PodCIDRPool", name: report.pool, uid: pool.metadata?.uid }, "Warning", valid.reason, valid.message);
      }
    } catch (err) {
      ctx.retry.failed(key, performance.now(), retryAfterMs(err));
      ctx.metrics.errors.inc({ action: "poolStatus" });
      ctx.log[logLevelFor(err)]({ pool: report.pool, err: apiMessage(err) }, "could not write pool status; will retry with backoff");
    }
  }
}

/**
 * A deleted pool (or a family a pool no longer has) leaves no report: its last figures would stay exported,
 * and an alert on a nearly full pool would fire on for a pool that no longer exists.
 */
async function forgetGonePools(metrics: PoolStatusContext["metrics"], reports: PoolStatusReport[]): Promise<void> {
  const live = new Set(reports.flatMap((r) => ([4, 6] as const).filter((f) => r.usage[f]).map((f) => `${r.pool}/IPv${f}`)));
  for (const gauge of [metrics.poolSize, metrics.poolAllocated, metrics.poolFree]) {
    for (const { labels } of (await gauge.get()).values) {
      if (!live.has(`${labels.pool}/${labels.family}`)) gauge.remove(labels);
    }
  }
  // Counters too, once their pool is gone: pools made and deleted over months would each leave series for good.
  const pools = new Set(reports.map((r) => r.pool));
  for (const counter of [metrics.allocations, metrics.exhausted]) {
    for (const { labels } of (await counter.get()).values) {
      if (!pools.has(String(labels.pool))) counter.remove(labels);
    }
  }
}
