import type { KubernetesObject } from "@kubernetes/client-node";
import type { NodeCidrObject, PoolObject } from "../controllers/observe.js";
import { canonicalIp } from "../lib/cidr.js";
import type { ObservedNodeCidr } from "./desired-state.js";

/** What the agent takes from the NodeCIDRs and pools it watches. */

/**
 * NodeCIDRs per page of the first list. Early route passes overlap the pages still to come, but each page costs
 * a round trip and each pass an `ip` process on the same cores: at 4,999 NodeCIDRs, 2 pages of 2,500 brought
 * all routes in 1.23–1.63 s against 1.38–1.78 s with 10 pages of 500 (4 alternating cold starts each).
 */
export const LIST_PAGE_SIZE = 2_500;
/** After an API server restart, N agents relist over up to N × 10 ms (50 s at 5,000 nodes; 1 s to 60 s). */
export const relistSpreadMs = (records: number) => Math.min(60_000, Math.max(1_000, records * 10));

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

/**
 * Other agents write their status on their own NodeCIDRs all the time, and a joining node's record passes
 * through states no route depends on (created, Allocated without node IPs). Only a change
 * in what this agent derives from a record (its CIDR once Allocated, with node and IPs) wakes it, or N
 * agents would keep each other busy on 2 cores. (Its own status write that did not go through wakes it too:
 * the status writer asks for a fresh pass.)
 */
export class RoutingInputs {
  private readonly seen = new Map<string, string>();
  constructor(private readonly self: string, private readonly cache: () => ReadonlyMap<string, Record_>, private readonly predecessor: (r: Record_) => boolean = () => false) {}

  /** Whether an informer event changed what a pass derives from its record (remembered for the next). */
  changed(event: string, obj: Record_): boolean {
    const name = obj.metadata!.name!;
    const mine = obj.spec.nodeName === this.self && !this.predecessor(obj);
    // Another node's record matters once it is Allocated and has a node IP to route through; until then it
    // changes nothing here (its CIDR lies inside the pool ranges, so not even the masquerade set).
    // A node with no record of its own checks every live record against the range its conflist still names,
    // routed or not (sync-cni.ts): a new holder must not wait for the resync while pods here take its addresses.
    const live = event !== "delete" && obj.status?.phase === "Allocated" && (mine || (obj.spec.nodeIPs ?? []).length > 0 || !this.holdsLiveRecord());
    const fingerprint = live ? JSON.stringify([obj.spec.cidr, obj.spec.nodeName, obj.spec.nodeIPs ?? []]) : undefined;
    if (fingerprint === this.seen.get(name)) return false;
    if (fingerprint === undefined) this.seen.delete(name);
    else this.seen.set(name, fingerprint);
    return true;
  }

  private holdsLiveRecord(): boolean {
    for (const r of this.cache().values()) if (r.spec.nodeName === this.self && r.status?.phase === "Allocated" && !this.predecessor(r)) return true;
    return false;
  }
}
