import { createHash } from "node:crypto";
import { canonicalIp, familyOfText, formatIp, parseCidr, parseIp, type IpFamily } from "../lib/cidr.js";
import type { DesiredRoute } from "./desired-state.js";

/**
 * Pure: which routes go straight to a neighbour and which through the VXLAN overlay. Nodes that share a
 * subnet are routed directly (host-gw, no encapsulation cost); a node behind a router is reached through
 * podnet.vxlan, whose peers are known from the NodeCIDRs alone: nothing is learned or flooded.
 */

export type OverlayMode = "auto" | "vxlan" | "none";
export const VXLAN_DEVICE = "podnet.vxlan";
/** Outer IP + UDP + VXLAN + inner Ethernet headers. */
export const vxlanOverhead = (underlay: IpFamily) => (underlay === 4 ? 50 : 70);
/** IPv6's minimum link MTU: below it the kernel disables IPv6 on a device (its addresses and routes refused). */
export const IPV6_MIN_MTU = 1280;

/**
 * Pure: podnet.vxlan's MTU, the underlay link's less VXLAN's headers; over an IPv4 underlay never under IPv6's
 * minimum while the tunnel carries IPv6 (a link under 1330): its outer packets, sent without DF, are then
 * fragmented by the node, which costs less than IPv6 pods cut off. Not over IPv6: the kernel does not fragment
 * the tunnel's outer IPv6 packets (measured: Ip6FragFails), so a full-size packet would vanish; under 1280
 * there the overlay is refused instead (`tunnelMtuRefusal`). The pods' MTU follows where it comes from the tunnel.
 */
export function tunnelMtu(linkMtu: number, underlay: IpFamily, carriesIpv6: boolean): number {
  const mtu = linkMtu - vxlanOverhead(underlay);
  return carriesIpv6 && underlay === 4 ? Math.max(mtu, IPV6_MIN_MTU) : mtu;
}

/** Pure: why podnet.vxlan cannot carry IPv6 on this link, or undefined when it can (or need not). */
export function tunnelMtuRefusal(linkMtu: number, underlay: IpFamily, carriesIpv6: boolean): string | undefined {
  const mtu = tunnelMtu(linkMtu, underlay, carriesIpv6);
  if (!carriesIpv6 || mtu >= IPV6_MIN_MTU) return undefined;
  return `${VXLAN_DEVICE} not set up: the underlay link's MTU ${linkMtu} less VXLAN's ${vxlanOverhead(underlay)} bytes over IPv6 is ${mtu}, under IPv6's minimum `
    + `${IPV6_MIN_MTU} (the kernel disables IPv6 on a device below it), and a node does not fragment the tunnel's outer IPv6 packets: give the `
    + `underlay at least ${IPV6_MIN_MTU + vxlanOverhead(underlay)} bytes, or the nodes IPv4 addresses (over IPv4 the tunnel is kept at ${IPV6_MIN_MTU} and its outer packets fragmented)`;
}

/**
 * A route as the kernel should hold it; `dev` set for overlay routes (`via <gw> dev podnet.vxlan onlink`).
 * `linkDev`, on direct routes: the interface whose subnet holds the gateway. Kept so a route follows the node's
 * address to another interface (eth0 bridged into br0): the kernel leaves a nexthop on the old one.
 */
export interface KernelRoute { dst: string; via: string; nodeName: string; dev?: string; linkDev?: string }

export interface OverlayPeer { nodeName: string; underlayIp: string; mac: string; gateways: Array<{ dst: string; gw: string }> }
export interface Unreachable { dst: string; via?: string; nodeName: string; reason: string }
export interface RouteSplit { kernel: KernelRoute[]; peers: OverlayPeer[]; unreachable: Unreachable[] }

/**
 * The address a node sends and receives VXLAN on: its IPv4 node IP when it has one (the common underlay), else
 * its first. A VXLAN device listens on one family only, so every agent must pick a peer's endpoint by this same
 * rule: a dual-stack peer picked by its IPv6 address from an IPv6-only node would be sent frames it never
 * receives, under a MAC that is not its device's. For the same reason it is the first IPv4 one even where a later
 * one is on-link (as a direct route prefers, `directGateway`): what is on-link differs from node to node, and the
 * peer's nft table takes VXLAN at this address alone (masquerade.ts).
 */
export const underlayIpOf = (nodeIPs: string[]): string | undefined => nodeIPs.find((ip) => familyOfText(ip) === 4) ?? nodeIPs[0];

/**
 * The VTEP MAC of a node, derived from its underlay IP so every agent computes its peers' MACs without an
 * exchange: locally administered, unicast (0e:50 prefix), the IPv4 address itself or 4 bytes of a hash.
 */
export function vtepMac(underlayIp: string): string {
  const ip = parseIp(underlayIp);
  const tail = ip.family === 4
    ? ip.value.toString(16).padStart(8, "0")
    : createHash("sha256").update(formatIp(ip)).digest("hex").slice(0, 8);
  return `0e:50:${tail.match(/../g)!.join(":")}`;
}

/**
 * Pure: the addresses VXLAN is taken from: every IP of every other routed node, canonical and sorted. Not only
 * the peers this node tunnels to: a peer may count this node off-link where this node counts it on-link (a
 * /32 on its side), and then its traffic arrives encapsulated. Text that does not parse never reaches nft.
 */
export function vxlanSenders(routes: DesiredRoute[]): string[] {
  // Every pass asks, and the planner hands back the same route objects while their records are unchanged:
  // comparing those is ~100× cheaper than rebuilding the set at thousands of nodes.
  if (lastSenders && sameItems(lastSenders.routes, routes)) return lastSenders.senders;
  const senders = new Set<string>();
  for (const route of routes) for (const ip of canonicalIps(route.nodeIPs)) senders.add(ip);
  lastSenders = { routes: routes.slice(), senders: [...senders].sort() };
  return lastSenders.senders;
}
let lastSenders: { routes: DesiredRoute[]; senders: string[] } | undefined;
const sameItems = <T>(a: T[], b: T[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** A record's node IPs arrive as the same array while it is unchanged: parsed once, not on every pass. */
const canonicalOf = new WeakMap<string[], string[]>();
function canonicalIps(nodeIPs: string[]): string[] {
  let ips = canonicalOf.get(nodeIPs);
  if (!ips) {
    ips = nodeIPs.flatMap((text) => { const ip = canonicalIp(text); return ip === undefined ? [] : [ip]; });
    canonicalOf.set(nodeIPs, ips);
  }
  return ips;
}

/** The first address of a pod CIDR: the overlay gateway (it lives on the remote node's podnet.vxlan). */
export const overlayGateway = (cidr: string) => { const c = parseCidr(cidr); return formatIp({ family: c.family, value: c.network }); };

const via = (route: DesiredRoute) => (route.via === undefined ? {} : { via: route.via });

/**
 * The node IP a direct route goes through: its first of the CIDR's family (`via`) when that is on a local
 * subnet, else the first other one of that family that is (a node with an address on a storage or management
 * network listed before its shared one).
 */
function directGateway(route: DesiredRoute, deviceFor: (ip: string) => string | undefined): { via: string; linkDev: string } | undefined {
  if (route.via === undefined) return undefined;
  const first = deviceFor(route.via);
  if (first) return { via: route.via, linkDev: first };
  const family = familyOfText(route.via);
  for (const ip of route.nodeIPs) {
    if (ip === route.via || familyOfText(ip) !== family) continue;
    const linkDev = deviceFor(ip);
    if (linkDev) return { via: ip, linkDev };
  }
  return undefined;
}

/** Why a node with no on-link node IP of the CIDR's family gets no direct route. */
function notOnLink(route: DesiredRoute): string {
  if (route.via === undefined) return `node ${route.nodeName} has no IPv${parseCidr(route.dst).family} node IP to route through`;
  const family = familyOfText(route.via);
  const all = route.nodeIPs.filter((ip) => familyOfText(ip) === family);
  return all.length > 1 ? `none of ${all.join(", ")} is on a local subnet` : `${route.via} is not on a local subnet`;
}

/**
 * `deviceFor`: the local interface whose subnet holds an IP, if any (a node there is a direct neighbour).
 * `isLocal`: whether an IP is this node's own. A peer naming one as its node IP (a recycled address while the
 * old Node lingers) is unreachable: the kernel would take a route through our own address and drop the traffic.
 * `fdb`: podnet.vxlan's forwarding entries as the kernel holds them (see withoutSharedMacs).
 */
export function splitRoutes(routes: DesiredRoute[], deviceFor: (ip: string) => string | undefined, mode: OverlayMode, selfUnderlay: string | undefined,
  isLocal: (ip: string) => boolean = () => false, fdb: ReadonlyArray<{ mac: string; dst: string }> = []): RouteSplit {
  const underlayFamily = selfUnderlay ? parseIp(selfUnderlay).family : undefined;
  const split: RouteSplit = { kernel: [], peers: [], unreachable: [] };
  const peers = new Map<string, OverlayPeer>();
  for (const route of routes) {
    const ownAddress = route.nodeIPs.find(isLocal);
    if (ownAddress) {
      split.unreachable.push({ dst: route.dst, ...via(route), nodeName: route.nodeName, reason: `${ownAddress} is an address of this node, not of node ${route.nodeName} (two Nodes claim it?)` });
      continue;
    }
    const direct = mode === "vxlan" ? undefined : directGateway(route, deviceFor);
    if (direct) { split.kernel.push({ dst: route.dst, via: direct.via, nodeName: route.nodeName, linkDev: direct.linkDev }); continue; }
    const peerIp = underlayIpOf(route.nodeIPs);
    const peerFamily = peerIp === undefined ? undefined : familyOfText(peerIp);
    const reason = mode === "none"
      ? `${notOnLink(route)} and the overlay is off (--overlay=none)`
      : !selfUnderlay ? "this node has no node IP to send VXLAN from yet"
        : peerFamily === underlayFamily ? undefined
          : peerFamily === 6 ? `node ${route.nodeName} has no IPv${underlayFamily} node IP for the VXLAN underlay`
            : `node ${route.nodeName} sends VXLAN from its IPv4 node IP ${peerIp}, and this node has none (its VXLAN endpoint is ${selfUnderlay})`;
    if (reason) { split.unreachable.push({ dst: route.dst, ...via(route), nodeName: route.nodeName, reason }); continue; }
    const gw = overlayGateway(route.dst);
    split.kernel.push({ dst: route.dst, via: gw, nodeName: route.nodeName, dev: VXLAN_DEVICE });
    const peer = peers.get(route.nodeName) ?? { nodeName: route.nodeName, underlayIp: peerIp!, mac: vtepMac(peerIp!), gateways: [] };
    peer.gateways.push({ dst: route.dst, gw });
    peers.set(route.nodeName, peer);
  }
  split.peers = [...peers.values()];
  return withoutSharedMacs(split, selfUnderlay, fdb);
}

/**
 * Pure: the split without overlay peers whose VTEP MAC another peer or this node has too. vtepMac gives IPv4
 * addresses MACs of their own, but an IPv6 address only 4 bytes of a hash: among thousands of IPv6 underlay
 * addresses two may share one (about 0.3% of clusters at 5,000 nodes). A MAC has one forwarding entry, so one
 * of the two would get the other's pod traffic, silently; left out, they are reported. Of peers that share a
 * MAC, the one the kernel's entry already sends it to keeps the tunnel, so a joining node never takes a
 * working node's overlay away; else the lowest address. A peer with this node's own MAC is left out: its device
 * drops frames that carry its own MAC as their source (the kernel takes them for a loop).
 */
function withoutSharedMacs(split: RouteSplit, selfUnderlay: string | undefined, fdb: ReadonlyArray<{ mac: string; dst: string }>): RouteSplit {
  const ownMac = selfUnderlay === undefined ? undefined : vtepMac(selfUnderlay);
  const seen = new Set<string>();
  const shared = new Set<string>();
  for (const p of split.peers) {
    if (seen.has(p.mac) || p.mac === ownMac) shared.add(p.mac);
    seen.add(p.mac);
  }
  if (shared.size === 0) return split;
  const out = new Map<string, string>(); // node name → why
  for (const mac of shared) {
    const sharing = split.peers.filter((p) => p.mac === mac);
    if (mac === ownMac) {
      for (const p of sharing) out.set(p.nodeName, `its VXLAN MAC ${mac} (derived from ${p.underlayIp}) is also this node's (from ${selfUnderlay}); ${WAY_OUT}`);
      continue;
    }
    const held = fdb.find((f) => f.mac === mac);
    const keeper = sharing.find((p) => held !== undefined && p.underlayIp === canonicalIp(held.dst))
      ?? sharing.reduce((low, p) => (parseIp(p.underlayIp).value < parseIp(low.underlayIp).value ? p : low));
    for (const p of sharing.filter((x) => x !== keeper)) {
      out.set(p.nodeName, p.underlayIp === keeper.underlayIp
        ? `its VXLAN endpoint ${p.underlayIp} is also node ${keeper.nodeName}'s (two Nodes claim the address?), which keeps the tunnel`
        : `its VXLAN MAC ${mac} (derived from ${p.underlayIp}) is also node ${keeper.nodeName}'s (from ${keeper.underlayIp}), which keeps the tunnel: `
          + `one forwarding entry cannot reach both; ${WAY_OUT}`);
    }
  }
  const left = split.peers.filter((p) => out.has(p.nodeName));
  return {
    kernel: split.kernel.filter((k) => !k.dev || !out.has(k.nodeName)),
    peers: split.peers.filter((p) => !out.has(p.nodeName)),
    unreachable: [...split.unreachable, ...left.flatMap((p) => p.gateways.map((g) => ({ dst: g.dst, nodeName: p.nodeName, reason: out.get(p.nodeName)! })))],
  };
}
const WAY_OUT = "give one of the two nodes another first node IP (its VXLAN endpoint), or give the nodes IPv4 node IPs (IPv4 endpoints never share a MAC)";
