import type { Server } from "node:http";
import type { AgentConfig } from "../config.js";
import { sleep } from "../lib/backoff.js";
import { EventRecorder } from "../lib/events.js";
import { startHealthServer } from "../lib/health.js";
import { Informer, type ListPage } from "../lib/informer.js";
import { apiMessage, podnetResource, type KubeApi } from "../lib/k8s.js";
import type { Logger } from "../log.js";
import { AgentRecordHold } from "./agent-hold.js";
import { agentMetrics, exportConditions, recordPass } from "./agent-metrics.js";
import { StatusPacing, type ReadVersions } from "./agent-status.js";
import { desiredNodeState, type DesiredNodeState } from "./desired-state.js";
import { poolFamiliesOf } from "./family-gap.js";
import { FamilyWait } from "./family-wait.js";
import { NetworkUnavailableClearer } from "./node-network-condition.js";
import { isPredecessorRecord, NodeIdentity } from "./node-identity.js";
import { passLeftWorkUndone, sysctlsAfterPass, type SyncOutcome } from "./report.js";
import { LIST_PAGE_SIZE, observed, poolRanges, recordProjection, relistSpreadMs, RoutingInputs, type Pool, type Record_ } from "./records.js";
import { syncKernelAndFiles } from "./sync.js";
import { addRoutesEarly, earlyRoutesApply, kernelView, routedDevices } from "./route-sync.js";
import { ExpectedRoutes, fullPassTrigger, watchLinks, type LinkWatch } from "./link-watch.js";
import { PassRetry } from "./pass-retry.js";
import { livenessLimits, PassLiveness } from "./pass-liveness.js";
import { holdNodeLock, type NodeLock } from "./node-lock.js";
import { passReport, StatusWriter } from "./status-writer.js";
import { warmToolShell } from "./tool-shell.js";
import { BRIDGE_NAME } from "./cni-conflist.js";
import { underlayIpOf, VXLAN_DEVICE } from "./overlay-plan.js";

export interface AgentOptions {
  /** Program this network namespace instead of the agent's own (tests). */
  netns?: string;
  /** NodeCIDRs per list page (tests use tiny pages to see the first list arrive in parts). */
  listPageSize?: number;
  /** The draw for the random part of a count-only status update's wait (tests fix it). */
  statusRandom?: () => number;
  /** A pass running longer makes /healthz fail (10 minutes; tests shorten it). */
  stuckPassMs?: number;
  /** After the agent stopped because another process holds its node's lock (the CLI exits 1). */
  onLockLost?: () => void;
}

/** The node agent: NodeCIDRs in, kernel routes + CNI config + masquerade + sysctls out, status back. */
export class NodeAgent {
  readonly metrics = agentMetrics();
  readonly records: Informer<Record_>;
  readonly pools: Informer<Pool>;
  /** Clears the Node's NetworkUnavailable condition once this node can network pods. */
  readonly networkCondition: NetworkUnavailableClearer;
  /** Status, Events and the Node condition, written beside the passes: no pass waits on the API server. */
  readonly statusWriter: StatusWriter;
  /** Holds a dual-stack node's first conflist until both families' records are in, for a grace period. */
  private readonly familyWait: FamilyWait;
  private running = false;
  private dirty = true;
  private wake?: () => void;
  private looping?: Promise<void>;
  private stopRequested!: () => void;
  private readonly stopping = new Promise<void>((resolve) => (this.stopRequested = resolve));
  private server?: Server;
  private nodeLock?: NodeLock;
  private linkWatch?: LinkWatch;
  lastOutcome?: SyncOutcome;
  syncs = 0;
  /** What vanished without a release is not acted on at once (record-hold.ts). */
  readonly hold: AgentRecordHold;

  constructor(api: KubeApi, readonly config: AgentConfig, private readonly log: Logger, private readonly opts: AgentOptions = {}) {
    this.retry = new PassRetry(config["resync-period"]);
    this.hold = new AgentRecordHold(config, log, this.metrics.removalsHeld);
    this.identity = new NodeIdentity(api, config["node-name"], log, () => this.markDirty(), () => this.metrics.errors.inc({ step: "list-watch" }));
    this.routingInputs = new RoutingInputs(config["node-name"], () => this.records.cache, (r) => isPredecessorRecord(r, config["node-name"], this.identity.uid));
    this.liveness = new PassLiveness(livenessLimits(config["resync-period"], opts.stuckPassMs));
    this.records = new Informer<Record_>({
      api, path: "/apis/podnet.io/v1alpha1/nodecidrs", log, onEvent: (event, obj) => this.onRecordEvent(event, obj),
      project: recordProjection(config["node-name"]),
      onInitialPage: (items) => this.onInitialPage(items),
      onError: () => this.metrics.errors.inc({ step: "list-watch" }),
      relistSpreadMs: () => relistSpreadMs(this.records.cache.size),
      list: (t) => api.custom.listClusterCustomObject({ ...podnetResource("nodecidrs"), limit: opts.listPageSize ?? LIST_PAGE_SIZE, _continue: t }) as Promise<ListPage<Record_>>,
    });
    this.pools = new Informer<Pool>({
      api, path: "/apis/podnet.io/v1alpha1/podcidrpools", log, onEvent: () => this.onPoolEvent(),
      onError: () => this.metrics.errors.inc({ step: "list-watch" }),
      relistSpreadMs: () => relistSpreadMs(this.records.cache.size),
      list: (t) => api.custom.listClusterCustomObject({ ...podnetResource("podcidrpools"), limit: 500, _continue: t }) as Promise<ListPage<Pool>>,
    });
    this.familyWait = new FamilyWait(config["node-name"], config["family-grace-period"], log, () => this.markDirty());
    this.networkCondition = new NetworkUnavailableClearer(api, config["node-name"], log, config["resync-period"],
      () => this.metrics.errors.inc({ step: "node-condition" }), () => this.identity.network());
    this.statusWriter = new StatusWriter({
      api, records: this.records, recorder: new EventRecorder(api, "podnet-agent", log, { instance: config["node-name"], host: config["node-name"] }), log, pacing: new StatusPacing(opts.statusRandom),
      onError: () => this.metrics.errors.inc({ step: "status" }),
    }, this.networkCondition, { requestPass: () => this.markDirty(), maxMs: config["resync-period"] });
  }

  get metricsPort(): number | undefined { const a = this.server?.address(); return typeof a === "object" && a ? a.port : undefined; }

  async start(): Promise<void> {
    // First, before a port is bound or anything read or written: a second agent for this node throws here. A dry
    // run changes nothing, so it may run beside the agent, and must not keep the agent out.
    if (!this.config["dry-run"]) this.nodeLock = await holdNodeLock(this.config["lock-dir"], this.opts.netns, { role: "agent", node: this.config["node-name"] }, {
      retaken: () => this.log.warn({ node: this.config["node-name"] }, "the node lock's helper process ended; the lock is taken again"),
      gone: (err) => { this.log.error({ node: this.config["node-name"], err: err.message }, "the node lock's helper process ended and the lock could not be taken again: stopping"); void this.stop().then(() => this.opts.onLockLost?.()); },
    });
    this.running = true;
    this.server = await startHealthServer(this.config["metrics-address"], this.metrics.registry, {
      healthy: () => this.running && this.liveness.alive(performance.now(), (why) => this.log.error({ node: this.config["node-name"] }, `${why}: /healthz fails, for kubelet to restart the agent`)),
      ready: () => this.records.isSynced && this.pools.isSynced && this.syncs > 0,
    });
    warmToolShell();
    const needsFullPass = fullPassTrigger({ ownDevices: [BRIDGE_NAME, VXLAN_DEVICE], routedDevices: () => routedDevices(this.opts.netns),
      expected: this.expectedRoutes, holders: () => this.lastOutcome?.cni.podCidrHeldBy?.holders });
    this.linkWatch = watchLinks(this.opts.netns, (event) => { if (needsFullPass(event)) { this.fullDue = true; this.markDirty(); } });
    // The kernel is read while the first list pages in: the early route passes (onInitialPage) need it.
    if (earlyRoutesApply(this.config)) this.passInFlight = kernelView({ config: this.config, netns: this.opts.netns, full: true }).catch(() => undefined);
    // Beside the first list, not before it (the early route passes take no record as this node's): the first
    // full pass waits for it, at most its 3 s.
    this.identityKnown = this.identity.start();
    this.records.start();
    this.pools.start();
    this.looping = this.loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopRequested();
    this.linkWatch?.stop();
    this.familyWait.stop();
    this.wake?.();
    this.records.stop();
    this.identity.stop();
    this.pools.stop();
    // A pass under way finishes (it may be mid-batch); no wait starts after it. A status write under way is cut
    // off: the next agent writes the status afresh, and a stop must fit in the pod's termination grace period.
    await Promise.all([this.looping, this.statusWriter.stop()]);
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await this.nodeLock?.release(); // last: a successor starts once this agent's last pass is over
    this.nodeLock = undefined;
  }

  /** Force a sync now (tests, resync); resolves with what it did. */
  async syncNow(): Promise<SyncOutcome> {
    await Promise.all([this.records.synced, this.pools.synced, this.identityKnown]);
    this.fullDue = true;
    return this.sync();
  }

  private readonly routingInputs: RoutingInputs;
  private readonly identity: NodeIdentity;
  private identityKnown: Promise<void> = Promise.resolve();
  private onRecordEvent(event: string, obj: Record_): void {
    if (event === "delete" && !isPredecessorRecord(obj, this.config["node-name"], this.identity.uid)) this.hold.vanished(obj);
    if (this.routingInputs.changed(event, obj)) this.markDirty();
  }

  /**
   * Pages of the first list, each queued for an early add-only route pass (see addRoutesEarly). Queued on the
   * same chain as the sync passes, so the first full pass runs after them and plans against their result.
   */
  private earlyRecords: Record_[] = [];
  private earlyQueued = false;
  private onInitialPage(items: Record_[]): void {
    if (!earlyRoutesApply(this.config)) return;
    this.earlyRecords.push(...items);
    if (this.earlyQueued) return;
    this.earlyQueued = true;
    this.passInFlight = this.passInFlight.catch(() => undefined).then(async () => {
      const records = this.earlyRecords.splice(0);
      this.earlyQueued = false;
      const { routes } = desiredNodeState(records.map(observed), this.config["node-name"]);
      await addRoutesEarly({ config: this.config, netns: this.opts.netns }, routes)
        .then((added) => { if (added) this.metrics.routeChanges.inc({ op: "early-add" }, added); })
        .catch((err: unknown) => this.log.debug({ err: apiMessage(err) }, "early route pass failed; the full pass follows"));
    });
  }

  /** Pool status is rewritten on every allocation; only a change of the ranges matters here. */
  private poolRangesSeen = "";
  private onPoolEvent(): void {
    const ranges = poolRanges(this.pools.cache.values()).join(",");
    if (ranges === this.poolRangesSeen) return;
    this.poolRangesSeen = ranges;
    this.markDirty();
  }

  private fullDue = true;
  private readonly expectedRoutes = new ExpectedRoutes();
  private readonly retry: PassRetry;
  /**
   * Monotonic (performance.now()), as every time measured within the agent: the wall clock steps (NTP, a VM
   * resumed), and a step back of an hour had a node woken by events skip its drift-repair passes for the hour.
   */
  private lastFullPassAt = -Infinity;
  private readonly liveness: PassLiveness;

  private markDirty(): void {
    this.dirty = true;
    this.wake?.();
  }

  private async loop(): Promise<void> {
    await Promise.race([Promise.all([this.records.synced, this.pools.synced, this.identityKnown]), this.stopping]);
    while (this.running) {
      if (this.dirty) {
        this.dirty = false;
        let failed = false;
        this.liveness.started(performance.now());
        const outcome = await this.sync().catch((err: unknown) => {
          failed = true;
          this.metrics.errors.inc({ step: "sync" });
          this.log.error({ node: this.config["node-name"], err: apiMessage(err) }, "sync failed; retrying");
        });
        this.liveness.ended(performance.now());
        this.retry.passed(failed ? "threw" : outcome && passLeftWorkUndone(outcome) ? "undone" : "clean", performance.now());
        // Events that arrived during the pass are handled at once (after a short coalescing pause); a retry
        // fallen due meanwhile makes that pass a full one, or steady churn would put it off for good.
        if (this.running && this.dirty && !failed) {
          if (this.retry.dueAt !== undefined && this.retry.dueAt <= performance.now()) this.fullDue ||= this.retry.fired();
          await sleep(10);
          continue;
        }
      }
      if (!this.running) break;
      // Sleep until an event, the retry or the periodic resync (a count-only status update held back by its
      // interval is the status writer's to send).
      const resyncMs = this.config["resync-period"];
      const retryMs = this.retry.dueAt !== undefined ? Math.max(0, this.retry.dueAt - performance.now()) : Infinity;
      const holdMs = this.hold.wakeAt !== undefined ? Math.max(0, this.hold.wakeAt - performance.now()) : Infinity;
      const waitMs = Math.min(resyncMs, retryMs, holdMs);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.dirty = true;
          if (waitMs === retryMs) this.fullDue ||= this.retry.fired();
          // A hold's end too: what was kept (routes, nft elements, FORWARD accepts) is found and removed by reading afresh.
          if (waitMs === resyncMs || waitMs === holdMs) this.fullDue = true;
          resolve();
        }, waitMs);
        this.wake = () => { clearTimeout(timer); resolve(); };
      });
      this.wake = undefined;
      await sleep(10);
    }
  }

  private desired(): { state: DesiredNodeState; own: ReadVersions; nodeIP?: string; removalsHeld: boolean; families: ReturnType<FamilyWait["observe"]> } {
    // A predecessor's record (node-identity.ts) is neither this node's nor a peer's: left out of the pass.
    const skip = this.identity.predecessors(this.records.cache);
    const records = skip.size ? new Map([...this.records.cache].filter(([name]) => !skip.has(name))) : this.records.cache;
    const { state, removalsHeld } = this.hold.plan(records, poolRanges(this.pools.cache.values()), [...skip].map((name) => this.records.cache.get(name)!));
    const me = this.config["node-name"];
    const own = [...records.values()].filter((r) => r.spec.nodeName === me && r.status?.phase === "Allocated");
    // The versions read here go with the pass's outcome: its status is written at them, not over a later change.
    const families = this.familyWait.observe(own.map((r) => r.spec.pool), [...this.pools.cache.values()].map(poolFamiliesOf), state.families);
    return { state, own: Object.fromEntries(own.map((r) => [r.metadata!.name!, r.metadata!.resourceVersion ?? ""])), nodeIP: underlayIpOf(own.flatMap((r) => observed(r).nodeIPs)), removalsHeld, families };
  }

  /** One pass at a time: two passes planning against the same kernel view would both add the same routes. */
  private passInFlight: Promise<unknown> = Promise.resolve();
  private sync(): Promise<SyncOutcome> {
    const pass = this.passInFlight.catch(() => undefined).then(() => this.syncPass());
    this.passInFlight = pass;
    return pass;
  }

  private async syncPass(): Promise<SyncOutcome> {
    const started = performance.now();
    const { state, own, nodeIP, removalsHeld, families } = this.desired();
    this.expectedRoutes.expect(state.routes); // before the pass's own deletions: those are of routes it no longer wants
    // Due by time too: in a busy cluster events wake the agent before any resync timer fires, and the full
    // pass is what repairs drift (a hand-deleted route, an edited nft table).
    const full = this.fullDue || performance.now() - this.lastFullPassAt >= this.config["resync-period"];
    this.fullDue = false;
    if (full) this.lastFullPassAt = performance.now();
    const outcome = await syncKernelAndFiles({ config: this.config, state, nodeIP, netns: this.opts.netns, log: this.log, full, removalsHeld, familyWait: families });
    if (families.condition) outcome.families = families.condition;
    outcome.sysctls = sysctlsAfterPass(this.lastOutcome?.sysctls, outcome.sysctls);
    if (outcome.masquerade.skipped && this.lastOutcome) outcome.masquerade = this.lastOutcome.masquerade;
    this.lastOutcome = outcome;
    this.syncs++;
    recordPass(this.metrics, outcome, (performance.now() - started) / 1000, this.config["dry-run"]);
    if (this.config["dry-run"]) return outcome;
    // Handed over, not awaited: a status write on an API server gone silent held every later pass (a hand-deleted
    // route stayed away for a minute and more).
    const { job, events } = passReport(outcome, own, (name) => this.records.cache.get(name)?.metadata?.uid,
      { ownCidrs: state.ownCidrs, records: this.records.cache.size, clearNetworkUnavailable: this.config["clear-network-unavailable"] });
    exportConditions(this.metrics.conditions, job.conditions); // the only report of a node without a NodeCIDR to write them on
    this.statusWriter.offer(job, events);
    return outcome;
  }
}

export async function runAgent(api: KubeApi, config: AgentConfig, log: Logger, opts: AgentOptions = {}): Promise<NodeAgent> {
  const agent = new NodeAgent(api, config, log, opts);
  await agent.start();
  log.info({ node: config["node-name"], cniConfDir: config["cni-conf-dir"], dryRun: config["dry-run"], metricsPort: agent.metricsPort }, "agent started");
  return agent;
}
