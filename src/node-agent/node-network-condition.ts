import type { V1NodeCondition } from "@kubernetes/client-node";
import { kubeTime, type ConditionInput } from "../lib/conditions.js";
import { apiMessage, cutOffByStop, isNotFound, strategicMergePatch, withSignal, type KubeApi } from "../lib/k8s.js";
import type { Logger } from "../log.js";
import { BRIDGE_NETFILTER_OFF, REVERSE_PATH_STRICT } from "./report.js";

/**
 * The Node condition `NetworkUnavailable` is the network plugin's to clear. Clouds with a route controller
 * (GCE) start every Node with it True, and the node-lifecycle controller then taints the Node
 * `node.kubernetes.io/network-unavailable:NoSchedule` until the network plugin says otherwise; elsewhere the
 * condition is simply absent. podnet clears it once this node can network pods, as Calico and Cilium do.
 * It never sets it True: a taint for a passing failure (an API outage, a full disk) would stop scheduling on
 * every node at once, while the NodeCIDR conditions already say what is wrong.
 */
export const NETWORK_UNAVAILABLE = "NetworkUnavailable";
export const PODNET_IS_UP = "PodnetIsUp";

/**
 * Pure: whether this node can network pods, from the agent's own conditions. The CNI config must be podnet's
 * and in place, forwarding on and the route sync working; a conflict or an unreachable peer affects only
 * those peers' pods, not this node's, br_netfilter being off only same-node Services, and strict reverse-path
 * filtering only pods of nodes that see this one differently (reported, not held against the node: a NoSchedule
 * taint would be worse).
 */
export function nodeNetworkReady(conditions: ConditionInput[]): boolean {
  const of = (type: string) => conditions.find((c) => c.type === type);
  const sysctls = of("SysctlsReady");
  return of("CNIConfigured")?.status === "True" && (sysctls?.status === "True" || sysctls?.reason === BRIDGE_NETFILTER_OFF || sysctls?.reason === REVERSE_PATH_STRICT)
    && of("RoutesProgrammed") !== undefined && of("RoutesProgrammed")!.reason !== "RouteSyncFailed";
}

/**
 * Pure: the nodes/status strategic-merge patch that clears NetworkUnavailable, or undefined when nothing is
 * to be written (it is already False, whoever cleared it: rewriting it would only move its times).
 * Conditions merge by type, so kubelet's own conditions are left as they are.
 */
export function clearNetworkUnavailablePatch(current: V1NodeCondition[] | undefined, now: Date): object | undefined {
  if (current?.find((c) => c.type === NETWORK_UNAVAILABLE)?.status === "False") return undefined;
  const time = kubeTime(now);
  return { status: { conditions: [{
    type: NETWORK_UNAVAILABLE, status: "False", reason: PODNET_IS_UP,
    message: "podnet agent has written this node's CNI config and programmed its routes",
    lastTransitionTime: time, lastHeartbeatTime: time,
  }] } };
}

/** "cut-off": a stop ended the call (no failure: the next agent clears it). */
export type ClearResult = "cleared" | "already-clear" | "node-not-found" | "failed" | "cut-off";

/** After a clear, the Node is looked at again this many resync periods later (5 min at the default 30 s). */
export const RECHECK_RESYNCS = 10;

/**
 * Clears the condition when this node can network pods. A read of the Node (kubelet-sized) on every resync of
 * every agent would cost the API server more than the condition is worth, so after a clear the Node is read
 * again only every RECHECK_RESYNCS resync periods: a Node deleted and registered again under this name (a
 * cloud starts it NetworkUnavailable again) while this agent runs would otherwise keep its taint until the
 * agent restarts. Retried at the resync period after a failure, or while the Node does not exist.
 */
export class NetworkUnavailableClearer {
  cleared = false;
  /** Monotonic (performance.now()): a wall clock stepped back would put the next look off by the step. */
  private checkAt = -Infinity;
  constructor(private readonly api: KubeApi, private readonly nodeName: string, private readonly log: Logger,
    private readonly retryMs: number, private readonly onError: () => void) {}

  /** After a pass: `conditions` are the agent's conditions from it; `signal` gives each API call its deadline. */
  async afterPass(conditions: ConditionInput[], signal?: () => AbortSignal): Promise<void> {
    if (performance.now() < this.checkAt || !nodeNetworkReady(conditions)) return;
    const result = await clearNetworkUnavailable(this.api, this.nodeName, this.log, signal);
    if (result === "cut-off") return;
    this.cleared = result === "cleared" || result === "already-clear";
    this.checkAt = performance.now() + this.retryMs * (this.cleared ? RECHECK_RESYNCS : 1);
    if (result === "failed") this.onError();
  }
}

/** Shell: read this node's Node and clear NetworkUnavailable if needed. Never throws: the result says what happened. */
export async function clearNetworkUnavailable(api: KubeApi, nodeName: string, log: Logger, signal?: () => AbortSignal): Promise<ClearResult> {
  let call: AbortSignal | undefined;
  const next = () => (call = signal?.());
  try {
    const node = await api.core.readNode({ name: nodeName }, withSignal(next()));
    const patch = clearNetworkUnavailablePatch(node.status?.conditions, new Date());
    if (!patch) return "already-clear";
    await api.core.patchNodeStatus({ name: nodeName, body: patch, fieldManager: api.fieldManager }, strategicMergePatch(withSignal(next())));
    log.info({ node: nodeName, condition: NETWORK_UNAVAILABLE, reason: PODNET_IS_UP }, "node network is up: NetworkUnavailable=False");
    return "cleared";
  } catch (err) {
    if (isNotFound(err)) return "node-not-found";
    if (cutOffByStop(call)) { log.debug({ node: nodeName }, "clearing the Node's NetworkUnavailable condition cut off by the agent's stop"); return "cut-off"; }
    log.warn({ node: nodeName, err: apiMessage(err) }, "could not clear the Node's NetworkUnavailable condition; retrying at the next resync");
    return "failed";
  }
}
