import type { KubernetesObject } from "@kubernetes/client-node";
import type { Condition } from "../crds/common.js";
import type { AgentReport } from "../crds/nodecidr.js";
import { conditionsEqual, kubeTime, nextCondition, type ConditionInput } from "../lib/conditions.js";
import type { EventRecorder, EventTarget } from "../lib/events.js";
import type { Informer } from "../lib/informer.js";
import { apiMessage, applyStatus, cutOffByStop, isConflict, logLevelFor, type KubeApi } from "../lib/k8s.js";
import type { Logger } from "../log.js";
import type { NodeCidrObject } from "../controllers/observe.js";
import { FAMILY_PENDING } from "./family-gap.js";
import { IPAM_DATA_DIR_KEPT, POD_ADDRESSES_OUTSIDE_CIDR } from "./report.js";

export interface StatusContext {
  api: KubeApi;
  records: Informer<NodeCidrObject & KubernetesObject>;
  recorder: EventRecorder;
  log: Logger;
  pacing: StatusPacing;
  /** A fresh signal per API call: each gets its own deadline, and all end at a stop. */
  signal?: () => AbortSignal;
  /** A write that failed other than by a conflict or a stop (metrics). */
  onError?: () => void;
}

/** One agent's record of its status writes (its own: tests run several agents, and restart them, in one process). */
export class StatusPacing {
  /** Times here are monotonic (performance.now()): on the wall clock, a step back held count-only updates for the step. */
  readonly lastWrite = new Map<string, number>();
  /** Per record, the version this agent's last status write produced and those it stands for (see writeVersion). */
  readonly ownWrites = new Map<string, OwnWrite>();
  /** When a count-only change waiting per record is due; fixed when first seen, so passes do not redraw it. */
  readonly countsDue = new Map<string, number>();
  /** A draw in [0, 1) for the random part of a count-only update's wait (tests pass a fixed one). */
  constructor(readonly random: () => number = Math.random) {}

  /** Forgets records that are gone: a node's CIDR changes over its life, and each range would stay here for good. */
  forgetGone(exists: (name: string) => boolean): void {
    for (const map of [this.lastWrite, this.ownWrites, this.countsDue]) for (const name of map.keys()) if (!exists(name)) map.delete(name);
  }
}

/**
 * Report the agent's conditions on each of this node's NodeCIDRs by server-side apply under the
 * podnet-agent field manager: the controller's own conditions on the same objects are left alone.
 * Writes only when something changed; an Event goes out when a condition turns False.
 */
// Every agent watches every NodeCIDR, so each status write here reaches all N agents: a join that changed
// every agent's route count would cost N writes × N deliveries at once. Conditions that flip are written at
// once; count-only changes (ROUTES in `kubectl get nodecidrs -o wide`) wait out an interval that grows with
// the cluster (N × 200 ms, at least 2 s) since this record's last write, and also a random part of one such
// interval from when the change was first seen: after a quiet spell every agent is past its interval, and a
// join would otherwise have all N write in the same second. Together they write ~5 such updates a second.
// Kubernetes moved node heartbeats off the Node object for the same reason.
export const countsOnlyIntervalMs = (records: number) => Math.max(2_000, records * 200);

/** Pure: when a count-only change first seen at `now` is due; `draw` in [0, 1) picks the random part. */
export const countsOnlyDueAt = (lastWriteAt: number | undefined, now: number, intervalMs: number, draw: number) =>
  Math.max((lastWriteAt ?? -Infinity) + intervalMs, now + draw * intervalMs);

/** True conditions that still deserve a Warning: another config shadows podnet's, the IPAM directory change waits, or pods hold stale addresses. */
const warnsWhileTrue = (c: Pick<Condition, "type" | "status" | "reason">) => c.status === "True"
  && (c.type === "CNIConfigShadowed" || (c.type === "CNIConfigured" && (c.reason === IPAM_DATA_DIR_KEPT || c.reason === POD_ADDRESSES_OUTSIDE_CIDR)));

/** The records a pass computed from: this node's Allocated NodeCIDRs by name, each with the resourceVersion read. */
export type ReadVersions = Record<string, string>;

/** A status write of this agent's: the version it produced, and the versions it was (transitively) made over. */
export interface OwnWrite { version: string; over: string[] }
const OWN_WRITES_KEPT = 4;

/**
 * Pure: the version to write a pass's outcome at. The one the pass read, or, if this agent's own status writes
 * went on top of it since, the version they produced: they changed only the agent's conditions and counts,
 * nothing the pass computed from. Any other change since (a release, a CIDR change) makes the write a 409.
 * Without this, an outcome that waited behind the previous one's write would always meet a 409.
 */
export function writeVersion(read: string, own: OwnWrite | undefined): string {
  return own?.over.includes(read) ? own.version : read;
}

/** Pure: after a write at `at` produced `version`. */
export function afterOwnWrite(previous: OwnWrite | undefined, at: string, version: string): OwnWrite {
  return { version, over: [...(previous?.version === at ? previous.over : []), at].slice(-OWN_WRITES_KEPT) };
}

/**
 * A one-off Warning Event: kept until sent, not replaced by newer outcomes. A pass's own (something it did),
 * or a condition's turn to False whose Event failed: the next pass sees the condition False already and would
 * not tell it again.
 */
export interface PassEvent { target: EventTarget; reason: string; message: string }

export interface StatusResult {
  /** When a suppressed count-only update is due, on performance.now()'s clock (the caller writes again then). */
  dueAt?: number;
  /** A write failed or met a changed record (409): what this outcome says is not on the record. */
  unwritten: boolean;
  /** Warnings for conditions this write changed whose Event did not go through: the caller sends them later. */
  unsentEvents: PassEvent[];
}

/** Writes what changed. */
export async function reportStatus(ctx: StatusContext, own: ReadVersions, inputs: ConditionInput[], report: Omit<AgentReport, "lastSyncTime">, countsIntervalMs: number): Promise<StatusResult> {
  let dueAt: number | undefined;
  let unwritten = false;
  const unsentEvents: PassEvent[] = [];
  const warn = async (target: EventTarget, reason: string, message: string) => {
    if (await ctx.recorder.emit(target, "Warning", reason, message, ctx.signal?.(), { forgetIfFailed: true }) === "failed") unsentEvents.push({ target, reason, message });
  };
  const { lastWrite, countsDue, random, ownWrites } = ctx.pacing;
  ctx.pacing.forgetGone((name) => ctx.records.cache.has(name));
  for (const [name, read] of Object.entries(own)) {
    const current = ctx.records.cache.get(name);
    // Released (or quarantined) since the pass read it: that pass's outcome is not this record's any more. (A
    // record without a version never comes from the API server; unconditional is what a write without one is.)
    if (current?.status?.phase !== "Allocated" || !read) continue;
    const existing = current.status?.conditions;
    const conditions: Condition[] = inputs.map((c) => nextCondition(existing, c, current.metadata?.generation, new Date()));
    const previous = current.status?.agent;
    const sameReport = previous !== undefined && Object.entries(report).every(([k, v]) => (previous as Record<string, unknown>)[k] === v);
    // Back to what is written (a join and its leave within one interval): nothing is due any more, and a stale due
    // time in the past would have the next change written at once by every agent together.
    if (conditionsEqual(existing, conditions) && sameReport) { countsDue.delete(name); continue; }
    const flipped = conditions.some((c) => { const e = existing?.find((x) => x.type === c.type); return !e || e.status !== c.status || e.reason !== c.reason; });
    if (!flipped) {
      let due = countsDue.get(name);
      if (due === undefined) {
        due = countsOnlyDueAt(lastWrite.get(name), performance.now(), countsIntervalMs, random());
        countsDue.set(name, due);
      }
      if (performance.now() < due) { dueAt = Math.min(dueAt ?? due, due); continue; }
    }
    const at = writeVersion(read, ownWrites.get(name));
    const signal = ctx.signal?.();
    try {
      // On the version the pass read (not the cache's now: a release since would be written over, Ready=True on
      // a Released record): any other write since wins with a 409, and the next pass reports afresh.
      const updated = await applyStatus(ctx.api, "nodecidrs", name, "NodeCIDR", {
        conditions, agent: { ...report, lastSyncTime: kubeTime(new Date()) },
      }, at, signal) as NodeCidrObject & KubernetesObject;
      ctx.records.assume(updated);
      if (updated.metadata?.resourceVersion) ownWrites.set(name, afterOwnWrite(ownWrites.get(name), at, updated.metadata.resourceVersion));
      lastWrite.set(name, performance.now());
      countsDue.delete(name); // written, counts included: the next count-only change draws its own time
    } catch (err) {
      unwritten = true;
      if (isConflict(err)) ctx.log.debug({ nodecidr: name }, "NodeCIDR changed since this pass read it; the next pass reports");
      else if (cutOffByStop(signal)) ctx.log.debug({ nodecidr: name }, "NodeCIDR status write cut off by the agent's stop");
      else { ctx.log[logLevelFor(err)]({ nodecidr: name, err: apiMessage(err) }, "could not write NodeCIDR status"); ctx.onError?.(); }
      continue;
    }
    // Not for Ready: it only gathers the others, whose own Event says the same (two Events per agent, 10,000 at
    // 5,000 nodes, for one unreachable peer).
    // Nor for CNIConfigured=False when the reason is shadowing: CNIConfigShadowed's own Warning says it.
    // Nor for FamilyPending: a dual-stack join passes through it for a moment; FamilyMissing, past the grace period, warns.
    for (const c of conditions.filter((c) => c.status === "False" && c.type !== "CNIConfigShadowed" && c.type !== "Ready" && c.reason !== "CNIConfigShadowed" && c.reason !== FAMILY_PENDING)) {
      const before = existing?.find((e) => e.type === c.type);
      if (before?.status === "False" && before.reason === c.reason) continue;
      ctx.log.warn({ nodecidr: name, condition: c.type, reason: c.reason }, c.message);
      await warn({ kind: "NodeCIDR", name, uid: current.metadata?.uid }, c.reason, `${c.type}: ${c.message}`);
    }
    for (const c of conditions.filter(warnsWhileTrue)) {
      const before = existing?.find((e) => e.type === c.type);
      if (before && warnsWhileTrue(before) && before.reason === c.reason) continue;
      ctx.log.warn({ nodecidr: name, condition: c.type, reason: c.reason }, c.message);
      await warn({ kind: "NodeCIDR", name, uid: current.metadata?.uid }, c.type === "CNIConfigShadowed" ? c.type : c.reason, c.message);
    }
  }
  return { dueAt, unwritten, unsentEvents };
}
