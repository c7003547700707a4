import type { Server } from "node:http";
import type { KubernetesObject, V1Node } from "@kubernetes/client-node";
import type { ControllerConfig } from "../config.js";
import { Backoff, RetryGate, sleep, waitAtLeast } from "../lib/backoff.js";
import { EventRecorder } from "../lib/events.js";
import { FirstSeen } from "../lib/first-seen.js";
import { startHealthServer } from "../lib/health.js";
import { Informer, type ListPage } from "../lib/informer.js";
import { apiMessage, logLevelFor, podnetResource, retryAfterMs, type KubeApi } from "../lib/k8s.js";
import { LeaderElector, replicaIdentity } from "../lib/leader.js";
import type { Logger } from "../log.js";
import { applyActions } from "./act.js";
import { planAllocations, type DeletedRecord } from "./plan.js";
import { controllerMetrics } from "./metrics.js";
import { nextPassInMs } from "./next-pass.js";
import { nodesInConflict } from "./node-conflicts.js";
import { DefaultPoolKeeper } from "./default-pool-keeper.js";
import { nodeProjection, plannerNode, plannerPool, plannerRecord, releaseState, type NodeCidrObject, type PoolObject } from "./observe.js";
import { writePoolStatuses } from "./pool-status.js";
import { LATER_SPEC_FIELDS, SchemaDrops, type LaterSpecField } from "./schema-drops.js";

type Obj<T> = T & KubernetesObject;

/**
 * Level-based allocation loop: any change marks the state dirty; one plan at a time runs over the whole
 * observed state (never before all caches synced, never as a follower) and its actions are applied.
 */
export class AllocationController {
  readonly metrics = controllerMetrics();
  readonly nodes: Informer<V1Node>;
  readonly records: Informer<Obj<NodeCidrObject>>;
  readonly pools: Informer<Obj<PoolObject>>;
  readonly elector?: LeaderElector;
  private readonly recorder: EventRecorder;
  /** Creates the default pool from the flags, and grows it with them. */
  private readonly defaultPool: DefaultPoolKeeper;
  private leading = false;
  private dirty = false;
  private looping?: Promise<void>;
  private stopRequested!: () => void;
  private readonly stopping = new Promise<void>((resolve) => (this.stopRequested = resolve));
  /** Ends a backoff sleep at stop(): its timer (up to a minute) must not keep an embedding process alive. */
  private readonly stopSignal = new AbortController();
  private catchUpBeforePlan = false;
  /**
   * Counts starts and ends of leading. A pass writes only in the term it planned in: after a lapse and a renewal
   * (a frozen process) the lease is this replica's again, but a plan from before is not to be acted on.
   */
  private term = 0;
  private running = false;
  private wake?: () => void;
  private server?: Server;
  /** Per action: what failed waits (1 s doubling to 60 s) instead of being resent on every plan. */
  private readonly retry = new RetryGate();
  private readonly schemaDrops = new SchemaDrops();
  /** Per pool: a refused status write waits the same way. */
  private readonly poolStatusRetry = new RetryGate();
  /** Allocated records seen deleted (not by this controller: it deletes Released ones), by name, through one cooldown. */
  private readonly deleted = new Map<string, DeletedRecord>();
  /**
   * When this replica first saw each release, on its monotonic clock: a cooldown runs from there. Every replica
   * keeps it, so a successor counts from when it saw the release as a follower; one started after the release
   * counts from its start (a cooldown ends at most two cooldowns after the release, never before one).
   */
  private readonly releasesSeen = new FirstSeen();
  /** When this process first saw each Node object (by uid): where podnet_allocation_latency_seconds starts. */
  private readonly nodesSeen = new FirstSeen();
  /** A pass that threw (not one write: the whole pass) waits this before the next. */
  private readonly passBackoff = new Backoff(1_000, 60_000);
  plans = 0;

  constructor(private readonly api: KubeApi, private readonly config: ControllerConfig, private readonly log: Logger) {
    const onEvent = () => this.markDirty();
    const onNodeEvent = (event: string, node: V1Node) => {
      if (event === "delete") this.nodesSeen.forget(node.metadata!.name!);
      else this.nodesSeen.note(node.metadata!.name!, node.metadata?.uid ?? "");
      this.markDirty();
    };
    const onError = () => this.metrics.errors.inc({ action: "list-watch" });
    const onRecordEvent = (event: string, obj: Obj<NodeCidrObject>) => {
      if (event === "delete") {
        this.releasesSeen.forget(obj.metadata!.name!);
        this.noteDeletion(obj);
      } else this.releasesSeen.note(obj.metadata!.name!, releaseState(obj));
      this.markDirty();
    };
    this.nodes = new Informer<V1Node>({ api, path: "/api/v1/nodes", log, onEvent: onNodeEvent, onError, project: nodeProjection,
      list: (t) => api.core.listNode({ limit: 500, _continue: t }) as Promise<ListPage<V1Node>> });
    this.records = new Informer({ api, path: "/apis/podnet.io/v1alpha1/nodecidrs", log, onEvent: onRecordEvent, onError,
      list: (t) => api.custom.listClusterCustomObject({ ...podnetResource("nodecidrs"), limit: 500, _continue: t }) as Promise<ListPage<Obj<NodeCidrObject>>> });
    this.pools = new Informer({ api, path: "/apis/podnet.io/v1alpha1/podcidrpools", log, onEvent, onError,
      list: (t) => api.custom.listClusterCustomObject({ ...podnetResource("podcidrpools"), limit: 500, _continue: t }) as Promise<ListPage<Obj<PoolObject>>> });
    // Events name the replica as the lease does, so kubectl's FROM tells two replicas apart.
    const identity = replicaIdentity();
    this.recorder = new EventRecorder(api, "podnet-controller", log, { instance: identity });
    this.defaultPool = new DefaultPoolKeeper({ api, pools: this.pools, config, log, recorder: this.recorder, metrics: this.metrics, mayWrite: () => this.mayWrite() });
    if (config["leader-elect"]) {
      this.elector = new LeaderElector({
        api, namespace: config["lease-namespace"], name: config["lease-name"], log, identity,
        leaseDurationMs: config["lease-duration"], renewDeadlineMs: config["renew-deadline"], retryPeriodMs: config["retry-period"],
        onStartedLeading: () => this.setLeading(true), onStoppedLeading: () => this.setLeading(false),
      });
    }
  }

  get isLeader(): boolean { return this.leading; }
  get synced(): boolean { return this.nodes.isSynced && this.records.isSynced && this.pools.isSynced; }
  get metricsPort(): number | undefined { const a = this.server?.address(); return typeof a === "object" && a ? a.port : undefined; }

  async start(): Promise<void> {
    this.running = true;
    this.server = await startHealthServer(this.config["metrics-address"], this.metrics.registry, {
      healthy: () => this.running, ready: () => this.synced,
    });
    for (const informer of [this.nodes, this.records, this.pools]) informer.start();
    if (this.elector) void this.elector.run();
    else this.setLeading(true);
    this.looping = this.loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopRequested();
    this.stopSignal.abort();
    this.wake?.();
    // The lease goes only after the last writes: a successor must not plan while this replica still acts.
    await this.looping;
    await this.elector?.stop();
    for (const informer of [this.nodes, this.records, this.pools]) informer.stop();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private setLeading(value: boolean): void {
    this.term++;
    // A successor's watches may lag its predecessor's last writes: planning on them would allocate again. So
    // may a leader's whose lease lapsed (the process frozen) before it took it back: another may have led meanwhile.
    if (value && this.elector) this.catchUpBeforePlan = true;
    this.leading = value;
    this.metrics.isLeader.set(value ? 1 : 0);
    if (value) {
      this.markDirty();
      // What this process learnt of the CRD as leader before: through a pause it writes none of the field, so no
      // answer would set the gauge again, and the alert cleared while the CRD was still old.
      this.reportDroppedFields();
    }
    // Only the leader describes the pools and the Nodes in conflict: a follower's last figures would go stale and
    // split alerts and dashboards between two answers.
    else for (const gauge of [this.metrics.poolSize, this.metrics.poolAllocated, this.metrics.poolFree, this.metrics.retained, this.metrics.nodesInConflict, this.metrics.crdFieldsDropped]) gauge.reset();
  }

  /**
   * A record deleted while Allocated: its node's pods and other nodes' routes still use the CIDR. Every
   * replica keeps it, so a leader that takes over honours the cooldown too.
   */
  private noteDeletion(obj: Obj<NodeCidrObject>): void {
    if (obj.status?.phase !== "Allocated" || !obj.metadata?.name) return;
    const record = plannerRecord(obj);
    this.pruneDeleted(); // a follower never plans, so it prunes here
    this.deleted.set(record.name, { record, deletedAt: performance.now() });
    this.log.warn({ nodecidr: record.name, node: record.nodeName, cidr: record.cidr }, "allocated NodeCIDR deleted by someone else; its CIDR goes back to its node, or waits out the cooldown");
  }

  private pruneDeleted(): void {
    for (const [name, d] of this.deleted) if (d.deletedAt + this.config["release-cooldown"] <= performance.now()) this.deleted.delete(name);
  }

  /**
   * The releases in the cache noted: also those this replica wrote itself (its own writes reach the cache without
   * an event), right after it wrote them. Names no longer cached are forgotten.
   */
  private noteReleases(): void {
    for (const [name, record] of this.records.cache) this.releasesSeen.note(name, releaseState(record));
    this.releasesSeen.keepOnly(new Set(this.records.cache.keys()));
  }

  private releaseSeenAt(record: NodeCidrObject): number | undefined {
    const state = releaseState(record);
    return state === undefined ? undefined : this.releasesSeen.at(record.metadata!.name!, state);
  }

  /**
   * Checked before each write: leading (in the pass's term, when given), and (with an elector) the lease renewed
   * within the renew deadline by the clock now.
   */
  private mayWrite(term?: number): boolean {
    // Not after stop(): the writes in flight finish, the rest of the pass is left to the successor, and the
    // lease is released within the pod's grace period.
    return this.running && this.leading && (term === undefined || term === this.term) && (this.elector?.holdsLease() ?? true);
  }

  private markDirty(): void {
    this.dirty = true;
    this.wake?.();
  }

  private async loop(): Promise<void> {
    await Promise.race([Promise.all([this.nodes.synced, this.records.synced, this.pools.synced]), this.stopping]);
    while (this.running) {
      if (this.dirty && this.leading) {
        this.dirty = false;
        let nextWakeMs: number;
        // Taken before the catch-up: a term begun during it orders another, and this pass writes nothing.
        const term = this.term;
        try {
          if (this.catchUpBeforePlan) {
            this.catchUpBeforePlan = false;
            await Promise.all([this.nodes, this.records, this.pools].map((informer) => informer.catchUp()))
              .catch((err: unknown) => { this.catchUpBeforePlan = true; throw err; });
          }
          nextWakeMs = await this.reconcile(term);
          this.passBackoff.reset();
        } catch (err) {
          const waitMs = waitAtLeast(this.passBackoff.next(), retryAfterMs(err), 60_000);
          this.log[logLevelFor(err)]({ err: apiMessage(err), retryInMs: waitMs }, "reconcile failed; retrying");
          this.dirty = true;
          // Not cut short by watch events: on a busy cluster they would make this a hot loop.
          await sleep(waitMs, this.stopSignal.signal);
          continue;
        }
        await this.idle(nextWakeMs);
      } else {
        await this.idle(this.config["resync-period"]);
        this.dirty = true; // periodic full resync repairs anything a lost event left behind
      }
    }
  }

  /** Sleep until something changes or `ms` passes; coalesces bursts of watch events into one plan. */
  private async idle(ms: number): Promise<void> {
    // stop() may have come while a pass ran (no wake to call then): never start a wait after it.
    if (!this.running) return;
    if (this.dirty && this.leading) { await sleep(5); return; }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { this.dirty = true; resolve(); }, ms);
      this.wake = () => { clearTimeout(timer); resolve(); };
    });
    this.wake = undefined;
    await sleep(5);
  }

  private reportDroppedFields(): void {
    for (const field of LATER_SPEC_FIELDS) this.metrics.crdFieldsDropped.set({ field: `spec.${field}` }, this.schemaDrops.isMissing(field) ? 1 : 0);
  }

  /** The served NodeCIDR CRD pruned fields this controller wrote: said once per pause, as an error, with the remedy. */
  private laterFieldsAnswered(answer: { kept: LaterSpecField[]; dropped: LaterSpecField[] }, record: string): void {
    const fresh = this.schemaDrops.observe(answer);
    this.reportDroppedFields();
    if (!fresh.length) return;
    this.metrics.errors.inc({ action: "crdOutdated" });
    this.log.error({ nodecidr: record, fields: fresh.map((f) => `spec.${f}`) }, `the API server's NodeCIDR CRD dropped ${fresh.map((f) => `spec.${f}`).join(", ")} `
      + "from a write: it is older than this controller (helm upgrade leaves crds/ as they were). Apply the chart's CRDs: "
      + "kubectl apply --server-side --force-conflicts -f charts/podnet/crds/. Writes of those fields wait 10 minutes, then one is tried again");
  }

  /** One plan + act pass. Returns when the next pass is due even without events (cooldown expiry). */
  private async reconcile(term: number): Promise<number> {
    await this.defaultPool.ensure();
    const started = performance.now();
    this.pruneDeleted();
    this.noteReleases();
    const records = [...this.records.cache.values()];
    const plan = planAllocations({
      nodes: [...this.nodes.cache.values()].map(plannerNode),
      records: records.map((r) => plannerRecord(r, this.releaseSeenAt(r))),
      pools: [...this.pools.cache.values()].map(plannerPool),
      deleted: [...this.deleted.values()],
      config: { cooldownMs: this.config["release-cooldown"], serviceCIDRs: this.config["service-cidr"], fillNodePodCIDRs: this.config["fill-node-podcidrs"] },
      now: Date.now(),
      monotonicNow: performance.now(),
    });
    this.metrics.planDuration.observe((performance.now() - started) / 1000);
    // Only the leader's figures: a replica that lost the lease during this pass's awaits (the catch-up lists) would
    // set them as a follower, and never plan again to correct them (an alert on their max would never clear).
    if (this.mayWrite(term)) {
      this.metrics.retained.set(plan.retained);
      for (const [reason, count] of Object.entries(nodesInConflict(plan.actions))) this.metrics.nodesInConflict.set({ reason }, count);
    }
    this.plans++;
    const unblocking = await applyActions({ api: this.api, nodes: this.nodes, records: this.records, recorder: this.recorder, metrics: this.metrics, log: this.log,
      planned: new Map(records.map((r) => [r.metadata!.name!, r])), leading: () => this.mayWrite(term), retry: this.retry,
      nodeSeenAt: (node, uid) => this.nodesSeen.at(node, uid), laterFieldWrites: this.schemaDrops.allowance(), laterFieldsAnswered: (answer, record) => this.laterFieldsAnswered(answer, record) }, plan.actions);
    this.noteReleases();
    await writePoolStatuses({ api: this.api, pools: this.pools, metrics: this.metrics, log: this.log, recorder: this.recorder, leading: () => this.mayWrite(term), retry: this.poolStatusRetry }, plan.poolStatuses);
    // A create or delete that went through may unblock more work now. One waiting out its backoff must not
    // (it stays in every plan until it succeeds): its retry time below wakes the loop instead of a hot replan.
    if (unblocking > 0) this.dirty = true;
    // All on the monotonic clock: cooldowns as this replica saw them, retries as it failed them.
    const now = performance.now();
    const dueAt = [plan.nextCheckAt, this.retry.nextRetryAt(), this.poolStatusRetry.nextRetryAt(), this.defaultPool.nextRetryAt()];
    return nextPassInMs(dueAt.map((t) => (t === undefined ? undefined : t - now)), this.config["resync-period"]);
  }
}
