import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { LocalCluster } from "../../src/localcluster/cluster.js";
import { ipJson } from "../../src/localcluster/netbed.js";
import { runtimeConfigFiles } from "../../src/node-agent/cni-files.js";
import { VXLAN_DEVICE } from "../../src/node-agent/overlay-plan.js";
import type { ClusterView, FamilyName, NodeView, RecordView } from "./invariants.js";

/** Shell: reads what the soak's invariants look at (API objects, kernel routes, conflists) into plain views. */

export async function recordViews(cluster: LocalCluster): Promise<RecordView[]> {
  return (await cluster.nodeCidrs()).map((r) => ({
    name: r.metadata?.name ?? "", nodeName: r.spec.nodeName, family: r.spec.family === "IPv6" ? "IPv6" : "IPv4", cidr: r.spec.cidr,
    ...(r.spec.nodeUID ? { nodeUID: r.spec.nodeUID } : {}), generation: r.metadata?.generation,
    phase: r.status?.phase, observedGeneration: r.status?.observedGeneration,
    conditions: (r.status?.conditions ?? []).map((c) => ({ type: c.type, status: c.status, reason: c.reason, message: c.message, observedGeneration: c.observedGeneration })),
    routesInstalled: r.status?.agent?.routesInstalled,
  }));
}

function kernelRoutes(ns: string): string[] {
  return [4, 6].flatMap((f) => ipJson<Array<{ dst: string; gateway?: string; dev: string }>>(ns, `-${f}`, "route", "show", "proto", "249")
    .map((r) => `${r.dst} via ${r.gateway ?? "-"} dev ${r.dev === VXLAN_DEVICE ? "vxlan" : r.dev}`));
}

/** The subnets of the conflist a container runtime would pick (the alphabetically first). */
function conflistSubnets(confDir: string): string[] | undefined {
  const file = runtimeConfigFiles(confDir)[0];
  if (!file) return undefined;
  const text = readFileSync(join(confDir, file), "utf8");
  return [...text.matchAll(/"subnet"\s*:\s*"([^"]+)"/g)].map((m) => m[1]!);
}

export async function observeCluster(cluster: LocalCluster, families: FamilyName[]): Promise<ClusterView> {
  const records = await recordViews(cluster);
  const apiNodes = new Map((await cluster.api.core.listNode()).items.map((n) => [n.metadata!.name!, n]));
  const nodes: NodeView[] = [...cluster.nodes.entries()].map(([name, entry]) => {
    const api = apiNodes.get(name);
    const { ns, segment, ip, ip6 } = entry.node;
    return {
      name, uid: api?.metadata?.uid, segment, ip, ip6, podCIDRs: api?.spec?.podCIDRs ?? [],
      networkUnavailable: api?.status?.conditions?.find((c) => c.type === "NetworkUnavailable")?.status,
      routes: kernelRoutes(ns), conflistSubnets: conflistSubnets(entry.confDir),
      pods: cluster.pods.filter((p) => p.nodeNs === ns).map((p) => ({ name: p.name, ips: p.ips })),
    };
  });
  const dead = cluster.exitedUnasked();
  return { families, records, nodes, ...(dead ? { deadProcess: dead } : {}) };
}
