import type { V1NodeCondition } from "@kubernetes/client-node";
import { kubeTime, type ConditionInput } from "../lib/conditions.js";
import { isNewerVersion } from "../lib/informer.js";
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
export function clearNetworkUnavailablePatch(current: Array<Pick<V1NodeCondition, "type" | "status">> | undefined, now: Date): object | undefined {
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

/** Without a watch of the Node, it is read again this many resync periods after a clear (5 min at the default 30 s). */
export const RECHECK_RESYNCS = 10;

/** What the agent's watch of its own Node shows: no such Node, or its version and NetworkUnavailable's status. */
export type WatchedNodeNetwork = "absent" | { resourceVersion?: string; networkUnavailable?: string };

/**
 * Clears the condition when this node can network pods, from what the watch of this node's Node shows
 * (node-identity.ts): no read of the Node, and a Node registered again (a cloud starts it NetworkUnavailable
 * again) is cleared at once. A read of the Node (kubelet-sized) on every resync of every agent would cost the API
 * server more than the condition is worth: without the watch (not listed yet, or versions that do not compare)
 * the Node is read, and after a clear read again only every RECHECK_RESYNCS resync periods. Retried at the resync
 * period after a failure.
 */
export class NetworkUnavailableClearer {
  cleared = false;
  /** Reads of the Node (tests): none while the watch shows it. */
  reads = 0;
  /**
   * Monotonic (performance.now()): a wall clock stepped back would put the next look off by the step. `retryAt`
   * holds any write back after a failure; `readAt` holds back the timed reads used without the watch. A change
   * the watch shows is acted on at once otherwise: a Node registered again after a 404, or set unavailable again
   * after a clear made by reading, waited for the read timer (a review: 30 s, and up to 5 minutes).
   */
  private retryAt = -Infinity;
  private readAt = -Infinity;
  /** The Node's resourceVersion after this agent's last clear: a watched view older than it predates the write. */
  private wroteAt?: string;
  constructor(private readonly api: KubeApi, private readonly nodeName: string, private readonly log: Logger,
    private readonly retryMs: number, private readonly onError: () => void,
    private readonly watched: () => WatchedNodeNetwork | undefined = () => undefined) {}

  /** After a pass: `conditions` are the agent's conditions from it; `signal` gives each API call its deadline. */
  async afterPass(conditions: ConditionInput[], signal?: () => AbortSignal): Promise<void> {
    if (!nodeNetworkReady(conditions)) return;
    const view = this.usable(this.watched());
    if (view === "absent") { this.cleared = false; return; } // the watch wakes a pass when the Node registers
    if (view === "written") return;
    if (view?.networkUnavailable === "False") { this.cleared = true; return; }
    const now = performance.now();
    if (now < this.retryAt || (!view && now < this.readAt)) return;
    if (!view) this.reads++;
    const { result, resourceVersion } = await clearOnce(this.api, this.nodeName, this.log, signal, view);
    if (result === "cut-off") return;
    this.cleared = result === "cleared" || result === "already-clear";
    if (resourceVersion) this.wroteAt = resourceVersion;
    // A Node gone (404) while watched: its next registration is a watch event, which wakes a pass.
    if (!view) this.readAt = performance.now() + this.retryMs * (this.cleared ? RECHECK_RESYNCS : 1);
    if (result === "failed") { this.retryAt = performance.now() + this.retryMs; this.onError(); }
  }

  /** The watched view if it can be acted on; "written" if it is older than this agent's clear; undefined: read. */
  private usable(view: WatchedNodeNetwork | undefined): WatchedNodeNetwork | "written" | undefined {
    if (view === undefined || view === "absent" || this.wroteAt === undefined) return view;
    if (view.resourceVersion === this.wroteAt || isNewerVersion(view.resourceVersion, this.wroteAt)) return view;
    return isNewerVersion(this.wroteAt, view.resourceVersion) ? "written" : undefined;
  }
}

/** Shell: read this node's Node and clear NetworkUnavailable if needed. Never throws: the result says what happened. */
export async function clearNetworkUnavailable(api: KubeApi, nodeName: string, log: Logger, signal?: () => AbortSignal): Promise<ClearResult> {
  return (await clearOnce(api, nodeName, log, signal)).result;
}

/** `seen`: the Node as watched (no read); without it the Node is read. Never throws. */
async function clearOnce(api: KubeApi, nodeName: string, log: Logger, signal?: () => AbortSignal,
  seen?: { networkUnavailable?: string }): Promise<{ result: ClearResult; resourceVersion?: string }> {
  let call: AbortSignal | undefined;
  const next = () => (call = signal?.());
  try {
    const conditions = seen
      ? seen.networkUnavailable === undefined ? [] : [{ type: NETWORK_UNAVAILABLE, status: seen.networkUnavailable }]
      : (await api.core.readNode({ name: nodeName }, withSignal(next()))).status?.conditions;
    const patch = clearNetworkUnavailablePatch(conditions, new Date());
    if (!patch) return { result: "already-clear" };
    const node = await api.core.patchNodeStatus({ name: nodeName, body: patch, fieldManager: api.fieldManager }, strategicMergePatch(withSignal(next())));
    log.info({ node: nodeName, condition: NETWORK_UNAVAILABLE, reason: PODNET_IS_UP }, "node network is up: NetworkUnavailable=False");
    return { result: "cleared", resourceVersion: node.metadata?.resourceVersion };
  } catch (err) {
    if (isNotFound(err)) return { result: "node-not-found" };
    if (cutOffByStop(call)) { log.debug({ node: nodeName }, "clearing the Node's NetworkUnavailable condition cut off by the agent's stop"); return { result: "cut-off" }; }
    log.warn({ node: nodeName, err: apiMessage(err) }, "could not clear the Node's NetworkUnavailable condition; retrying at the next resync");
    return { result: "failed" };
  }
}
