import type { AllocationAction } from "./plan-types.js";
import { sameList } from "./plan-node-ips.js";

/**
 * NodeCIDR spec fields the API server's CRD does not know. An upgrade that skipped `kubectl apply` of the chart's
 * crds/ (helm upgrade leaves them as they were) serves the old schema, which prunes a newer field from every
 * write without an error: planned again and again from a record that never gains it, each write came back in
 * every plan (6,837 uid stamps in 30 s at 210 Nodes in the review).
 */

/** Fields the controller writes that an older NodeCIDR schema may lack (their own writes are cut by withinAllowance). */
export type LaterSpecField = "nodeUID" | "nodeIPsFrom";
export const LATER_SPEC_FIELDS: readonly LaterSpecField[] = ["nodeUID", "nodeIPsFrom"];

/** Pure: of the later fields a write sent, those the object it got back keeps and those it lacks. */
export function laterFieldsAnswered(sent: Record<string, unknown>, stored: Record<string, unknown> | undefined): { kept: LaterSpecField[]; dropped: LaterSpecField[] } {
  const written = LATER_SPEC_FIELDS.filter((f) => sent[f] !== undefined);
  return { kept: written.filter((f) => stored?.[f] !== undefined), dropped: written.filter((f) => stored?.[f] === undefined) };
}

/**
 * What this process knows of each later field: dropped (its writes paused for `pauseMs` on the monotonic clock,
 * then one tries again, so a CRD applied since is noticed without a restart), kept by a write's answer (written
 * freely), or not known yet (one write of its own per plan: after the pause, or in a new leader, a whole plan of
 * them went out against the old schema, every record at once).
 */
export class SchemaDrops {
  private readonly until = new Map<LaterSpecField, number>();
  private readonly missing = new Set<LaterSpecField>();
  private readonly kept = new Set<LaterSpecField>();
  constructor(private readonly pauseMs = 10 * 60_000) {}

  /** Notes one write's answer; returns the dropped fields not already paused (the ones to report). */
  observe(answer: { kept: LaterSpecField[]; dropped: LaterSpecField[] }, now = performance.now()): LaterSpecField[] {
    for (const f of answer.kept) { this.missing.delete(f); this.until.delete(f); this.kept.add(f); }
    const fresh = answer.dropped.filter((f) => !this.paused(f, now));
    for (const f of answer.dropped) { this.missing.add(f); this.kept.delete(f); }
    for (const f of fresh) this.until.set(f, now + this.pauseMs);
    return fresh;
  }

  /** Whether the last write of the field saw it dropped (the gauge; it stays set through a pause). */
  isMissing(field: LaterSpecField): boolean {
    return this.missing.has(field);
  }

  /** Writes of their own allowed per field in one plan's actions (withinAllowance). */
  allowance(now = performance.now()): Record<LaterSpecField, number> {
    return Object.fromEntries(LATER_SPEC_FIELDS.map((f) => [f, this.paused(f, now) ? 0 : this.kept.has(f) ? Infinity : 1])) as Record<LaterSpecField, number>;
  }

  private paused(field: LaterSpecField, now: number): boolean {
    return (this.until.get(field) ?? -Infinity) > now;
  }
}

/** The later field an action writes on its own (a uid stamp; node IPs unchanged but their source), if any. */
export function laterFieldOnly(action: AllocationAction, plannedSpec: { nodeIPs?: string[] } | undefined): LaterSpecField | undefined {
  if (action.kind === "stampNodeUID") return "nodeUID";
  if (action.kind === "updateNodeIPs" && action.nodeIPsFrom && sameList(action.nodeIPs, plannedSpec?.nodeIPs ?? [])) return "nodeIPsFrom";
  return undefined;
}

/**
 * Pure: the actions to send, each later field's own writes cut to its allowance (SchemaDrops.allowance), in
 * order. Applied to the actions actually going out (after those waiting out a backoff are set aside): counted
 * in the planner, the one write allowed went to the same waiting record every plan, and no other was sent.
 */
export function withinAllowance<A extends AllocationAction>(actions: A[], allowance: Partial<Record<LaterSpecField, number>> | undefined,
  plannedSpec: (name: string) => { nodeIPs?: string[] } | undefined): A[] {
  if (!allowance) return actions;
  const left = { ...allowance };
  return actions.filter((a) => {
    const field = laterFieldOnly(a, "name" in a ? plannedSpec(a.name) : undefined);
    if (!field || left[field] === undefined) return true;
    left[field] -= 1;
    return left[field] >= 0;
  });
}
