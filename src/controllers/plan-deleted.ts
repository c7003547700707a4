import { familyOfText, tryParseCidr, type IpFamily } from "../lib/cidr.js";
import { sooner } from "../lib/order.js";
import { hold } from "./plan-pools.js";
import type { PoolStates } from "./pool-states.js";
import type { AllocationAction, Held, PlannerNode, PlannerRecord } from "./plan.js";

/**
 * A NodeCIDR the controller saw deleted while it was Allocated. The controller deletes only Released records
 * (after their cooldown), so this one went by hand (`kubectl delete nodecidr`) or by a tool. Kept in memory
 * through one cooldown from the deletion; a controller that restarts meanwhile forgets it.
 */
export interface DeletedRecord {
  record: PlannerRecord;
  /** When this replica saw the deletion, on its monotonic clock (PlannerInput.monotonicNow's). */
  deletedAt: number;
}

/**
 * Pure: whether a record was made for this Node object, not for an earlier Node of its name: by its nodeUID,
 * or, for a record from before podnet kept it, by age: a record older than its Node object (by more than the
 * clock skew HA API servers may have) was made before that Node registered.
 */
export function recordOfThisNode(node: PlannerNode, r: PlannerRecord): boolean {
  if (r.nodeUID) return !node.uid || r.nodeUID === node.uid;
  return node.createdAt === undefined || r.createdAt === undefined || node.createdAt <= r.createdAt + REGISTRATION_SKEW_MS;
}
const REGISTRATION_SKEW_MS = 2_000;

/** A deleted record's CIDR meant to go back to its node, and when (monotonic clock) its cooldown ends if it does not. */
export interface Lost { cidr: string; family: IpFamily; due: number }

interface Context {
  /** Nodes that may be allocated (present, not being deleted). */
  nodes: Map<string, PlannerNode>;
  held: Map<string, Held[]>;
  states: PoolStates;
  holderOf: Map<string, string>;
  /** CIDRs some live record names: a deleted record of the same CIDR made again is that record's business. */
  liveCidrs: Set<string>;
  cooldownMs: number;
  /** This replica's monotonic clock, as deletedAt. */
  monotonicNow: number;
}

/**
 * Pure: what hand-deleted records still claim. Their node's pods keep addresses from the CIDR, and other
 * agents may still route to it. So a node that is still there and holds no other CIDR of that family gets the
 * same CIDR back (`restore`) when its spec.podCIDRs names that range or none of the family (with
 * fill-node-podcidrs it names it). The restore pass runs before the adoptions, as if the record were still
 * there: another Node naming the range (a second allocator) is in conflict with it, whatever the names' order.
 * Any other such CIDR waits out the cooldown from the deletion, as a released one does.
 */
export function claimsOfDeleted(deleted: DeletedRecord[], ctx: Context): { restore: Map<string, Lost[]>; nextCheckAt?: number } {
  const restore = new Map<string, Lost[]>();
  let nextCheckAt: number | undefined;
  for (const { record: r, deletedAt } of deleted) {
    const due = deletedAt + ctx.cooldownMs;
    if (due <= ctx.monotonicNow || ctx.liveCidrs.has(r.cidr)) continue;
    const cidr = tryParseCidr(r.cidr);
    if (!cidr) continue;
    const node = ctx.nodes.get(r.nodeName);
    const sameNode = node !== undefined && recordOfThisNode(node, r);
    const named = node?.podCIDRs.find((c) => familyOfText(c) === cidr.family);
    const holdsFamily = (ctx.held.get(r.nodeName) ?? []).some((h) => h.family === cidr.family);
    if (sameNode && (named === undefined || named === r.cidr) && !holdsFamily && !restore.get(r.nodeName)?.some((l) => l.family === cidr.family)) {
      restore.set(r.nodeName, [...(restore.get(r.nodeName) ?? []), { cidr: r.cidr, family: cidr.family, due }]);
      continue;
    }
    if (sameNode && named === r.cidr) continue; // its Node names it: reserved with the ranges Nodes name
    hold(ctx.states, cidr, r.nodeName, ctx.holderOf);
    nextCheckAt = sooner(nextCheckAt, due);
  }
  return { restore, ...(nextCheckAt !== undefined ? { nextCheckAt } : {}) };
}

/**
 * Pure, after the restore pass: a CIDR that did not go back (the pool no longer selects the node, its node
 * mask changed, a record made over it) waits out its cooldown as any other. One its Node names is reserved
 * as such, and the adoption pass says why it is not taken. Returns the earliest end.
 */
export function holdUnrestored(lost: Lost[], restored: AllocationAction[], node: PlannerNode, states: PoolStates, holderOf: Map<string, string>): number | undefined {
  let due: number | undefined;
  for (const l of lost) {
    if (node.podCIDRs.includes(l.cidr) || restored.some((a) => a.kind === "create" && a.cidr === l.cidr)) continue;
    hold(states, tryParseCidr(l.cidr)!, node.name, holderOf);
    due = sooner(due, l.due);
  }
  return due;
}
