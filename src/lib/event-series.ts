import type { CoreV1Event } from "@kubernetes/client-node";

export interface EventTarget {
  kind: "Node" | "NodeCIDR" | "PodCIDRPool";
  name: string;
  uid?: string;
  apiVersion?: string;
}

/**
 * Who writes an Event. kubectl's FROM column shows `component, host` (reportingInstance where host is empty):
 * without an instance two controller replicas, or a hundred agents, read as one.
 */
export interface EventSource {
  component: string;
  /** The controller's lease identity, an agent's node name. */
  instance?: string;
  /** The node the writer runs on, where it has one (the agent). */
  host?: string;
}

/** One repeated complaint: the same object (by uid where known), reason and message. */
export const seriesKey = (target: EventTarget, reason: string, message: string) =>
  JSON.stringify([target.kind, target.name, target.uid ?? "", reason, message]);

/** Pure: a core/v1 Event, first of its series. */
export function newEventBody(target: EventTarget, type: "Normal" | "Warning", reason: string, message: string, time: Date, source: EventSource, namespace: string): CoreV1Event {
  return {
    apiVersion: "v1", kind: "Event",
    metadata: { generateName: `${target.name.slice(0, 200)}.`, namespace },
    involvedObject: { kind: target.kind, name: target.name, uid: target.uid, apiVersion: target.apiVersion ?? (target.kind === "Node" ? "v1" : "podnet.io/v1alpha1") },
    reason, message: message.slice(0, 1024), type,
    source: { component: source.component, ...(source.host ? { host: source.host } : {}) },
    reportingComponent: `podnet.io/${source.component}`, ...(source.instance ? { reportingInstance: source.instance.slice(0, 128) } : {}),
    firstTimestamp: time, lastTimestamp: time, count: 1,
  };
}

/** Pure: the merge patch that counts one more occurrence on the series' Event (core/v1 aggregation, as client-go's recorder does). */
export const repeatPatch = (count: number, time: Date) => ({ count, lastTimestamp: time.toISOString() });

/**
 * The Event each series last wrote, and its count: the next occurrence patches it instead of creating another.
 * Bounded: past `limit` series the least recently written is forgotten (its next occurrence starts a new Event).
 */
export class EventSeries {
  private readonly byKey = new Map<string, { name: string; count: number }>();

  constructor(private readonly limit = 4096) {}

  get(key: string): { name: string; count: number } | undefined { return this.byKey.get(key); }

  remember(key: string, name: string, count: number): void {
    this.byKey.delete(key); // re-inserted last: the map stays in order of last write
    this.byKey.set(key, { name, count });
    if (this.byKey.size > this.limit) this.byKey.delete(this.byKey.keys().next().value!);
  }

  forget(key: string): void { this.byKey.delete(key); }

  get size(): number { return this.byKey.size; }
}
