import { cidrContains, cidrContainsIp, parseCidr, parseIp, tryParseCidr, type Cidr, type IpAddr } from "../lib/cidr.js";
import { BRIDGE_NAME } from "./cni-conflist.js";
import { VXLAN_DEVICE } from "./overlay-plan.js";
import type { ObservedRoute } from "./routes-plan.js";

/**
 * A node taken over from another network plugin keeps its pod CIDR (podnet adopts `node.spec.podCIDRs`), and
 * that plugin's bridge (flannel's `cni0`, kindnet's) keeps the range's gateway address and connected route. When
 * the first pod brings podnet's bridge up with the same gateway, the kernel holds two connected routes for the
 * range and keeps using the older one: this node's pods are unreachable from the node and from other nodes.
 * podnet does not delete a device it does not own, so the agent finds such holders and reports them.
 */

/** A global address of this node, as `ip -details -json addr show` lists it; `kind`: the link's (bridge, vxlan; none for a NIC). */
export interface HostAddress { dev: string; local: string; prefixlen: number; kind?: string }

/** A device (undefined: a route with none, a blackhole say) that holds part of this node's pod CIDRs. */
export interface PodCidrHolder {
  device?: string; kind?: string;
  routes: Array<{ dst: string; via?: string }>;
  addresses: string[];
}

/**
 * Pure: what, besides podnet's own devices, holds this node's pod CIDRs: routes inside them (the range itself, or
 * a narrower one: either wins over the bridge's connected route; a wider route loses to it by longest prefix) of
 * any owner but podnet, and addresses inside them. A range's first address is left out: no pod and no gateway
 * gets it, and a VXLAN device (podnet's, flannel's) holds it as a host address.
 */
export function podCidrHolders(ownCidrs: string[], routes: Iterable<ObservedRoute>, addresses: readonly HostAddress[]): PodCidrHolder[] {
  const own = ownCidrs.map((c) => parseCidr(c));
  if (own.length === 0) return [];
  const byDevice = new Map<string, PodCidrHolder>();
  const holder = (device: string | undefined) => {
    const key = device ?? "";
    let found = byDevice.get(key);
    if (!found) byDevice.set(key, (found = { ...(device ? { device } : {}), routes: [], addresses: [] }));
    return found;
  };
  for (const r of routes) {
    if (r.ours || PODNET_DEVICES.has(r.dev ?? "")) continue;
    const dst = tryParseCidr(r.dst);
    if (dst && own.some((c) => cidrContains(c, dst) && !isFirstAddress(c, dst))) holder(r.dev).routes.push({ dst: r.dst, ...(r.gateway ? { via: r.gateway } : {}) });
  }
  for (const a of addresses) {
    const ip = PODNET_DEVICES.has(a.dev) ? undefined : ipOf(a.local);
    if (!ip || !own.some((c) => cidrContainsIp(c, ip) && ip.value !== c.network)) continue;
    const h = holder(a.dev);
    h.addresses.push(`${a.local}/${a.prefixlen}`);
    if (a.kind) h.kind = a.kind;
  }
  // Sorted: the condition's message must not change with the kernel's listing order, or each pass would write it.
  const holders = [...byDevice.values()].sort((a, b) => (a.device ?? "").localeCompare(b.device ?? ""));
  for (const h of holders) { h.routes.sort((a, b) => a.dst.localeCompare(b.dst)); h.addresses.sort(); }
  return holders;
}

/** podnet's own: its bridge holds the gateways, its VXLAN device the first addresses (with IPv6, a /128 route each). */
const PODNET_DEVICES = new Set([BRIDGE_NAME, VXLAN_DEVICE]);

/** A host route to a range's first address, which the kernel adds for an IPv6 /128 on a VXLAN device (flannel's too): no pod's. */
const isFirstAddress = (range: Cidr, dst: Cidr) => dst.network === range.network && dst.prefix === (dst.family === 4 ? 32 : 128);

function ipOf(text: string): IpAddr | undefined {
  try { return parseIp(text); } catch { return undefined; }
}

const listed = (items: string[]) => `${items.slice(0, 3).join(", ")}${items.length > 3 ? ` (+${items.length - 3} more)` : ""}`;

/**
 * How to take a holder's share away: a leftover bridge or VXLAN device goes whole (its routes and addresses with
 * it); a NIC or anything else keeps its link, only the route or address in the pod range goes.
 */
function remedy(h: PodCidrHolder): string {
  if (h.device && (h.kind === "bridge" || h.kind === "vxlan")) return `ip link delete ${h.device}`;
  const dev = h.device ? ` dev ${h.device}` : "";
  return listed([...h.addresses.map((a) => `ip addr del ${a}${dev}`), ...h.routes.map((r) => `ip route del ${r.dst}${dev}`)]);
}

/** Pure: the CNIConfigured message for holders found; at most five holders, three items each (Calico leaves a route per pod). */
export function podCidrHeldMessage(ownCidrs: string[], holders: PodCidrHolder[]): string {
  const shown = holders.slice(0, 5);
  const what = shown.map((h) => `${h.device ?? "no device"} (${listed([...h.routes.map((r) => `route ${r.dst}${r.via ? ` via ${r.via}` : ""}`), ...h.addresses.map((a) => `address ${a}`)])})`);
  return `this node's pod CIDR ${ownCidrs.join(", ")} is also held outside podnet's bridge ${BRIDGE_NAME}, by ${what.join(", ")}`
    + `${holders.length > 5 ? ` (+${holders.length - 5} more)` : ""}: the kernel sends traffic for this node's pods there, so they `
    + "cannot be reached from this node or from other nodes. Left by another network plugin (flannel's or kindnet's cni0)? "
    + `Drain the node, then remove it (${shown.map(remedy).join("; ")}) and that plugin's CNI config; podnet does not delete what it does not own`;
}
