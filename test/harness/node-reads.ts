import { readdirSync, readlinkSync } from "node:fs";
import type { KubeApi } from "../../src/lib/k8s.js";
import { ipJson } from "../../src/localcluster/netbed.js";

/** podnet's routes (protocol 249) in a node namespace, as "dst via gateway", sorted. */
export const ownRoutes = (ns: string, family: "-4" | "-6" = "-4") =>
  ipJson<Array<{ dst: string; gateway?: string }>>(ns, family, "route", "show", "proto", "249").map((r) => `${r.dst} via ${r.gateway}`).sort();

/** The gateways of podnet's nexthop objects in a node namespace, sorted. */
export const ownNexthops = (ns: string) => ipJson<Array<{ gateway: string }>>(ns, "nexthop", "show", "proto", "249").map((n) => n.gateway).sort();

/** A Node as a cloud with a route controller registers it: NetworkUnavailable=True until the network plugin clears it. */
export const createNodeMarkedUnavailable = (api: KubeApi, name: string) => api.core.createNode({ body: { metadata: { name }, status: { conditions: [
  { type: "NetworkUnavailable", status: "True", reason: "NoRouteCreated", message: "set by the cloud's route controller", lastTransitionTime: new Date() },
] } } });

export const networkUnavailableOf = async (api: KubeApi, name: string) =>
  (await api.core.readNodeStatus({ name })).status?.conditions?.find((c) => c.type === "NetworkUnavailable");

/** The processes that have the file open, as fuser(1) finds them (not every host has fuser). */
export function processesWithOpen(path: string): number[] {
  const opens = (pid: string) => {
    try { return readdirSync(`/proc/${pid}/fd`).some((fd) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`) === path; } catch { return false; } }); } catch { return false; }
  };
  return readdirSync("/proc").filter((p) => /^\d+$/.test(p) && opens(p)).map(Number);
}
