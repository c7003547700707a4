import type { AllocationAction } from "./plan.js";

/**
 * Why the planner reports a Node (its `conflict` actions). A closed set: it labels the gauge
 * podnet_nodes_in_conflict, so a new reason must be added here (the compiler holds the planner to it).
 * The first four leave the Node without a pod CIDR: no CNI config on it, NotReady until the cause goes.
 */
export const NODE_CONFLICT_REASONS = [
  "PodCIDRConflict", "PodCIDROutsidePool", "PodCIDRInvalid", "NoPodCIDRPool",
  "PodCIDRMismatch", "PodCIDRFamilyMissing", "DuplicateNodeIP", "UnusableNodeIP", "NodeInternalIPsGone",
] as const;
export type NodeConflictReason = (typeof NODE_CONFLICT_REASONS)[number];

/**
 * Pure: how many Nodes one plan finds in conflict, per reason, every reason present (0 when none): a level,
 * where counting the actions told how often the controller planned (a lasting conflict is in every plan, and
 * a Node with both families in conflict has two actions).
 */
export function nodesInConflict(actions: readonly AllocationAction[]): Record<NodeConflictReason, number> {
  const nodes = new Map<NodeConflictReason, Set<string>>(NODE_CONFLICT_REASONS.map((r) => [r, new Set()]));
  for (const a of actions) if (a.kind === "conflict") nodes.get(a.reason)!.add(a.node);
  return Object.fromEntries([...nodes].map(([reason, names]) => [reason, names.size])) as Record<NodeConflictReason, number>;
}
