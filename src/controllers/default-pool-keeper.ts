import type { KubernetesObject } from "@kubernetes/client-node";
import type { ControllerConfig } from "../config.js";
import { RetryGate } from "../lib/backoff.js";
import type { EventRecorder } from "../lib/events.js";
import type { Informer } from "../lib/informer.js";
import { apiMessage, apiStatus, isAlreadyExists, isConflict, logLevelFor, mergePatch, podnetResource, retryAfterMs, type KubeApi } from "../lib/k8s.js";
import type { Logger } from "../log.js";
import type { ControllerMetrics } from "./metrics.js";
import { CONFIGURED_CIDRS_ANNOTATION, planDefaultPool, planNewDefaultPool, type RangeInUse } from "./default-pool.js";
import { configuredPool, defaultPool, type PoolObject } from "./observe.js";

type Obj<T> = T & KubernetesObject;
const podcidrpools = podnetResource("podcidrpools");

export interface DefaultPoolContext {
  api: KubeApi;
  pools: Informer<Obj<PoolObject>>;
  config: ControllerConfig;
  log: Logger;
  recorder: EventRecorder;
  metrics: ControllerMetrics;
  /** Leading and holding the lease: a replica that lost it says and writes nothing. */
  mayWrite: () => boolean;
}

/**
 * Thin shell over default-pool.ts: the default pool exists and follows the controller's flags. A failure is
 * logged and retried with backoff, never thrown: nodes of every pool that exists are still allocated meanwhile.
 */
export class DefaultPoolKeeper {
  /** Its own gate: plans prune the actions' gate to the actions they hold. */
  private readonly retry = new RetryGate();
  private aligned = false;
  /** The clash last reported when no default pool could be created, so each pass does not say it again. */
  private reportedClash?: string;

  constructor(private readonly ctx: DefaultPoolContext) {}

  private get name(): string { return this.ctx.config["default-pool"]; }
  nextRetryAt(): number | undefined { return this.retry.nextRetryAt(); }

  async ensure(): Promise<void> {
    const { name } = this;
    if (this.retry.waiting(name)) return;
    try {
      const existing = this.ctx.pools.cache.get(name);
      if (existing) {
        if (!this.aligned) this.aligned = await this.align(existing);
      } else {
        await this.create();
      }
      this.retry.succeeded(name);
    } catch (err) {
      this.retry.failed(name, performance.now(), retryAfterMs(err));
      this.ctx.metrics.errors.inc({ action: "defaultPool" });
      this.ctx.log[logLevelFor(err)]({ pool: name, err: apiMessage(err), retryInMs: Math.round(this.retry.nextRetryAt()! - performance.now()) }, "default pool not created or updated; retrying");
    }
  }

  /** Ranges the default pool must not take: other pools' (and, when growing it, the service CIDRs). */
  private otherPoolsRanges(): RangeInUse[] {
    return [...this.ctx.pools.cache.values()].filter((p) => p.metadata?.name !== this.name)
      .flatMap((p) => [...(p.spec?.ipv4?.cidrs ?? []), ...(p.spec?.ipv6?.cidrs ?? [])].map((cidr) => ({ cidr, by: `pool ${p.metadata?.name}`, pool: p.metadata?.name })));
  }

  /**
   * Created without the configured ranges another pool holds (a pool applied from Git before the controller
   * came up): created over them, both pools' ranges would be refused and no Node of either served. Not created
   * while a whole family is held; each pass looks again, so it comes once the other pool goes.
   */
  private async create(): Promise<void> {
    const { ctx, name } = this;
    if (!ctx.mayWrite()) return;
    const plan = planNewDefaultPool(name, configuredPool(ctx.config), this.otherPoolsRanges());
    if (!plan.spec) {
      const clash = `no ${plan.lostFamilies.join(" or ")} range is left for it, so none of its ranges is used until ${plan.clashingPools.join(", ")} gives it up (`
        + `${plan.notes.map((n) => n.message).join("; ")})`;
      if (clash === this.reportedClash) return;
      this.reportedClash = clash;
      ctx.log.error({ pool: name }, `default pool not created: ${clash}`);
      for (const pool of plan.clashingPools) {
        const uid = ctx.pools.cache.get(pool)?.metadata?.uid;
        await ctx.recorder.emit({ kind: "PodCIDRPool", name: pool, uid }, "Warning", "DefaultPoolNotCreated", `default pool ${name} not created: ${clash}`);
      }
      return;
    }
    try {
      const body = defaultPool(ctx.config, plan.spec);
      const created = (await ctx.api.custom.createClusterCustomObject({ ...podcidrpools, body, fieldManager: ctx.api.fieldManager })) as Obj<PoolObject>;
      ctx.pools.assume(created);
      this.aligned = true;
      this.reportedClash = undefined;
      ctx.log.info({ pool: name, cidrs: [...(plan.spec.ipv4?.cidrs ?? []), ...(plan.spec.ipv6?.cidrs ?? [])] }, "default pool created from configuration");
      for (const note of plan.notes) {
        ctx.log.warn({ pool: name, reason: note.reason }, note.message);
        await ctx.recorder.emit({ kind: "PodCIDRPool", name, uid: created.metadata?.uid }, "Warning", note.reason, note.message);
      }
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }

  /**
   * Once per process: an existing default pool grows by the ranges its configuration gained since (a `helm
   * upgrade` with a range added to the values); what cannot be applied is logged and put on the pool as a
   * Warning Event (default-pool.ts). False when the write lost a race with another edit: the next pass retries.
   * Throws what may pass (5xx, 429, no answer): the caller retries with backoff.
   */
  private async align(pool: Obj<PoolObject>): Promise<boolean> {
    const name = pool.metadata!.name!;
    const previously = pool.metadata?.annotations?.[CONFIGURED_CIDRS_ANNOTATION];
    const inUse: RangeInUse[] = [...this.otherPoolsRanges(), ...this.ctx.config["service-cidr"].map((cidr) => ({ cidr, by: "the service CIDR" }))];
    const plan = planDefaultPool(name, configuredPool(this.ctx.config), pool.spec, previously, inUse);
    const target = { kind: "PodCIDRPool" as const, name, uid: pool.metadata?.uid };
    if (!this.ctx.mayWrite()) return false; // a replica that lost the lease says and writes nothing
    for (const note of plan.notes) {
      this.ctx.log.warn({ pool: name, reason: note.reason }, note.message);
      await this.ctx.recorder.emit(target, "Warning", note.reason, note.message);
    }
    if (!plan.spec && (plan.configuredCidrs === undefined || previously === plan.configuredCidrs)) return true;
    if (!this.ctx.mayWrite()) return false;
    // resourceVersion makes the patch conditional: an edit made in between (kubectl adding a range) is not lost.
    const annotations = plan.configuredCidrs === undefined ? {} : { annotations: { [CONFIGURED_CIDRS_ANNOTATION]: plan.configuredCidrs } };
    const body = { metadata: { resourceVersion: pool.metadata?.resourceVersion, ...annotations }, ...(plan.spec ? { spec: plan.spec } : {}) };
    this.ctx.metrics.apiWrites.inc({ action: "alignDefaultPool" });
    try {
      const updated = await this.ctx.api.custom.patchClusterCustomObject({ ...podcidrpools, name, body, fieldManager: this.ctx.api.fieldManager }, mergePatch());
      this.ctx.pools.assume(updated as Obj<PoolObject>);
    } catch (err) {
      if (isConflict(err)) return false;
      const status = apiStatus(err);
      if (status === undefined || status >= 500 || status === 429) throw err; // may pass: retried with backoff
      const message = `pool ${name} was not updated to --cluster-cidr ${this.ctx.config["cluster-cidr"].join(",")}: ${apiMessage(err)}`;
      this.ctx.log.error({ pool: name }, message);
      await this.ctx.recorder.emit(target, "Warning", "ConfigurationNotApplied", message);
      return true;
    }
    if (plan.added.length) {
      const message = `pool ${name} grew by ${plan.added.join(", ")} from --cluster-cidr`;
      this.ctx.log.info({ pool: name, added: plan.added }, message);
      await this.ctx.recorder.emit(target, "Normal", "RangesAdded", message);
    }
    return true;
  }
}
