import { familyOfText, formatCidr, tryParseCidr } from "../lib/cidr.js";
import type { AllocationAction, Held, PlannerNode } from "./plan.js";

/**
 * A Node condition for what keeps podnet from using a Node's pod range (the "condition + Event" for a
 * conflicting podCIDRs): Events expire after an hour, the condition stays on `kubectl describe node` until
 * the cause goes. Written only for Nodes that have or had such a problem: a healthy Node costs no write.
 */
export const POD_CIDR_CONDITION = "PodCIDRConflict";

/**
 * Reasons of the planner's `conflict` actions that concern the Node's pod range (not its addresses), root causes
 * first: the condition's reason (and its message's lead) is the first a Node has. A Node whose preset podCIDRs lie
 * outside every pool also lacks the pool's other family there (PodCIDRFamilyMissing: the field cannot be set
 * again); the preset range is what to fix.
 */
const POD_CIDR_REASONS = ["NoPodCIDRPool", "PodCIDRInvalid", "PodCIDROutsidePool", "PodCIDRConflict", "PodCIDRMismatch", "PodCIDRFamilyMissing"];
const rootCauseFirst = (a: { reason: string }, b: { reason: string }) => POD_CIDR_REASONS.indexOf(a.reason) - POD_CIDR_REASONS.indexOf(b.reason);

/** lastHeartbeatTime: when podnet last wrote the condition (kubectl describe node shows year 1 without one). */
export interface NodeConditionState { status: "True" | "False"; reason: string; message: string; lastTransitionTime?: string; lastHeartbeatTime?: string }

export const RESOLVED = { reason: "NoConflict", message: "podnet uses this Node's pod CIDRs" } as const;

/** Pure: the condition changes this plan calls for, from its conflicts and each Node's current condition. */
export function podCidrConditionActions(nodes: Iterable<PlannerNode>, actions: AllocationAction[], now: number): AllocationAction[] {
  const problems = new Map<string, Array<{ reason: string; message: string }>>();
  for (const a of actions) {
    if (a.kind !== "conflict" || !POD_CIDR_REASONS.includes(a.reason)) continue;
    problems.set(a.node, [...(problems.get(a.node) ?? []), a]);
  }
  const out: AllocationAction[] = [];
  for (const node of nodes) {
    const current = node.podCidrCondition;
    const problem = problems.get(node.name)?.sort(rootCauseFirst);
    const wanted: NodeConditionState | undefined = problem
      ? { status: "True", reason: problem[0]!.reason, message: problem.map((p) => p.message).join("; ") }
      : current?.status === "True" ? { status: "False", ...RESOLVED } : undefined;
    if (!wanted || (current && current.status === wanted.status && current.reason === wanted.reason && current.message === wanted.message)) continue;
    const lastTransitionTime = current?.status === wanted.status && current.lastTransitionTime ? current.lastTransitionTime : new Date(now).toISOString();
    out.push({ kind: "nodeCondition", node: node.name, ...wanted, lastTransitionTime, lastHeartbeatTime: new Date(now).toISOString() });
  }
  return out;
}

/**
 * A Node whose spec.podCIDRs names another range than the one podnet holds for it in that family: a second
 * allocator (kube-controller-manager with --allocate-node-cidrs) won a race for a joining Node. kubelet and
 * kube-proxy follow spec.podCIDRs, podnet's routes follow the NodeCIDR, and the field cannot be changed.
 */
export function podCidrMismatches(node: PlannerNode, mine: Held[], filling: boolean): AllocationAction[] {
  return mine.flatMap((h): AllocationAction[] => {
    const preset = node.podCIDRs.find((c) => familyOfText(c) === h.family);
    // A family added to the pool (or a pool of two families taking over) after the field was set: it cannot be
    // set again. Said only where podnet fills the field; otherwise another component owns it.
    if (preset === undefined && filling && node.podCIDRs.length > 0) {
      return [{ kind: "conflict" as const, node: node.name, reason: "PodCIDRFamilyMissing", message: `node ${node.name} holds ${h.cidr}, but its `
        + `spec.podCIDRs (${node.podCIDRs.join(", ")}) was set before and cannot be changed: pods get ${h.cidr} from podnet's CNI config, while `
        + `kube-proxy (--detect-local-mode=NodeCIDR) and other readers of the field see no IPv${h.family} range; delete the Node so it registers again` }];
    }
    const presetCidr = preset === undefined ? undefined : tryParseCidr(preset);
    if (!presetCidr || formatCidr(presetCidr) === h.cidr) return [];
    return [{ kind: "conflict" as const, node: node.name, reason: "PodCIDRMismatch", message: `node ${node.name} has spec.podCIDRs ${preset}, but podnet `
      + `allocated it ${h.cidr}: another allocator set the field (kube-controller-manager --allocate-node-cidrs?). kubelet and kube-proxy use `
      + `${preset}, podnet's routes ${h.cidr}; turn the other allocator off and delete the Node so it registers again` }];
  });
}
