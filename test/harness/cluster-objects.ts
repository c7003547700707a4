import type { CoreV1Event, V1Node } from "@kubernetes/client-node";
import { forEachLimited, mergePatch, podnetResource, type KubeApi } from "../../src/lib/k8s.js";
import type { NodeCidrObject } from "../../src/controllers/observe.js";
import { tryParseCidr } from "../../src/lib/cidr.js";

/** Test helpers that create and read cluster objects the way a user or kubelet would. */

export interface TestNode { name: string; ip?: string; labels?: Record<string, string>; podCIDRs?: string[]; kubeletStatus?: boolean }

/**
 * The rest of what kubelet reports in a Node's status (conditions, capacity, node info, the image list):
 * ≈9 KB of JSON per Node here, the bulk of a real Node object, none of which podnet reads.
 */
export function kubeletReportedStatus(nodeName: string): V1Node["status"] {
  const seed = [...nodeName].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
  const now = new Date();
  const condition = (type: string, status: string, reason: string) => ({ type, status, reason, message: `kubelet reports ${reason}`, lastHeartbeatTime: now, lastTransitionTime: now });
  return {
    conditions: [condition("MemoryPressure", "False", "KubeletHasSufficientMemory"), condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
      condition("PIDPressure", "False", "KubeletHasSufficientPID"), condition("Ready", "True", "KubeletReady")],
    capacity: { cpu: "8", memory: "32817580Ki", pods: "110", "ephemeral-storage": "101430960Ki" },
    allocatable: { cpu: "8", memory: "32715180Ki", pods: "110", "ephemeral-storage": "93478772582" },
    daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
    nodeInfo: { machineID: seed.toString(16).padStart(32, "0"), systemUUID: `uuid-${seed}`, bootID: `boot-${seed}`, kernelVersion: "6.8.0-45-generic", osImage: "Ubuntu 24.04.1 LTS",
      containerRuntimeVersion: "containerd://2.0.0", kubeletVersion: "v1.37.2", kubeProxyVersion: "", operatingSystem: "linux", architecture: "amd64" },
    images: Array.from({ length: 40 }, (_, i) => ({
      names: [`registry.example.com/team-${i % 7}/service-${i}@sha256:${(seed * 40 + i).toString(16).padStart(64, "0")}`, `registry.example.com/team-${i % 7}/service-${i}:v1.${i}.0`],
      sizeBytes: 50_000_000 + i * 1_000_003,
    })),
  };
}

export async function createNodes(api: KubeApi, nodes: TestNode[], parallelism = 16): Promise<void> {
  await forEachLimited(nodes, parallelism, async (n) => {
    const body: V1Node = {
      metadata: { name: n.name, labels: n.labels ?? {} },
      spec: n.podCIDRs ? { podCIDR: n.podCIDRs[0], podCIDRs: n.podCIDRs } : {},
    };
    await api.core.createNode({ body });
    // Addresses are status, which create ignores: report them the way kubelet does, via nodes/status.
    if (n.ip || n.kubeletStatus) {
      const status = { ...(n.kubeletStatus ? kubeletReportedStatus(n.name) : {}), ...(n.ip ? { addresses: [{ type: "InternalIP", address: n.ip }] } : {}) };
      await api.core.patchNodeStatus({ name: n.name, body: { status } }, mergePatch());
    }
  });
}

/** Every pool, NodeCIDR and Node gone: the empty cluster each controller test starts from (its controller stopped first). */
export async function emptyCluster(api: KubeApi): Promise<void> {
  const pools = podnetResource("podcidrpools");
  for (const p of ((await api.custom.listClusterCustomObject(pools)) as { items: Array<{ metadata: { name: string } }> }).items) {
    await api.custom.deleteClusterCustomObject({ ...pools, name: p.metadata.name });
  }
  for (const r of await listNodeCidrs(api)) await api.custom.deleteClusterCustomObject({ ...podnetResource("nodecidrs"), name: r.metadata!.name! });
  await deleteNodes(api, (await api.core.listNode()).items.map((n) => n.metadata!.name!));
}

export async function deleteNodes(api: KubeApi, names: string[]): Promise<void> {
  await forEachLimited(names, 16, async (name) => { await api.core.deleteNode({ name }); });
}

export async function listNodeCidrs(api: KubeApi): Promise<NodeCidrObject[]> {
  const out: NodeCidrObject[] = [];
  let token: string | undefined;
  do {
    const page = (await api.custom.listClusterCustomObject({ ...podnetResource("nodecidrs"), limit: 500, _continue: token })) as { items: NodeCidrObject[]; metadata?: { _continue?: string; continue?: string } };
    out.push(...page.items);
    token = page.metadata?._continue ?? page.metadata?.continue;
  } while (token);
  return out;
}

export async function eventsFor(api: KubeApi, kind: string, name?: string): Promise<CoreV1Event[]> {
  const selector = [`involvedObject.kind=${kind}`, ...(name ? [`involvedObject.name=${name}`] : [])].join(",");
  return (await api.core.listNamespacedEvent({ namespace: "default", fieldSelector: selector })).items;
}

export const allocated = (records: NodeCidrObject[]) => records.filter((r) => r.status?.phase === "Allocated");

/**
 * The allocation invariants, checked on any observed snapshot: no node holds two live CIDRs of one family
 * and no two live CIDRs overlap (names are CIDRs, so exact duplicates cannot exist at all).
 */
/**
 * The same for what kubelet and kube-proxy read: no range in two Nodes' spec.podCIDRs (the field cannot be
 * changed once set), and a Node's podCIDRs agree with its live records.
 */
export async function nodePodCidrViolations(api: KubeApi): Promise<string[]> {
  const records = (await listNodeCidrs(api)).filter((r) => r.status?.phase === "Allocated");
  const problems: string[] = [];
  const owner = new Map<string, string>();
  for (const n of (await api.core.listNode()).items) {
    const name = n.metadata!.name!;
    for (const cidr of n.spec?.podCIDRs ?? []) {
      if (owner.has(cidr)) problems.push(`${cidr} in the podCIDRs of ${owner.get(cidr)} and ${name}`);
      owner.set(cidr, name);
      const mine = records.filter((r) => r.spec.nodeName === name && r.spec.family === (cidr.includes(":") ? "IPv6" : "IPv4"));
      if (mine.length && !mine.some((r) => r.spec.cidr === cidr)) problems.push(`${name} has podCIDR ${cidr} but holds ${mine.map((r) => r.spec.cidr).join(", ")}`);
    }
  }
  return problems;
}

export function invariantViolations(records: NodeCidrObject[]): string[] {
  const problems: string[] = [];
  const live = records.filter((r) => r.status?.phase !== "Quarantined");
  const perNodeFamily = new Map<string, string>();
  for (const r of live.filter((r) => r.status?.phase !== "Released")) {
    const key = `${r.spec.nodeName}/${r.spec.family}`;
    const other = perNodeFamily.get(key);
    if (other) problems.push(`${key} holds ${other} and ${r.spec.cidr}`);
    perNodeFamily.set(key, r.spec.cidr);
  }
  // Not only the same text twice: a slice inside another record's range is as bad (a mask changed, a wide one kept).
  // Sorted by network, a CIDR overlaps an earlier one exactly when it starts before the furthest end seen so far.
  const parsed = live.flatMap((r) => { const c = tryParseCidr(r.spec.cidr); return c ? [{ cidr: c, text: r.spec.cidr }] : []; })
    .sort((a, b) => a.cidr.family - b.cidr.family || (a.cidr.network < b.cidr.network ? -1 : a.cidr.network > b.cidr.network ? 1 : b.cidr.prefix - a.cidr.prefix));
  let widest: { end: bigint; family: number; text: string } | undefined;
  for (const { cidr, text } of parsed) {
    const end = cidr.network + (1n << BigInt((cidr.family === 4 ? 32 : 128) - cidr.prefix));
    if (widest && widest.family === cidr.family && cidr.network < widest.end) {
      problems.push(text === widest.text ? `${text} held twice` : `${text} overlaps ${widest.text}`);
    }
    if (!widest || widest.family !== cidr.family || end > widest.end) widest = { end, family: cidr.family, text };
  }
  return problems;
}
