import type { KubernetesObject, V1Node } from "@kubernetes/client-node";
import { cidrObjectName } from "../lib/cidr.js";
import { nextCondition, type ConditionInput } from "../lib/conditions.js";
import type { RetryGate } from "../lib/backoff.js";
import type { EventRecorder } from "../lib/events.js";
import type { Informer } from "../lib/informer.js";
import { apiMessage, applyStatus, forEachLimited, isAlreadyExists, isConflict, isNotFound, logLevelFor, mergePatch, podnetResource, retryAfterMs, type KubeApi } from "../lib/k8s.js";
import type { Logger } from "../log.js";
import type { AllocationAction } from "./plan.js";
import type { ControllerMetrics } from "./metrics.js";
import type { NodeCidrObject } from "./observe.js";
import { laterFieldsAnswered, withinAllowance, type LaterSpecField } from "./schema-drops.js";
import { patchNodeCondition, patchNodePodCidrs } from "./act-node.js";
import { recordLabels } from "./record-labels.js";

const nodecidrs = podnetResource("nodecidrs");
type RecordObject = NodeCidrObject & KubernetesObject;

export interface ActContext {
  api: KubeApi;
  nodes: Informer<V1Node>;
  records: Informer<RecordObject>;
  /**
   * The records as the plan read them. Every write to one names the resourceVersion it had then: a write from a
   * stale plan (a former leader's, sent before a handover and delivered after it) meets 409 instead of undoing
   * what was written since.
   */
  planned: ReadonlyMap<string, RecordObject>;
  recorder: EventRecorder;
  metrics: ControllerMetrics;
  log: Logger;
  /** Checked before every write, the second of an action too: a replica that lost the lease mid-plan must not go on acting on it. */
  leading: () => boolean;
  /** Actions that failed wait their turn here instead of being resent on every plan. */
  retry: RetryGate;
  /** When this process first saw the Node object of that uid (its list or watch), on its monotonic clock. */
  nodeSeenAt?: (node: string, uid: string) => number | undefined;
  /** A record this plan wrote, as the API server answered: the next write to it in the plan goes on that version. */
  wrote?: (record: RecordObject) => void;
  /** Writes of their own per later spec field this plan may send (SchemaDrops.allowance); absent: all. */
  laterFieldWrites?: Partial<Record<LaterSpecField, number>>;
  /** Which later spec fields a write's answer kept or lacked: lacking, the served CRD is older than this controller (schema-drops.ts). */
  laterFieldsAnswered?: (answer: { kept: LaterSpecField[]; dropped: LaterSpecField[] }, record: string) => void;
}

/**
 * Thin shell: performs the planner's actions and nothing else. Successful writes go straight into the
 * informer cache ("assume"), so a plan computed before the watch catches up cannot hand the same node a
 * second CIDR.
 */
// On a busy API server writes are the bottleneck: hand out CIDRs first, then the follow-up writes
// (node.spec.podCIDRs, mirrored IPs, events) that nothing waits on.
const PRIORITY: Record<AllocationAction["kind"], number> = {
  create: 0, confirm: 0, release: 0, quarantine: 1, retain: 1, rehome: 1, delete: 1, updateNodeIPs: 2, stampNodeUID: 2, setNodePodCIDRs: 3, refreshStatus: 3, conflict: 4, exhausted: 4, nodeCondition: 4,
};

/**
 * Applies the plan's actions, except those still waiting after a failure: a write the API server refuses for
 * one node is retried with backoff while the others go ahead. Returns how many creates and deletes went
 * through: those may unblock more work at once, while a waiting or failed one is due only at its retry time.
 */
export async function applyActions(planCtx: ActContext, actions: AllocationAction[], parallelism = 16): Promise<number> {
  // A record's own writes in this plan go one after the other, each on the version the one before produced (re-home
  // and confirm, a uid stamp and node IPs): all on the version the plan read, all but the first met a 409 and
  // waited for another plan. Anyone else's write between them still makes the next one a 409.
  const planned = new Map(planCtx.planned);
  const ctx: ActContext = { ...planCtx, planned, wrote: (record) => { if (record.metadata?.name) planned.set(record.metadata.name, record); } };
  const perRecord = new Map<string, Promise<unknown>>();
  const inTurn = (action: AllocationAction, write: () => Promise<void>): Promise<void> => {
    if (!("name" in action)) return write();
    const next = (perRecord.get(action.name) ?? Promise.resolve()).then(write);
    perRecord.set(action.name, next.catch(() => undefined));
    return next;
  };
  let unblocking = 0;
  const now = performance.now();
  ctx.retry.keepOnly(actions.map(actionKey));
  const sendable = withinAllowance(actions.filter((a) => !ctx.retry.waiting(actionKey(a), now)), ctx.laterFieldWrites, (name) => planned.get(name)?.spec);
  const ordered = sendable.sort((a, b) => PRIORITY[a.kind] - PRIORITY[b.kind]);
  await forEachLimited(ordered, parallelism, async (action) => {
    if (!ctx.leading()) return; // the new leader plans again from what it sees
    const key = actionKey(action);
    try {
      await inTurn(action, () => applyOne(ctx, action));
      ctx.retry.succeeded(key);
      if (action.kind === "create" || action.kind === "delete") unblocking++;
    } catch (err) {
      // Changed since the plan read it: its watch event brings the change and a plan from it, at once and
      // without backoff (nothing failed). A refused write needs no retry of its own.
      if (isConflict(err)) {
        ctx.log.info({ action: action.kind, target: targetOf(action) }, "not written: the object changed since the plan read it; planning again");
        return;
      }
      ctx.retry.failed(key, performance.now(), retryAfterMs(err));
      ctx.metrics.errors.inc({ action: action.kind });
      ctx.log[logLevelFor(err)]({ action: action.kind, target: targetOf(action), err: apiMessage(err) }, "action failed; will retry with backoff");
    }
  });
  return unblocking;
}

function targetOf(action: AllocationAction): string {
  return "name" in action ? action.name : action.node;
}

/** What an action is about: a node's create per family (the CIDR picked may differ between plans), else its object. */
export const actionKey = (action: AllocationAction): string =>
  action.kind === "create" ? `create:${action.node}/${action.family}` : `${action.kind}:${targetOf(action)}`;

async function applyOne(ctx: ActContext, action: AllocationAction): Promise<void> {
  switch (action.kind) {
    case "create": return createRecord(ctx, action);
    case "refreshStatus": { // the status as it is, at the record's generation (its spec was patched since)
      const current = planned(ctx, action.name);
      const allocated = current.status?.conditions?.find((c) => c.type === "Allocated");
      if (!allocated) return;
      return writeStatus(ctx, current, "refreshStatus", { phase: current.status?.phase },
        { type: "Allocated", status: allocated.status, reason: allocated.reason, message: allocated.message });
    }
    case "confirm": // created by a controller that died before writing the status
      return writeStatus(ctx, planned(ctx, action.name), "allocate", { phase: "Allocated" },
        { type: "Allocated", status: "True", reason: "Allocated", message: `${action.cidr} from pool ${action.pool}` });
    // Stamped as the write goes out; it lands only on the version the plan read (see ActContext.planned).
    case "release": return writeStatus(ctx, planned(ctx, action.name), "release", {
      phase: "Released", releasedAt: new Date().toISOString(), // for people: each replica times the cooldown from when it sees this
    }, [{ type: "Allocated", status: "False", reason: "NodeDeleted", message: `node ${action.nodeName} is gone; CIDR held through the release cooldown` },
      // The departed agent's last Ready=True would otherwise stand in `kubectl get nodecidrs` until the record goes.
      { type: "Ready", status: "False", reason: "NodeDeleted", message: `node ${action.nodeName} is gone; agents drop their routes to this CIDR` }],
    () => ctx.metrics.releases.inc());
    case "delete": return deleteRecord(ctx, action.name);
    case "quarantine": {
      await writeStatus(ctx, planned(ctx, action.name), "quarantine", { phase: "Quarantined" },
        { type: "Allocated", status: "False", reason: action.reason, message: action.message }, () => ctx.metrics.quarantined.inc());
      if (!ctx.leading()) return;
      await ctx.recorder.emit({ kind: "NodeCIDR", name: action.name, uid: ctx.records.cache.get(action.name)?.metadata?.uid }, "Warning", action.reason, action.message);
      return;
    }
    case "retain": {
      await writeStatus(ctx, planned(ctx, action.name), "retain", { phase: "Allocated" }, { type: "Allocated", status: "True", reason: action.reason, message: action.message });
      if (!ctx.leading()) return;
      await ctx.recorder.emit({ kind: "NodeCIDR", name: action.name, uid: ctx.records.cache.get(action.name)?.metadata?.uid }, "Warning", action.reason, action.message);
      return;
    }
    // Every plan finds a lasting conflict again: the log says it when its Event goes out (once per interval),
    // not on every plan of a busy cluster.
    case "conflict":
      ctx.metrics.conflicts.inc();
      if (await ctx.recorder.emit({ kind: "Node", name: action.node, uid: ctx.nodes.cache.get(action.node)?.metadata?.uid }, "Warning", action.reason, action.message) !== "duplicate") {
        ctx.log.warn({ node: action.node, reason: action.reason }, action.message);
      }
      return;
    case "exhausted":
      ctx.metrics.exhausted.inc({ pool: action.pool, family: `IPv${action.family}` });
      if (await ctx.recorder.emit({ kind: "Node", name: action.node, uid: ctx.nodes.cache.get(action.node)?.metadata?.uid }, "Warning", action.reason, action.message) !== "duplicate") {
        ctx.log.warn({ node: action.node, pool: action.pool, family: action.family }, action.message);
      }
      return;
    case "rehome": return rehomeRecord(ctx, action);
    case "updateNodeIPs": return patchRecordSpec(ctx, action.name, "updateNodeIPs", { nodeIPs: action.nodeIPs, nodeIPsFrom: action.nodeIPsFrom }, "node IPs mirrored");
    case "stampNodeUID": return patchRecordSpec(ctx, action.name, "stampNodeUID", { nodeUID: action.nodeUID }, "node uid recorded");
    case "setNodePodCIDRs": return patchNodePodCidrs(ctx, action);
    case "nodeCondition": return patchNodeCondition(ctx, action);
  }
}

async function createRecord(ctx: ActContext, action: Extract<AllocationAction, { kind: "create" }>): Promise<void> {
  const name = cidrObjectName(action.cidr);
  const body = {
    apiVersion: "podnet.io/v1alpha1", kind: "NodeCIDR",
    metadata: { name, labels: recordLabels(action.node, action.pool) },
    spec: { nodeName: action.node, cidr: action.cidr, family: action.family === 6 ? "IPv6" : "IPv4", pool: action.pool, nodeIPs: action.nodeIPs,
      ...(action.nodeIPsFrom ? { nodeIPsFrom: action.nodeIPsFrom } : {}), ...(action.adopted ? { adopted: true } : {}), ...(action.nodeUID ? { nodeUID: action.nodeUID } : {}) },
  };
  ctx.metrics.apiWrites.inc({ action: "create" });
  let created: RecordObject;
  try {
    created = (await ctx.api.custom.createClusterCustomObject({ ...nodecidrs, body, fieldManager: ctx.api.fieldManager })) as RecordObject;
    ctx.records.assume(created);
    noteDroppedFields(ctx, name, body.spec, created);
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
    // Our cache was behind: someone holds this CIDR already. Learn it; the next plan picks another.
    const existing = (await ctx.api.custom.getClusterCustomObject({ ...nodecidrs, name })) as RecordObject;
    // "known": the watch brought it between the plan and this GET, as it does.
    if (ctx.records.assume(existing) === "older") {
      // The server holds a version older than one this controller saw: resourceVersions went back, as after an
      // etcd restore without --bump-revision, and the watch will not bring it. Planned again at once, the same
      // create would meet the same object as fast as the API server answers; as a failure it backs off.
      throw new Error(`${name} exists at resourceVersion ${existing.metadata?.resourceVersion ?? "?"}, older than this controller has seen of it: `
        + "the API server's resourceVersions went back (etcd restored without --bump-revision?); restart the controller to list afresh", { cause: err });
    }
    ctx.log.info({ node: action.node, cidr: action.cidr }, "CIDR already taken (cache behind); replanning");
    return;
  }
  // The answer may come after the lease is gone (this process frozen, its connection slow): the successor
  // confirms the record if it still stands, or releases it, and this status must not undo that.
  if (!ctx.leading()) {
    ctx.log.info({ node: action.node, cidr: action.cidr }, "NodeCIDR created, but the lease was lost meanwhile: its status is left to the leader");
    return;
  }
  const how = action.adopted ? { reason: "Adopted", note: " (adopted from node.spec.podCIDRs)" }
    : action.restored ? { reason: "Restored", note: `, given back to node ${action.node}: its record was deleted while the node still had it` }
      : { reason: "Allocated", note: "" };
  await writeStatus(ctx, created, "allocate", { phase: "Allocated" },
    { type: "Allocated", status: "True", reason: how.reason, message: `${action.cidr} from pool ${action.pool}${how.note}` });
  ctx.metrics.allocations.inc({ pool: action.pool, family: `IPv${action.family}`, adopted: String(Boolean(action.adopted)) });
  // From when this process first saw the Node to its CIDR, on one monotonic clock: the Node's creationTimestamp is
  // on the API server's clock, and their skew went into the figure (a controller 2 min ahead recorded 120.9 s).
  // An adopted or restored CIDR did not wait on podnet.
  const seenAt = action.adopted || action.restored ? undefined : ctx.nodeSeenAt?.(action.node, action.nodeUID);
  if (seenAt !== undefined) ctx.metrics.allocationLatency.observe((performance.now() - seenAt) / 1000);
  ctx.log.info({ node: action.node, cidr: action.cidr, pool: action.pool, adopted: Boolean(action.adopted), restored: Boolean(action.restored) }, "allocated");
}

/** The record as the plan read it: each action names a record of the plan's input. */
function planned(ctx: ActContext, name: string): RecordObject {
  const record = ctx.planned.get(name);
  if (!record) throw new Error(`NodeCIDR ${name} is not among the records the plan read`);
  return record;
}

function versionOf(record: RecordObject): string {
  const version = record.metadata?.resourceVersion;
  // Never from the API server: written without one, the write would be unconditional.
  if (!version) throw new Error(`NodeCIDR ${record.metadata?.name ?? "?"} has no resourceVersion to write on`);
  return version;
}

/** The status written on `current`'s resourceVersion: 409 (see applyActions) when the record changed since. */
async function writeStatus(ctx: ActContext, current: RecordObject, what: string, fields: object, conditions: ConditionInput | ConditionInput[], onDone?: () => void): Promise<void> {
  const name = current.metadata!.name!;
  const list = Array.isArray(conditions) ? conditions : [conditions];
  const condition = list[0]!;
  const status = {
    ...fields,
    observedGeneration: current.metadata?.generation,
    conditions: list.map((c) => nextCondition(current.status?.conditions, c, current.metadata?.generation, new Date())),
  };
  ctx.metrics.apiWrites.inc({ action: what });
  const updated = (await applyStatus(ctx.api, "nodecidrs", name, "NodeCIDR", status, versionOf(current))) as RecordObject;
  ctx.records.assume(updated);
  ctx.wrote?.(updated);
  onDone?.();
  ctx.log.info({ nodecidr: name, phase: (fields as { phase?: string }).phase, reason: condition.reason }, `nodecidr ${what}`);
}

async function deleteRecord(ctx: ActContext, name: string): Promise<void> {
  ctx.metrics.apiWrites.inc({ action: "delete" });
  // Only the record as the plan saw it: one of that name made since (for another node), or released again (its
  // cooldown begun anew), must survive a stale plan, a former leader's say. The server answers 409 then.
  const { uid, resourceVersion } = planned(ctx, name).metadata ?? {};
  try {
    await ctx.api.custom.deleteClusterCustomObject({ ...nodecidrs, name, body: { preconditions: { uid, resourceVersion } } });
  } catch (err) {
    if (isConflict(err)) { ctx.log.info({ nodecidr: name }, "not deleted: the record changed since the plan read it"); return; }
    if (!isNotFound(err)) throw err;
  }
  ctx.records.cache.delete(name);
  ctx.metrics.deletions.inc();
  ctx.log.info({ nodecidr: name }, "released CIDR deleted after cooldown; free to hand out again");
}

/** spec.pool (and its label) follows the pool that now holds the record's range; its status says so at once (confirm). */
async function rehomeRecord(ctx: ActContext, action: Extract<AllocationAction, { kind: "rehome" }>): Promise<void> {
  ctx.metrics.apiWrites.inc({ action: "rehome" });
  // null drops the old pool's label where the new name is too long for a label value.
  const labels = { "podnet.io/pool": null, ...recordLabels(action.node, action.pool) };
  const body = { metadata: { labels, resourceVersion: versionOf(planned(ctx, action.name)) }, spec: { pool: action.pool } };
  const updated = await ctx.api.custom.patchClusterCustomObject({ ...nodecidrs, name: action.name, body, fieldManager: ctx.api.fieldManager }, mergePatch()) as RecordObject;
  ctx.records.assume(updated);
  ctx.wrote?.(updated);
  if (!ctx.leading()) return;
  const message = `pool ${action.from} is gone and ${action.cidr} is a slice of pool ${action.pool}: now counted as that pool's`;
  await ctx.recorder.emit({ kind: "NodeCIDR", name: action.name, uid: ctx.records.cache.get(action.name)?.metadata?.uid }, "Normal", "PoolChanged", message);
  ctx.log.info({ nodecidr: action.name, from: action.from, pool: action.pool }, message);
}

async function patchRecordSpec(ctx: ActContext, name: string, action: "updateNodeIPs" | "stampNodeUID", spec: Partial<NodeCidrObject["spec"]>, said: string): Promise<void> {
  ctx.metrics.apiWrites.inc({ action });
  // A resourceVersion in a merge patch is a precondition, as in an update.
  const body = { metadata: { resourceVersion: versionOf(planned(ctx, name)) }, spec };
  const updated = await ctx.api.custom.patchClusterCustomObject({ ...nodecidrs, name, body, fieldManager: ctx.api.fieldManager }, mergePatch()) as RecordObject;
  ctx.records.assume(updated);
  ctx.wrote?.(updated);
  ctx.log.info({ nodecidr: name, ...spec }, said);
  noteDroppedFields(ctx, name, spec, updated);
}

function noteDroppedFields(ctx: ActContext, name: string, sent: Record<string, unknown>, answer: RecordObject): void {
  const answered = laterFieldsAnswered(sent, answer.spec as Record<string, unknown> | undefined);
  if (answered.kept.length || answered.dropped.length) ctx.laterFieldsAnswered?.(answered, name);
}
