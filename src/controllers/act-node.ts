// The controller's writes to Node objects (act.ts performs every other action).
import { apiCauseFields, apiStatus, isNotFound, mergePatch, strategicMergePatch } from "../lib/k8s.js";
import type { ActContext } from "./act.js";
import type { AllocationAction } from "./plan.js";
import { POD_CIDR_CONDITION } from "./plan-node-condition.js";

export async function patchNodePodCidrs(ctx: ActContext, action: Extract<AllocationAction, { kind: "setNodePodCIDRs" }>): Promise<void> {
  const { node, nodeUID, cidrs } = action;
  ctx.metrics.apiWrites.inc({ action: "setNodePodCIDRs" });
  // The uid is a precondition: a Node deleted and registered again since the plan gets nothing from this one
  // (podCIDRs cannot be changed once set, and its predecessor's CIDR is about to be released).
  const body = { ...(nodeUID ? { metadata: { uid: nodeUID } } : {}), spec: { podCIDR: cidrs[0], podCIDRs: cidrs } };
  try {
    ctx.nodes.assume(await ctx.api.core.patchNode({ name: node, body, fieldManager: ctx.api.fieldManager }, mergePatch()));
  } catch (err) {
    if (goneSincePlan(ctx, err, node, "node.spec.podCIDRs")) return;
    // The API server answers a patch naming another uid with 422, its cause the field metadata.uid (immutable).
    if (apiStatus(err) !== 422 || !apiCauseFields(err).includes("metadata.uid")) throw err;
    ctx.log.info({ node }, "node.spec.podCIDRs not filled: the Node was registered again since the plan");
    return;
  }
  ctx.log.info({ node, podCIDRs: cidrs }, "node.spec.podCIDRs filled");
}

/** podnet's own Node condition; a strategic merge by type leaves kubelet's conditions as they are. */
export async function patchNodeCondition(ctx: ActContext, action: Extract<AllocationAction, { kind: "nodeCondition" }>): Promise<void> {
  const { node, kind: _kind, ...condition } = action;
  ctx.metrics.apiWrites.inc({ action: "nodeCondition" });
  const body = { status: { conditions: [{ type: POD_CIDR_CONDITION, ...condition }] } };
  let updated;
  try {
    updated = await ctx.api.core.patchNodeStatus({ name: node, body, fieldManager: ctx.api.fieldManager }, strategicMergePatch());
  } catch (err) {
    if (goneSincePlan(ctx, err, node, POD_CIDR_CONDITION)) return;
    throw err;
  }
  ctx.nodes.assume(updated);
  ctx.log.info({ node, condition: POD_CIDR_CONDITION, status: condition.status, reason: condition.reason }, "node condition set");
}

/**
 * A Node deleted since the plan (autoscaler and spot nodes come and go in seconds) is no failed write: its delete
 * event brings a plan without it. Counted as an error it fed PodnetControllerWriteErrors and was retried for nothing.
 */
function goneSincePlan(ctx: ActContext, err: unknown, node: string, what: string): boolean {
  if (!isNotFound(err)) return false;
  ctx.log.info({ node }, `${what} not written: the Node was deleted since the plan`);
  return true;
}
