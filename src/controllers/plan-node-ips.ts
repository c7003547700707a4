import { canonicalIp, isGlobalUnicastIp } from "../lib/cidr.js";
import { compareText } from "../lib/order.js";
import { recordOfThisNode } from "./plan-deleted.js";
import type { AllocationAction, PlannerNode, PlannerRecord } from "./plan.js";

/**
 * Pure: the addresses agents route a Node's pods via: its InternalIPs, or its ExternalIPs when it has no
 * InternalIP at all, and which of the two they are. A Node that a cloud provider registers with public addresses
 * only was otherwise routed to by no agent, and no one said so. Not an ExternalIP beside an InternalIP of the
 * other family (kubelet's own rule would take it): it could become the VXLAN endpoint (the first IPv4 node IP)
 * and move the tunnel from the internal network onto a public or NATed path.
 */
export function nodeHostIPs(addresses: Array<{ type: string; address: string }>): Pick<PlannerNode, "nodeIPs" | "nodeIPsFrom"> {
  for (const type of ["InternalIP", "ExternalIP"] as const) {
    const ips = addresses.filter((a) => a.type === type).map((a) => a.address);
    if (ips.length) return { nodeIPs: ips, nodeIPsFrom: type };
  }
  return { nodeIPs: [] };
}

/** The NodeCIDR schema holds at most this many node IPs. */
const MAX_NODE_IPS = 8;

/**
 * Nodes with only the node IPs the NodeCIDR schema accepts (global unicast, at most eight), canonically
 * written; a Node that had others gets a warning. Passed through, such an address made every create for that
 * Node fail validation, and a failed write has the controller plan again a second later, for good.
 */
export function usableNodeIPs(nodes: PlannerNode[]): { usable: PlannerNode[]; warnings: AllocationAction[] } {
  const warnings: AllocationAction[] = [];
  const usable = nodes.map((n) => {
    const fine = (ip: string, i: number) => isGlobalUnicastIp(ip) && (!ip.includes(":") || canonicalIp(ip) === ip) && n.nodeIPs.indexOf(ip) === i;
    if (n.nodeIPs.length <= MAX_NODE_IPS && n.nodeIPs.every(fine)) return n;
    // In the one spelling agents compare with the kernel's (an IPv6 address has many), each address once: two
    // spellings of one address were two entries.
    const unicast = [...new Set(n.nodeIPs.filter(isGlobalUnicastIp).map((ip) => canonicalIp(ip) ?? ip))];
    const kept = unicast.slice(0, MAX_NODE_IPS);
    const left = [...n.nodeIPs.filter((ip) => !isGlobalUnicastIp(ip)), ...unicast.slice(MAX_NODE_IPS)];
    if (!left.length) return kept.length === n.nodeIPs.length && kept.every((ip, i) => ip === n.nodeIPs[i]) ? n : { ...n, nodeIPs: kept };
    warnings.push({ kind: "conflict", node: n.name, reason: "UnusableNodeIP", message: `node ${n.name}: node IP ${left.join(", ")} left out of its `
      + `NodeCIDR (not a global unicast address, or more than ${MAX_NODE_IPS}); agents route to ${kept.length ? kept.join(", ") : "no address of it"}` });
    return { ...n, nodeIPs: kept };
  });
  return { usable, warnings };
}

/**
 * Two Nodes with one node IP (a recycled address while the old Node lingers): every agent would send both
 * nodes' pod traffic to the one machine that has it. Allocation goes on; each Node gets a warning naming the other.
 */
export function sharedNodeIPs(nodes: PlannerNode[]): AllocationAction[] {
  // One pass, no allocation per node: this runs on every plan, and nearly every address has one holder.
  const first = new Map<string, string>();
  const shared = new Map<string, string[]>();
  for (const n of nodes) {
    for (const ip of n.nodeIPs) {
      const holder = first.get(ip);
      if (holder === undefined) first.set(ip, n.name);
      else if (holder !== n.name) shared.set(ip, [...(shared.get(ip) ?? [holder]), n.name]);
    }
  }
  const actions: AllocationAction[] = [];
  for (const [ip, names] of [...shared].sort(([a], [b]) => compareText(a, b))) {
    for (const name of [...names].sort(compareText)) {
      const others = names.filter((n) => n !== name).sort(compareText).join(", ");
      actions.push({ kind: "conflict", node: name, reason: "DuplicateNodeIP", message: `node ${name} shares node IP ${ip} with node ${others}; pod traffic for both goes to whichever machine holds the address` });
    }
  }
  return actions;
}

/**
 * Pure: each Node with the node IPs its records are to hold, one list for all of them (agents take a node's
 * VXLAN endpoint from it, so two records of one node must not disagree on its order), and warnings.
 * - The order is the records': an IP still listed keeps its place, a new one is appended. Providers reorder a
 *   Node's addresses (kubelet and a cloud controller rewriting them in turn); mirrored, a new first IPv4 address
 *   moved the node's VXLAN endpoint, and every peer rewrote its tunnel entries, losing packets each time.
 * - A Node that lists no address any more (its status rewritten by hand or by a broken cloud controller) keeps
 *   the ones its records have: emptied, every agent would drop its routes to the node's pods at once.
 * - A Node that lists no InternalIP any more but an ExternalIP (a cloud controller or kubelet rewriting the list,
 *   a provider upgrade) keeps InternalIP-sourced records' IPs, with a warning: followed, every peer would route its
 *   pods to a public or NATed address they rarely reach. A Node with ExternalIPs only from the start (records
 *   sourced from them, or from before the source was kept) follows them as they change.
 */
export function mirroredNodeIPs(nodes: PlannerNode[], records: PlannerRecord[]): { mirrored: PlannerNode[]; warnings: AllocationAction[] } {
  const reference = referenceRecords(nodes, records);
  const warnings: AllocationAction[] = [];
  const mirrored = nodes.map((n): PlannerNode => {
    const r = reference.get(n.name);
    if (!r || (n.nodeIPsFrom === r.nodeIPsFrom && sameList(n.nodeIPs, r.nodeIPs))) return n; // as nearly every Node, every plan
    if (!n.nodeIPs.length) return { ...n, nodeIPs: r.nodeIPs, ...(r.nodeIPsFrom ? { nodeIPsFrom: r.nodeIPsFrom } : {}) };
    if (n.nodeIPsFrom === "ExternalIP" && r.nodeIPsFrom === "InternalIP") {
      warnings.push({ kind: "conflict", node: n.name, reason: "NodeInternalIPsGone", message: `node ${n.name} lists no InternalIP any more: agents keep `
        + `routing its pods via ${r.nodeIPs.join(", ")}, its last InternalIPs, not its ExternalIPs ${n.nodeIPs.join(", ")} (to route via those, remove `
        + "spec.nodeIPsFrom from its NodeCIDRs)" });
      return { ...n, nodeIPs: r.nodeIPs, nodeIPsFrom: "InternalIP" };
    }
    const ips = inRecordOrder(r.nodeIPs, n.nodeIPs);
    return ips === n.nodeIPs ? n : { ...n, nodeIPs: ips };
  });
  return { mirrored, warnings };
}

/**
 * Per Node, the record its node IPs are read against: an allocated one before one whose status is not yet
 * written, then the oldest. Not a released record or one of an earlier Node of its name.
 */
function referenceRecords(nodes: PlannerNode[], records: PlannerRecord[]): Map<string, PlannerRecord> {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const reference = new Map<string, PlannerRecord>();
  const unconfirmed = (r: PlannerRecord) => (r.phase === "Allocated" ? 0 : 1);
  const earlier = (x: PlannerRecord, y: PlannerRecord) => unconfirmed(x) - unconfirmed(y)
    || (x.createdAt ?? Number.MAX_SAFE_INTEGER) - (y.createdAt ?? Number.MAX_SAFE_INTEGER) || compareText(x.name, y.name);
  for (const r of records) {
    const node = byName.get(r.nodeName);
    if (!node || !r.nodeIPs.length || (r.phase !== "Allocated" && r.phase !== undefined) || !recordOfThisNode(node, r)) continue;
    const best = reference.get(r.nodeName);
    if (!best || earlier(r, best) < 0) reference.set(r.nodeName, r);
  }
  return reference;
}

/** The recorded order for IPs still listed, then the listed ones that are new, in the Node's order. */
function inRecordOrder(recorded: string[], listed: string[]): string[] {
  const merged = [...recorded.filter((ip) => listed.includes(ip)), ...listed.filter((ip) => !recorded.includes(ip))];
  return sameList(merged, listed) ? listed : merged;
}

export const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
