import { cidrContainsIp, cidrsOverlap, parseCidr, parseIp, tryParseCidr } from "../../src/lib/cidr.js";
import { POD_ADDRESSES_OUTSIDE_CIDR } from "../../src/node-agent/report.js";

/** What the soak checks, as observed: plain data, so the checks are pure and table-tested. */
export type FamilyName = "IPv4" | "IPv6";
export interface ConditionView { type: string; status: string; reason?: string; message?: string; observedGeneration?: number }
export interface RecordView {
  name: string; nodeName: string; family: FamilyName; cidr: string; nodeUID?: string;
  generation?: number; phase?: string; observedGeneration?: number; conditions: ConditionView[]; routesInstalled?: number;
}
export interface PodView { name: string; ips: string[] }
export interface NodeView {
  name: string;
  /** The Node object's uid; undefined while there is no Node object. */
  uid?: string;
  segment: number; ip: string; ip6: string;
  podCIDRs: string[];
  networkUnavailable?: string;
  /** The kernel's proto-249 routes in the node's namespace, as `<dst> via <gateway> dev <eth0|vxlan>`. */
  routes: string[];
  /** The subnets of the conflist the runtime would pick; undefined when there is none. */
  conflistSubnets?: string[];
  pods: PodView[];
}
export interface ClusterView { families: FamilyName[]; records: RecordView[]; nodes: NodeView[]; deadProcess?: string }

const AGENT_CONDITIONS = ["Allocated", "Ready", "RoutesProgrammed", "CNIConfigured"];

/** Problems visible in the NodeCIDR list alone: two records on one range, or a node+family with two Allocated. */
export function recordSetIssues(records: readonly RecordView[]): string[] {
  const out: string[] = [];
  const label = (r: RecordView) => `${r.name}(${r.nodeName},${r.phase ?? "-"})`;
  for (let i = 0; i < records.length; i++) for (let j = i + 1; j < records.length; j++) {
    const [a, b] = [tryParseCidr(records[i]!.cidr), tryParseCidr(records[j]!.cidr)];
    if (a && b && cidrsOverlap(a, b)) out.push(`CIDR overlap ${label(records[i]!)} ~ ${label(records[j]!)}`);
  }
  const allocated = new Map<string, string[]>();
  for (const r of records.filter((x) => x.phase === "Allocated")) {
    const key = `${r.nodeName}/${r.family}`;
    allocated.set(key, [...(allocated.get(key) ?? []), r.cidr]);
  }
  for (const [key, cidrs] of allocated) if (cidrs.length > 1) out.push(`${key} has ${cidrs.length} Allocated: ${cidrs.join(",")}`);
  return out;
}

function recordViolations(view: ClusterView, live: Map<string, NodeView>, liveAllocated: RecordView[]): string[] {
  const out: string[] = [];
  for (const node of live.values()) for (const family of view.families) {
    const mine = liveAllocated.filter((r) => r.nodeName === node.name && r.family === family);
    if (mine.length !== 1) out.push(`${node.name} ${family}: ${mine.length} Allocated`);
    for (const r of mine) if (r.nodeUID && r.nodeUID !== node.uid) out.push(`${r.name}: nodeUID ${r.nodeUID} but ${node.name}'s uid is ${node.uid ?? "(no Node)"}`);
  }
  for (const r of view.records) if (r.phase === "Allocated" && !live.has(r.nodeName)) out.push(`Allocated record ${r.name} for gone node ${r.nodeName}`);
  const routesEach = liveAllocated.length - view.families.length;
  for (const r of liveAllocated) {
    if (r.observedGeneration !== r.generation) out.push(`${r.name}: status.observedGeneration ${r.observedGeneration} != generation ${r.generation}`);
    for (const type of AGENT_CONDITIONS) {
      const c = r.conditions.find((x) => x.type === type);
      if (c?.status !== "True") out.push(`${r.name} (${r.nodeName}): ${type}=${c?.status ?? "missing"} ${c?.reason ?? ""} ${c?.message ?? ""}`.trim().slice(0, 300));
      else if (c.observedGeneration !== undefined && c.observedGeneration !== r.generation) out.push(`${r.name}: ${type}.observedGeneration ${c.observedGeneration} != ${r.generation}`);
    }
    if (r.routesInstalled !== routesEach) out.push(`${r.name}: routesInstalled ${r.routesInstalled ?? "-"} != ${routesEach}`);
  }
  return out;
}

/** The proto-249 routes a node should hold: a neighbour's CIDR via its node IP, a farther node's through the tunnel. */
export function expectedRoutes(me: NodeView, live: Map<string, NodeView>, liveAllocated: readonly RecordView[]): string[] {
  return liveAllocated.filter((r) => r.nodeName !== me.name).map((r) => {
    const other = live.get(r.nodeName)!;
    if (other.segment === me.segment) return `${r.cidr} via ${r.family === "IPv6" ? other.ip6 : other.ip} dev eth0`;
    return `${r.cidr} via ${r.cidr.split("/")[0]} dev vxlan`; // the peer's podnet.vxlan holds its range's first address
  }).sort();
}

function nodeViolations(node: NodeView, live: Map<string, NodeView>, liveAllocated: RecordView[]): string[] {
  const out: string[] = [];
  const expected = expectedRoutes(node, live, liveAllocated);
  const actual = [...node.routes].sort();
  if (expected.join() !== actual.join()) {
    out.push(`${node.name} routes: missing [${expected.filter((e) => !actual.includes(e)).join("; ")}] extra [${actual.filter((a) => !expected.includes(a)).join("; ")}]`);
  }
  const own = liveAllocated.filter((r) => r.nodeName === node.name).map((r) => r.cidr).sort();
  if ([...node.podCIDRs].sort().join() !== own.join()) out.push(`${node.name}: Node.spec.podCIDRs [${node.podCIDRs}] != its CIDRs [${own}]`);
  if (!node.conflistSubnets) out.push(`${node.name}: no conflist`);
  else if ([...node.conflistSubnets].sort().join() !== own.join()) out.push(`${node.name}: conflist subnets [${node.conflistSubnets}] != its CIDRs [${own}]`);
  if (node.networkUnavailable !== "False") out.push(`${node.name}: NetworkUnavailable ${node.networkUnavailable ?? "missing"}, not False`);
  return out;
}

/**
 * Pod addresses outside their node's CIDRs: a pod started from an earlier range's conflist (its node re-registered
 * and got another range). No node routes them, so they are no ping targets; the agent must say so in CNIConfigured
 * (PodAddressesOutsideCIDR, naming the address or counting it among "+N more"), else it is a violation.
 */
export function strandedPodAddresses(node: NodeView, liveAllocated: readonly RecordView[]): string[] {
  const own = liveAllocated.filter((r) => r.nodeName === node.name).map((r) => parseCidr(r.cidr));
  return node.pods.flatMap((p) => p.ips.filter((ip) => !own.some((c) => cidrContainsIp(c, parseIp(ip)))).map((ip) => `${p.name} ${ip}`));
}

function strandedViolations(node: NodeView, liveAllocated: RecordView[]): string[] {
  const stranded = strandedPodAddresses(node, liveAllocated);
  if (!stranded.length) return [];
  const reported = liveAllocated.filter((r) => r.nodeName === node.name).map((r) => r.conditions.find((c) => c.type === "CNIConfigured"))
    .filter((c) => c?.reason === POD_ADDRESSES_OUTSIDE_CIDR).map((c) => c!.message ?? "").join(" ");
  const named = (ip: string) => reported.includes(ip) || /\(\+\d+ more\)/.test(reported);
  const unreported = stranded.filter((s) => !named(s.split(" ")[1]!));
  return unreported.length ? [`${node.name}: pod addresses outside its CIDRs not reported in CNIConfigured (${POD_ADDRESSES_OUTSIDE_CIDR}): ${unreported.join(", ")}`] : [];
}

/** Every invariant of a converged cluster; [] when all hold. */
export function clusterViolations(view: ClusterView): string[] {
  const live = new Map(view.nodes.map((n) => [n.name, n]));
  const liveAllocated = view.records.filter((r) => r.phase === "Allocated" && live.has(r.nodeName));
  return [
    ...(view.deadProcess ? [`process exited unasked: ${view.deadProcess.split("\n")[0]}`] : []),
    ...recordSetIssues(view.records),
    ...recordViolations(view, live, liveAllocated),
    ...[...live.values()].flatMap((n) => [...nodeViolations(n, live, liveAllocated), ...strandedViolations(n, liveAllocated)]),
  ];
}

/** Pods a ping may target: on a live node, with addresses inside that node's CIDRs (stranded ones are reported instead). */
export function pingablePods(view: ClusterView): PodView[] {
  const liveAllocated = view.records.filter((r) => r.phase === "Allocated");
  return view.nodes.flatMap((n) => {
    const stranded = new Set(strandedPodAddresses(n, liveAllocated).map((s) => s.split(" ")[0]));
    return n.pods.filter((p) => !stranded.has(p.name));
  });
}
