import type { Logger } from "../log.js";
import { EventSeries, newEventBody, repeatPatch, seriesKey, type EventSource, type EventTarget } from "./event-series.js";
import { apiMessage, apiStatus, cutOffByStop, isNotFound, isThrottled, mergePatch, retryAfterMs, withSignal, type KubeApi } from "./k8s.js";

export type { EventTarget } from "./event-series.js";

export type EmitResult = "sent" | "duplicate" | "failed";

export interface RecorderOptions {
  intervalMs?: number;
  namespace?: string;
  /** reportingInstance: the controller's lease identity, an agent's node name. */
  instance?: string;
  /** source.host: the agent's node name. */
  host?: string;
}

/**
 * Writes core/v1 Events (what `kubectl describe` and `kubectl get events` show). The same
 * (object, reason, message) is written at most once per interval: a level-based loop replans often and
 * must not flood the API server with copies of one complaint. Written again after that, it counts on the
 * Event written before (count, lastTimestamp) while that Event lives, so a lasting complaint is one Event.
 */
export class EventRecorder {
  private readonly lastWritten = new Map<string, number>();
  /** Complaints the server throttled (429), and when its Retry-After lets them go again. */
  private readonly throttledUntil = new Map<string, number>();
  private readonly series = new EventSeries();
  private readonly intervalMs: number;
  private readonly namespace: string;
  private readonly source: EventSource;
  written = 0;

  constructor(private readonly api: KubeApi, component: string, private readonly log: Logger, opts: RecorderOptions = {}) {
    this.intervalMs = opts.intervalMs ?? 10 * 60_000;
    this.namespace = opts.namespace ?? "default";
    this.source = { component, instance: opts.instance, host: opts.host };
  }

  /**
   * "duplicate" when the same complaint went out within the interval (callers log only what they report anew),
   * "failed" when the write did not go through (cut off by `signal`, a caller's deadline, or refused). A failed
   * complaint counts as sent for the interval, so a level-based caller does not retry it on every plan; a caller
   * that keeps it to send again (`forgetIfFailed`) has it free to go at once. A throttled one (429) is kept to send
   * again once the server's Retry-After (at least 1 s) has passed: it was refused unread, not written, and a
   * Warning lost for the interval is lost when it matters most, while the API server is overloaded.
   */
  async emit(target: EventTarget, type: "Normal" | "Warning", reason: string, message: string, signal?: AbortSignal,
    opts: { forgetIfFailed?: boolean } = {}): Promise<EmitResult> {
    const key = `${target.kind}/${target.name}/${reason}/${message}`;
    // The interval on the monotonic clock: on the wall clock, one stepped back an hour silenced complaints for that hour.
    const now = performance.now();
    if (now - (this.lastWritten.get(key) ?? -Infinity) < this.intervalMs || now < (this.throttledUntil.get(key) ?? -Infinity)) return "duplicate";
    this.throttledUntil.delete(key);
    this.lastWritten.delete(key); // re-inserted last: the map stays in time order for pruning
    this.lastWritten.set(key, now);
    this.prune(now);
    const time = new Date(); // the wall clock: it stamps what is written
    try {
      await this.write(target, type, reason, message, time, signal);
      this.written++;
      return "sent";
    } catch (err) {
      if (opts.forgetIfFailed || isThrottled(err)) this.lastWritten.delete(key);
      if (isThrottled(err)) this.throttledUntil.set(key, now + Math.max(1_000, retryAfterMs(err) ?? 0));
      this.log[cutOffByStop(signal) ? "debug" : "warn"]({ kind: target.kind, name: target.name, reason, err: apiMessage(err) }, "could not write event");
      return "failed";
    }
  }

  /** Counts on the series' last Event; a new one when there is none, or it is gone (deleted, past the API server's --event-ttl). */
  private async write(target: EventTarget, type: "Normal" | "Warning", reason: string, message: string, time: Date, signal?: AbortSignal): Promise<void> {
    const key = seriesKey(target, reason, message);
    const last = this.series.get(key);
    if (last) {
      try {
        await this.api.core.patchNamespacedEvent({ name: last.name, namespace: this.namespace, body: repeatPatch(last.count + 1, time) }, withSignal(signal, mergePatch()));
        this.series.remember(key, last.name, last.count + 1);
        return;
      } catch (err) {
        // Gone (deleted, past --event-ttl), or not ours to count on (refused): the repeat starts a new Event.
        if (!isNotFound(err) && apiStatus(err) !== 403) throw err;
        this.series.forget(key);
      }
    }
    const created = await this.api.core.createNamespacedEvent({ namespace: this.namespace, body: newEventBody(target, type, reason, message, time, this.source, this.namespace) }, withSignal(signal));
    if (created?.metadata?.name) this.series.remember(key, created.metadata.name, 1);
  }

  /** Complaints older than the interval may go out again anyway: drop them, or churn grows the map for good. */
  private prune(now: number): void {
    for (const [key, until] of this.throttledUntil) if (until <= now) this.throttledUntil.delete(key);
    for (const [key, at] of this.lastWritten) {
      if (now - at < this.intervalMs) break; // in time order: the rest are newer
      this.lastWritten.delete(key);
    }
  }

  /** Complaints remembered (not yet free to go out again). */
  get remembered(): number { return this.lastWritten.size; }
}
