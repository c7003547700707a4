/**
 * NodeCIDR spec fields the API server's CRD does not know. An upgrade that skipped `kubectl apply` of the chart's
 * crds/ (helm upgrade leaves them as they were) serves the old schema, which prunes a newer field from every
 * write without an error: planned again and again from a record that never gains it, each write came back in
 * every plan (6,837 uid stamps in 30 s at 210 Nodes in the review).
 */

/** Fields the controller writes that an older NodeCIDR schema may lack (the planner's writes of them are paused). */
export type LaterSpecField = "nodeUID" | "nodeIPsFrom";
const LATER_FIELDS: readonly LaterSpecField[] = ["nodeUID", "nodeIPsFrom"];

export const LATER_SPEC_FIELDS = LATER_FIELDS;

/** Pure: of the later fields a write sent, those the object it got back keeps and those it lacks. */
export function laterFieldsAnswered(sent: Record<string, unknown>, stored: Record<string, unknown> | undefined): { kept: LaterSpecField[]; dropped: LaterSpecField[] } {
  const written = LATER_FIELDS.filter((f) => sent[f] !== undefined);
  return { kept: written.filter((f) => stored?.[f] !== undefined), dropped: written.filter((f) => stored?.[f] === undefined) };
}

/**
 * Fields seen dropped, each paused for `pauseMs` (monotonic clock): then one write tries it again, so a CRD
 * applied since is noticed without a restart, at the cost of one dropped write per field per pause.
 */
export class SchemaDrops {
  private readonly until = new Map<LaterSpecField, number>();
  private readonly missing = new Set<LaterSpecField>();
  constructor(private readonly pauseMs = 10 * 60_000) {}

  /** Notes one write's answer; returns the dropped fields not already paused (the ones to report). */
  observe(answer: { kept: LaterSpecField[]; dropped: LaterSpecField[] }, now = performance.now()): LaterSpecField[] {
    for (const f of answer.kept) { this.missing.delete(f); this.until.delete(f); }
    const fresh = answer.dropped.filter((f) => !this.paused(f, now));
    for (const f of answer.dropped) this.missing.add(f);
    for (const f of fresh) this.until.set(f, now + this.pauseMs);
    return fresh;
  }

  /** Whether the last write of the field saw it dropped (the gauge; it stays set through a pause). */
  isMissing(field: LaterSpecField): boolean {
    return this.missing.has(field);
  }

  paused(field: LaterSpecField, now = performance.now()): boolean {
    return (this.until.get(field) ?? -Infinity) > now;
  }

  /** The fields whose writes are paused now. */
  current(now = performance.now()): LaterSpecField[] {
    return LATER_FIELDS.filter((f) => this.paused(f, now));
  }
}
