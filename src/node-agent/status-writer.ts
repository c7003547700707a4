import type { AgentReport } from "../crds/nodecidr.js";
import type { ConditionInput } from "../lib/conditions.js";
import { Backoff } from "../lib/backoff.js";
import { apiMessage, STOPPING } from "../lib/k8s.js";
import { countsOnlyIntervalMs, reportStatus, type PassEvent, type ReadVersions, type StatusContext } from "./agent-status.js";
import { agentConditions, type SyncOutcome } from "./report.js";
import type { NetworkUnavailableClearer } from "./node-network-condition.js";

/**
 * Each status, Event or Node call's own deadline. A small write answers in milliseconds; without one, a call on
 * a connection gone silent waits out the 60 s silence timeout (k8s.ts), and the newest outcome behind it.
 */
export const STATUS_CALL_TIMEOUT_MS = 10_000;

/**
 * Runs `work` on the newest job offered, one at a time: an offer while one runs waits, and a newer offer replaces
 * it (no queue of stale ones). `stop` drops what waits and resolves once the running job is over.
 */
export class LatestOnly<T> {
  private pending?: { job: T };
  private busy = false;
  private stopped = false;
  private done: Promise<void> = Promise.resolve();
  constructor(private readonly work: (job: T) => Promise<void>, private readonly onError: (err: unknown) => void) {}

  offer(job: T): void {
    if (this.stopped) return;
    this.pending = { job };
    if (this.busy) return;
    this.busy = true;
    this.done = this.drain();
  }

  /** Whether a job runs now. */
  get running(): boolean { return this.busy; }

  async stop(): Promise<void> {
    this.stopped = true;
    this.pending = undefined;
    await this.done;
  }

  private async drain(): Promise<void> {
    // busy is cleared in the same turn the loop sees nothing pending: an offer can never find it set with no loop left.
    while (this.pending && !this.stopped) {
      const { job } = this.pending;
      this.pending = undefined;
      try { await this.work(job); } catch (err) { this.onError(err); }
    }
    this.busy = false;
  }
}

/** What one pass leaves to tell the API server. */
export interface StatusJob {
  /** This node's Allocated records the pass computed from, with the versions it read: written at those only. */
  own: ReadVersions;
  conditions: ConditionInput[];
  report: Omit<AgentReport, "lastSyncTime">;
  countsIntervalMs: number;
  /** Clear the Node's NetworkUnavailable if these conditions allow it. */
  clearNetworkUnavailable: boolean;
}

/**
 * Pure: what a pass leaves to tell, from its outcome and the Allocated records of this node it read (`own`): the
 * status job, and an Event on each of those records when the pass took old gateways off the pod bridge.
 */
export function passReport(outcome: SyncOutcome, own: ReadVersions, uidOf: (name: string) => string | undefined,
  opts: { ownCidrs: string[]; records: number; clearNetworkUnavailable: boolean }): { job: StatusJob; events: PassEvent[] } {
  const names = Object.keys(own);
  const removed = outcome.cni.removedBridgeAddresses ?? [];
  const job: StatusJob = {
    own, conditions: agentConditions(outcome), countsIntervalMs: countsOnlyIntervalMs(opts.records),
    report: { routesDesired: outcome.routes.desired, routesInstalled: outcome.routes.installed, routeConflicts: outcome.routes.conflicts.length,
      unreachableNodes: outcome.routes.unreachable.length, overlayRoutes: outcome.routes.overlay, cniConfigPath: outcome.cni.path },
    clearNetworkUnavailable: names.length > 0 && opts.clearNetworkUnavailable,
  };
  const events: PassEvent[] = removed.length === 0 ? [] : names.map((name) => ({ target: { kind: "NodeCIDR", name, uid: uidOf(name) }, reason: "StaleBridgeAddressRemoved",
    message: `removed ${removed.join(", ")} from the pod bridge: this node's pod CIDRs are now ${opts.ownCidrs.join(", ")}; pods still holding addresses from the old range have no network and must be recreated` }));
  return { job, events };
}

/** One-off Events go out after a status write that went through; one whose write failed is kept for the next. */
export type { PassEvent };
/** Bound on one-off Events waiting through an outage (they are rare: a pod CIDR change). */
const MAX_PASS_EVENTS = 20;

/**
 * After a status write that did not go through (failed, or a 409), the writer asks for a fresh pass: from
 * `baseMs`, doubling (with jitter) up to `maxMs` (the resync period); a write that goes through ends it.
 * A fresh pass, not the same job again: after a 409 its versions are stale. Without it, the agent wakes only
 * for a routing input or the resync (30 s by default), and the status stayed stale that long after an outage.
 */
export interface WriteRetry { requestPass: () => void; maxMs: number; baseMs?: number }

/**
 * The agent's API writes, off the pass chain: a pass hands over its outcome and goes on, so the kernel is
 * repaired while the API server is slow or unreachable. The newest outcome is written (reportStatus writes
 * only what differs from the record), one write at a time, each call with its own deadline; a count-only
 * update held back by its interval is written from the newest outcome when due; a write that did not go
 * through brings a fresh pass (WriteRetry).
 */
export class StatusWriter {
  private stopped = false;
  private readonly runner: LatestOnly<StatusJob>;
  private latest?: StatusJob;
  private dueTimer?: NodeJS.Timeout;
  private readonly events: PassEvent[] = [];
  private readonly retryBackoff: Backoff;
  private retryTimer?: NodeJS.Timeout;

  constructor(private readonly ctx: Omit<StatusContext, "signal">, private readonly networkCondition: NetworkUnavailableClearer,
    private readonly retry: WriteRetry, private readonly callTimeoutMs = STATUS_CALL_TIMEOUT_MS) {
    this.runner = new LatestOnly((job) => this.write(job), (err) => { ctx.log.error({ err: apiMessage(err) }, "status write failed"); this.retryLater(); });
    this.retryBackoff = new Backoff(retry.baseMs ?? 1_000, retry.maxMs);
  }

  /** A pass's outcome; `events` are sent once, even if a newer outcome replaces this one before it is written. */
  offer(job: StatusJob, events: PassEvent[] = []): void {
    this.keepEvents(events);
    this.latest = job;
    this.runner.offer(job);
  }

  /** One-off Events waiting to be sent (tests). */
  get eventsWaiting(): number { return this.events.length; }

  /** Whether a write is under way (tests). */
  get writing(): boolean { return this.runner.running; }

  /** Ends any call in flight at once and drops what waits. */
  async stop(): Promise<void> {
    clearTimeout(this.dueTimer);
    clearTimeout(this.retryTimer);
    this.stopped = true;
    for (const call of this.calls) call.abort(STOPPING);
    await this.runner.stop();
  }

  /**
   * A signal for one call, aborted at its deadline or at a stop: the timer holds its controller until the
   * deadline and then lets it go, and a stop aborts those still held (nothing hangs on one long-lived signal).
   * A stop's abort says so (STOPPING): the call is no failure to log as an error or count.
   */
  private readonly calls = new Set<AbortController>();
  private readonly signal = (): AbortSignal => {
    const call = new AbortController();
    if (this.stopped) { call.abort(STOPPING); return call.signal; }
    this.calls.add(call);
    setTimeout(() => { this.calls.delete(call); call.abort(); }, this.callTimeoutMs).unref();
    return call.signal;
  };

  /** Adds Events to those waiting (`first`: back in front, older than any offered meanwhile); the oldest go past the bound. */
  private keepEvents(events: PassEvent[], first = false): void {
    if (first) this.events.unshift(...events); else this.events.push(...events);
    this.events.splice(0, Math.max(0, this.events.length - MAX_PASS_EVENTS));
  }

  /** Sends the Events waiting; those whose write failed (or that a stop left) are kept. */
  private async sendEvents(): Promise<void> {
    const unsent: PassEvent[] = [];
    for (const e of this.events.splice(0)) {
      // A failed write must leave the complaint free to go again: the recorder counts failures as sent otherwise.
      if (this.stopped || await this.ctx.recorder.emit(e.target, "Warning", e.reason, e.message, this.signal(), { forgetIfFailed: true }) === "failed") unsent.push(e);
    }
    this.keepEvents(unsent, true);
  }

  /**
   * A fresh pass after the backoff. One retry waits at a time: passes failing meanwhile (events, the resync) do
   * not grow the backoff, only a retry that fails again does.
   */
  private retryLater(): void {
    if (this.stopped || this.retryTimer) return;
    this.retryTimer = setTimeout(() => { this.retryTimer = undefined; if (!this.stopped) this.retry.requestPass(); }, this.retryBackoff.next());
    this.retryTimer.unref();
  }

  private wentThrough(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.retryBackoff.reset();
  }

  private async write(job: StatusJob): Promise<void> {
    const { dueAt, unwritten, unsentEvents } = await reportStatus({ ...this.ctx, signal: this.signal }, job.own, job.conditions, job.report, job.countsIntervalMs);
    clearTimeout(this.dueTimer);
    if (dueAt !== undefined && !this.stopped) {
      this.dueTimer = setTimeout(() => { if (this.latest) this.runner.offer(this.latest); }, Math.max(0, dueAt - performance.now()));
    }
    // Not while the status does not go through: the Event would tell of a pass whose outcome is not written (and
    // on an API server that refuses writes, it would fail too).
    if (unwritten) this.retryLater(); else { this.wentThrough(); await this.sendEvents(); }
    this.keepEvents(unsentEvents); // after sendEvents: tried again with the next outcome, not at once
    if (job.clearNetworkUnavailable && !this.stopped) await this.networkCondition.afterPass(job.conditions, this.signal);
  }
}
