import { canonicalIp, isGlobalUnicastIp } from "../lib/cidr.js";
import { compareText } from "../lib/order.js";
import type { AllocationAction, PlannerNode } from "./plan.js";

/**
 * Pure: the addresses agents route a Node's pods via: its InternalIPs, or its ExternalIPs when it has no
 * InternalIP at all. A Node that a cloud provider registers with public addresses only was otherwise routed to
 * by no agent, and no one said so. Not an ExternalIP beside an InternalIP of the other family (kubelet's own
 * rule would take it): it could become the VXLAN endpoint (the first IPv4 node IP) and move the tunnel from
 * the internal network onto a public or NATed path.
 */
export function nodeHostIPs(addresses: Array<{ type: string; address: string }>): string[] {
  const internal = addresses.filter((a) => a.type === "InternalIP").map((a) => a.address);
  return internal.length ? internal : addresses.filter((a) => a.type === "ExternalIP").map((a) => a.address);
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
    if (n.nodeIPs.length <= MAX_NODE_IPS && n.nodeIPs.every((ip) => isGlobalUnicastIp(ip) && (!ip.includes(":") || canonicalIp(ip) === ip))) return n;
    const unicast = n.nodeIPs.filter(isGlobalUnicastIp);
    // In the one spelling agents compare with the kernel's (an IPv6 address has many).
    const kept = unicast.slice(0, MAX_NODE_IPS).map((ip) => canonicalIp(ip) ?? ip);
    const left = [...n.nodeIPs.filter((ip) => !isGlobalUnicastIp(ip)), ...unicast.slice(MAX_NODE_IPS)];
    if (!left.length) return kept.every((ip, i) => ip === n.nodeIPs[i]) ? n : { ...n, nodeIPs: kept };
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
