import type { KubernetesObject } from "@kubernetes/client-node";
import type { NodeCidrObject, PoolObject } from "../controllers/observe.js";
import { canonicalIp } from "../lib/cidr.js";
import type { ObservedNodeCidr } from "./desired-state.js";

/** What the agent takes from the NodeCIDRs and pools it watches. */

export type Record_ = NodeCidrObject & KubernetesObject;
export type Pool = PoolObject & KubernetesObject & { status?: { conditions?: Array<{ type: string; status: string }> } };

/** Ranges of every pool the controller has not declared invalid: together, the cluster pod network. */
export function poolRanges(pools: Iterable<Pool>): string[] {
  return [...pools]
    .filter((p) => p.status?.conditions?.find((c) => c.type === "Valid")?.status !== "False")
    .flatMap((p) => [...(p.spec.ipv4?.cidrs ?? []), ...(p.spec.ipv6?.cidrs ?? [])])
    .sort();
}

// The informer replaces a record's object on every change, so its routing view is derived once per version,
// not once per pass for each of thousands of records (every pass's garbage is GC time on the same cores).
const observedOf = new WeakMap<Record_, ObservedNodeCidr>();
export const observed = (r: Record_): ObservedNodeCidr => {
  let view = observedOf.get(r);
  if (!view) {
    // A string off the wire, whatever client-node's type says; another node's record has none (recordProjection).
    const created = r.metadata?.creationTimestamp === undefined ? NaN : new Date(r.metadata.creationTimestamp).getTime();
    view = { name: r.metadata!.name!, nodeName: r.spec.nodeName, cidr: r.spec.cidr, nodeIPs: canonicalIps(r.spec.nodeIPs ?? []), phase: r.status?.phase,
      ...(Number.isNaN(created) ? {} : { created }) };
    observedOf.set(r, view);
  }
  return view;
};

/**
 * Node IPs as the kernel prints them: an IPv6 address has many spellings (FD00:82:0::50 is fd00:82::50), and
 * one compared as written against `ip -json`'s gateway or FDB entry made every full pass replace its route.
 * Unparsable text is kept as is: the planner rejects it with the record's name.
 */
function canonicalIps(ips: string[]): string[] {
  return ips.some((ip) => canonicalIp(ip) !== ip) ? ips.map((ip) => canonicalIp(ip) ?? ip) : ips;
}

/**
 * Another node's record is a routing input only: its status (that node's agent conditions, rewritten as
 * its counts change) is most of its bytes and never read here. This node's own records are kept whole.
 */
export const recordProjection = (me: string) => (r: Record_): Record_ => {
  if (r.spec?.nodeName === me) { delete r.metadata?.managedFields; return r; }
  const { name, uid, resourceVersion, generation } = r.metadata ?? {};
  return { apiVersion: r.apiVersion, kind: r.kind, metadata: { name, uid, resourceVersion, generation }, spec: r.spec, status: { phase: r.status?.phase } };
};
