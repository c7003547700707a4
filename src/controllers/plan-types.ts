// The allocation planner's input and output (plan.ts), apart from its rules.
import type { IpFamily } from "../lib/cidr.js";
import type { NodeIPSource } from "../crds/nodecidr.js";
import type { NodeConflictReason } from "./node-conflicts.js";
import type { DeletedRecord } from "./plan-deleted.js";
import type { NodeConditionState } from "./plan-node-condition.js";
import type { PlannerPool, PoolStatusReport } from "./plan-pools.js";

export interface PlannerNode {
  name: string; uid: string; labels: Record<string, string>; podCIDRs: string[]; nodeIPs: string[]; deleting: boolean;
  /** The address type nodeIPs are (none when it lists neither). */
  nodeIPsFrom?: NodeIPSource;
  /** When the object was created (ms): tells whether a record without a nodeUID was made for it. */
  createdAt?: number;
  /** Pods kubelet admits on it (status.capacity.pods). */
  maxPods?: number;
  /** podnet's own Node condition (POD_CIDR_CONDITION), when the Node has one. */
  podCidrCondition?: NodeConditionState;
}
export interface PlannerRecord {
  name: string; nodeName: string; cidr: string; family: IpFamily; pool: string; nodeIPs: string[];
  /** The Node address type nodeIPs were mirrored from (records written before it was kept have none). */
  nodeIPsFrom?: NodeIPSource;
  /** The Node object it was made for (records from before podnet kept it have none: any Node of that name). */
  nodeUID?: string;
  createdAt?: number;
  phase: "Allocated" | "Released" | "Quarantined" | undefined;
  /** When the release was stamped, on the wall clock of the replica that released it: shown, nothing is timed by it. */
  releasedAt?: number;
  /**
   * Released: when this replica first saw this release, on its monotonic clock (PlannerInput.monotonicNow's).
   * Undefined: seen only now. The cooldown runs from here, never from releasedAt.
   */
  releaseSeenAt?: number;
  /** Reason of the controller's Allocated condition: tells a retained record (see RETAINED) from a plain one. */
  allocatedReason?: string;
  /** Its spec changed since the controller's status was written (a node-IP or uid patch): observedGeneration lags. */
  statusBehind?: boolean;
}
export interface PlannerConfig {
  cooldownMs: number; serviceCIDRs: string[]; fillNodePodCIDRs: boolean;
}
export interface PlannerInput {
  nodes: PlannerNode[]; records: PlannerRecord[]; pools: PlannerPool[]; config: PlannerConfig;
  /** Wall clock (ms since the epoch): only stamps times the plan writes into objects (a condition's lastTransitionTime). */
  now: number;
  /**
   * This replica's monotonic clock (ms; performance.now()), on which every wait is timed: cooldowns from when this
   * replica saw the release or the deletion. Wall clocks differ between replicas and step (NTP, an operator);
   * a successor's clock ahead of its predecessor's ended a cooldown the moment it took over. nextCheckAt is on it.
   */
  monotonicNow: number;
  /** Allocated records seen deleted (by hand: the controller deletes only Released ones), kept through the cooldown. */
  deleted?: DeletedRecord[];
}

export type AllocationAction =
  | { kind: "create"; node: string; nodeUID: string; cidr: string; family: IpFamily; pool: string; nodeIPs: string[]; nodeIPsFrom?: NodeIPSource; adopted: boolean; restored?: true }
  | { kind: "confirm"; name: string; node: string; cidr: string; pool: string }
  | { kind: "refreshStatus"; name: string }
  | { kind: "release"; name: string; nodeName: string }
  | { kind: "delete"; name: string }
  | { kind: "quarantine"; name: string; reason: string; message: string }
  | { kind: "retain"; name: string; reason: string; message: string }
  | { kind: "rehome"; name: string; node: string; cidr: string; from: string; pool: string }
  | { kind: "conflict"; node: string; reason: NodeConflictReason; message: string }
  | { kind: "exhausted"; node: string; pool: string; family: IpFamily; reason: "PodCIDRNotAvailable"; message: string }
  | { kind: "updateNodeIPs"; name: string; nodeIPs: string[]; nodeIPsFrom?: NodeIPSource }
  | { kind: "stampNodeUID"; name: string; nodeUID: string }
  | { kind: "setNodePodCIDRs"; node: string; nodeUID: string; cidrs: string[] }
  | ({ kind: "nodeCondition"; node: string; lastTransitionTime: string } & Omit<NodeConditionState, "lastTransitionTime">);

export interface AllocationPlan {
  actions: AllocationAction[];
  poolStatuses: PoolStatusReport[];
  /** Earliest time (PlannerInput.monotonicNow's clock) a released CIDR's cooldown ends: replan then even if nothing else happens. */
  nextCheckAt?: number;
  /** Allocated records kept although no valid pool range covers them any more (see RETAINED). */
  retained: number;
}

export interface Held { cidr: string; family: IpFamily }
