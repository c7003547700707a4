import type { V1Node } from "@kubernetes/client-node";
import type { NodeCidrSpec, NodeCidrStatus } from "../crds/nodecidr.js";
import type { PoolSpec } from "../crds/pool.js";
import type { ControllerConfig } from "../config.js";
import type { PlannerNode, PlannerPool, PlannerRecord } from "./plan.js";
import { CONFIGURED_CIDRS_ANNOTATION, configuredSpec, type ConfiguredPool } from "./default-pool.js";
import { POD_CIDR_CONDITION } from "./plan-node-condition.js";
import { canonicalCidrOrText } from "../lib/cidr.js";
import { nodeHostIPs } from "./plan-node-ips.js";

/** Pure mappings from API objects to the planner's inputs. */

export interface NodeCidrObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; uid?: string; resourceVersion?: string; generation?: number; creationTimestamp?: string | Date; labels?: Record<string, string> };
  spec: NodeCidrSpec;
  status?: NodeCidrStatus;
}

export interface PoolObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; uid?: string; generation?: number; resourceVersion?: string; creationTimestamp?: string | Date; annotations?: Record<string, string> };
  spec: PoolSpec;
  status?: Record<string, unknown>;
}

/**
 * The part of a Node the controller reads. Kubelet's status (images, conditions, capacity, nodeInfo) is
 * most of a Node's bytes and most of its updates; the controller's cache holds and wakes on this part only.
 */
export function nodeProjection(node: V1Node): V1Node {
  const { name, uid, resourceVersion, labels, creationTimestamp, deletionTimestamp } = node.metadata ?? {};
  return {
    metadata: { name, uid, resourceVersion, labels, creationTimestamp, deletionTimestamp },
    spec: { podCIDR: node.spec?.podCIDR, podCIDRs: node.spec?.podCIDRs },
    status: {
      addresses: (node.status?.addresses ?? []).filter((a) => a.type === "InternalIP" || a.type === "ExternalIP"),
      // How many pods kubelet admits (--max-pods): a slice with fewer addresses strands the rest.
      ...(node.status?.capacity?.pods ? { capacity: { pods: node.status.capacity.pods } } : {}),
      // podnet's own condition only: kubelet's change with every heartbeat.
      ...(node.status?.conditions?.some((c) => c.type === POD_CIDR_CONDITION) ? { conditions: node.status.conditions.filter((c) => c.type === POD_CIDR_CONDITION) } : {}),
    },
  };
}

export function plannerNode(node: V1Node): PlannerNode {
  return {
    name: node.metadata!.name!,
    uid: node.metadata?.uid ?? "",
    labels: node.metadata?.labels ?? {},
    // The API server keeps them as written ("FD00:10:244:1::/64") and records hold the canonical text: compared
    // as written, a Node's own range looked held by someone else. Unparsable ones stay for the planner to report.
    podCIDRs: (node.spec?.podCIDRs ?? (node.spec?.podCIDR ? [node.spec.podCIDR] : [])).map(canonicalCidrOrText),
    ...nodeHostIPs(node.status?.addresses ?? []),
    deleting: Boolean(node.metadata?.deletionTimestamp),
    ...maxPodsOf(node.status?.capacity?.pods),
    ...createdAt(node.metadata?.creationTimestamp),
    ...podCidrConditionOf(node),
  };
}

function podCidrConditionOf(node: V1Node): Pick<PlannerNode, "podCidrCondition"> {
  const c = node.status?.conditions?.find((x) => x.type === POD_CIDR_CONDITION);
  if (!c || (c.status !== "True" && c.status !== "False")) return {};
  const lastTransitionTime = c.lastTransitionTime ? new Date(c.lastTransitionTime).toISOString() : undefined;
  return { podCidrCondition: { status: c.status, reason: c.reason ?? "", message: c.message ?? "", ...(lastTransitionTime ? { lastTransitionTime } : {}) } };
}

/**
 * A record as the planner reads it. `releaseSeenAt`: when this replica first saw its release (see releaseState),
 * on its monotonic clock.
 */
export function plannerRecord(obj: NodeCidrObject, releaseSeenAt?: number): PlannerRecord {
  const releasedAt = obj.status?.releasedAt ? Date.parse(obj.status.releasedAt) : undefined;
  return {
    name: obj.metadata!.name!,
    nodeName: obj.spec.nodeName,
    cidr: obj.spec.cidr,
    family: obj.spec.family === "IPv6" ? 6 : 4,
    pool: obj.spec.pool,
    nodeIPs: obj.spec.nodeIPs ?? [],
    ...(obj.spec.nodeIPsFrom ? { nodeIPsFrom: obj.spec.nodeIPsFrom } : {}),
    ...(obj.spec.nodeUID ? { nodeUID: obj.spec.nodeUID } : {}),
    ...createdAt(obj.metadata?.creationTimestamp),
    phase: obj.status?.phase,
    allocatedReason: obj.status?.conditions?.find((c) => c.type === "Allocated")?.reason,
    ...((obj.metadata?.generation ?? 0) > (obj.status?.observedGeneration ?? Infinity) ? { statusBehind: true } : {}),
    ...(releasedAt !== undefined && !Number.isNaN(releasedAt) ? { releasedAt } : {}),
    ...(releaseSeenAt !== undefined ? { releaseSeenAt } : {}),
  };
}

/**
 * Which release a Released record is in: its uid and releasedAt (a release stamped again, or a record of that
 * name made anew, is another). A status write on the record, an agent's condition, leaves it the same.
 */
export function releaseState(obj: NodeCidrObject): string | undefined {
  return obj.status?.phase === "Released" ? `${obj.metadata?.uid ?? ""}@${obj.status.releasedAt ?? ""}` : undefined;
}

export function plannerPool(obj: PoolObject): PlannerPool {
  return {
    name: obj.metadata!.name!,
    nodeSelector: obj.spec.nodeSelector ?? {},
    ...createdAt(obj.metadata?.creationTimestamp),
    ...(obj.spec.ipv4 ? { v4: { cidrs: obj.spec.ipv4.cidrs, nodePrefix: obj.spec.ipv4.nodeMaskSize } } : {}),
    ...(obj.spec.ipv6 ? { v6: { cidrs: obj.spec.ipv6.cidrs, nodePrefix: obj.spec.ipv6.nodeMaskSize } } : {}),
  };
}

/** The default pool as the controller's flags describe it. */
export function configuredPool(config: ControllerConfig): ConfiguredPool {
  return {
    v4: config["cluster-cidr"].filter((c) => !c.includes(":")), v6: config["cluster-cidr"].filter((c) => c.includes(":")),
    maskV4: config["node-mask-v4"], maskV6: config["node-mask-v6"],
  };
}

/**
 * The PodCIDRPool the controller creates from its flags when none of that name exists: `spec` as planned
 * (without ranges other pools hold), the annotation naming every configured range.
 */
export function defaultPool(config: ControllerConfig, spec?: PoolSpec): PoolObject {
  const { v4, v6 } = configuredPool(config);
  return {
    apiVersion: "podnet.io/v1alpha1",
    kind: "PodCIDRPool",
    metadata: { name: config["default-pool"], annotations: { [CONFIGURED_CIDRS_ANNOTATION]: [...v4, ...v6].join(",") } },
    spec: spec ?? configuredSpec(configuredPool(config)),
  };
}

/** A creationTimestamp as it arrives (a Date from the client, a string from a watch) in ms, if it parses. */
function createdAt(stamp: Date | string | undefined): { createdAt?: number } {
  const ms = stamp === undefined ? NaN : new Date(stamp).getTime();
  return Number.isNaN(ms) ? {} : { createdAt: ms };
}

/** Node capacity "pods" ("110"), if it is a plain count. */
function maxPodsOf(pods: string | undefined): { maxPods?: number } {
  return pods !== undefined && /^\d+$/.test(pods) ? { maxPods: Number(pods) } : {};
}
