import type { CoreV1Event } from "@kubernetes/client-node";
import type { Logger } from "../log.js";
import { apiMessage, cutOffByStop, withSignal, type KubeApi } from "./k8s.js";

export interface EventTarget {
  kind: "Node" | "NodeCIDR" | "PodCIDRPool";
  name: string;
  uid?: string;
  apiVersion?: string;
}

export type EmitResult = "sent" | "duplicate" | "failed";

/**
 * Writes core/v1 Events (what `kubectl describe` and `kubectl get events` show). The same
 * (object, reason, message) is written at most once per interval: a level-based loop replans often and
 * must not flood the API server with copies of one complaint.
 */
export class EventRecorder {
  private readonly lastWritten = new Map<string, number>();
  written = 0;

  constructor(
    private readonly api: KubeApi,
    private readonly component: string,
    private readonly log: Logger,
    private readonly intervalMs = 10 * 60_000,
    private readonly namespace = "default",
  ) {}

  /**
   * "duplicate" when the same complaint went out within the interval (callers log only what they report anew),
   * "failed" when the write did not go through (cut off by `signal`, a caller's deadline, or refused). A failed
   * complaint counts as sent for the interval, so a level-based caller does not retry it on every plan; a caller
   * that keeps it to send again (`forgetIfFailed`) has it free to go at once.
   */
  async emit(target: EventTarget, type: "Normal" | "Warning", reason: string, message: string, signal?: AbortSignal,
    opts: { forgetIfFailed?: boolean } = {}): Promise<EmitResult> {
    const key = `${target.kind}/${target.name}/${reason}/${message}`;
    // The interval on the monotonic clock: on the wall clock, one stepped back an hour silenced complaints for that hour.
    const now = performance.now();
    if (now - (this.lastWritten.get(key) ?? -Infinity) < this.intervalMs) return "duplicate";
    this.lastWritten.delete(key); // re-inserted last: the map stays in time order for pruning
    this.lastWritten.set(key, now);
    this.prune(now);
    const time = new Date();
    const body: CoreV1Event = {
      apiVersion: "v1", kind: "Event",
      metadata: { generateName: `${target.name.slice(0, 200)}.`, namespace: this.namespace },
      involvedObject: { kind: target.kind, name: target.name, uid: target.uid, apiVersion: target.apiVersion ?? (target.kind === "Node" ? "v1" : "podnet.io/v1alpha1") },
      reason, message: message.slice(0, 1024), type,
      source: { component: this.component }, reportingComponent: `podnet.io/${this.component}`,
      firstTimestamp: time, lastTimestamp: time, count: 1,
    };
    try {
      await this.api.core.createNamespacedEvent({ namespace: this.namespace, body }, withSignal(signal));
      this.written++;
      return "sent";
    } catch (err) {
      if (opts.forgetIfFailed) this.lastWritten.delete(key);
      this.log[cutOffByStop(signal) ? "debug" : "warn"]({ kind: target.kind, name: target.name, reason, err: apiMessage(err) }, "could not write event");
      return "failed";
    }
  }

  /** Complaints older than the interval may go out again anyway: drop them, or churn grows the map for good. */
  private prune(now: number): void {
    for (const [key, at] of this.lastWritten) {
      if (now - at < this.intervalMs) break; // in time order: the rest are newer
      this.lastWritten.delete(key);
    }
  }

  /** Complaints remembered (not yet free to go out again). */
  get remembered(): number { return this.lastWritten.size; }
}
