import { canonicalIp, parseCidr } from "../lib/cidr.js";
import { VXLAN_DEVICE, vtepMac, type OverlayPeer } from "./overlay-plan.js";

/**
 * Pure: the podnet.vxlan device, its addresses, its forwarding entries (peer MAC → peer node IP) and its
 * neighbour entries (peer gateway → peer MAC) as they should be, against what the kernel has → the `ip`
 * and `bridge` batch lines that close the gap. Entries not derived from a live peer are removed.
 */

export interface VxlanDesired {
  vni: number; port: number; local: string; mtu: number;
  /** This node's overlay gateway addresses (network address of each own pod CIDR, as /32 or /128). */
  addresses: string[];
  peers: OverlayPeer[];
}

export interface VxlanDevice { kind: string; vni?: number; port?: number; local?: string; mac: string; mtu: number; up: boolean; addresses: string[] }
export interface VxlanObserved { device?: VxlanDevice; fdb: Array<{ mac: string; dst: string }>; neighbors: Array<{ ip: string; mac: string }> }
export interface VxlanLines { ip: string[]; bridge: string[] }
/**
 * `after`: neighbour and fdb entries no live peer needs, removed only after the route batch. A peer that became
 * a neighbour still has its route through the device until that batch replaces it, and without its entries
 * the route's traffic would be dropped meanwhile.
 */
export interface VxlanPlan extends VxlanLines { after: VxlanLines }

const dev = VXLAN_DEVICE;

/** How many changes a plan makes, its deferred removals included. */
export const vxlanChanges = (plan: VxlanPlan) => plan.ip.length + plan.bridge.length + plan.after.ip.length + plan.after.bridge.length;

/**
 * Whether a plan deletes the device (to remove or re-create it): the kernel then drops every nexthop and
 * route through it, so a view of the routing tables taken before is stale.
 */
export const replacesDevice = (plan: VxlanPlan) => plan.ip.some((line) => line.startsWith("link del "));

export function planVxlan(desired: VxlanDesired | undefined, observed: VxlanObserved): VxlanPlan {
  const plan: VxlanPlan = { ip: [], bridge: [], after: { ip: [], bridge: [] } };
  const current = observed.device;
  if (!desired) {
    if (current) plan.ip.push(`link del ${dev}`);
    return plan;
  }
  const mac = vtepMac(desired.local);
  const recreate = !current || current.kind !== "vxlan" || current.vni !== desired.vni || current.port !== desired.port || canonicalIp(current.local ?? "") !== canonicalIp(desired.local);
  if (recreate) {
    if (current) plan.ip.push(`link del ${dev}`);
    plan.ip.push(`link add ${dev} address ${mac} type vxlan id ${desired.vni} local ${desired.local} dstport ${desired.port} nolearning`);
  } else if (current.mac !== mac) plan.ip.push(`link set dev ${dev} address ${mac}`);
  if (recreate || current.mtu !== desired.mtu || !current.up) plan.ip.push(`link set dev ${dev} mtu ${desired.mtu} up`);
  // A recreated device starts empty: plan every entry against nothing.
  const seen: VxlanObserved = recreate ? { fdb: [], neighbors: [] } : observed;
  const haveAddresses = recreate ? [] : current.addresses;
  for (const a of desired.addresses.filter((x) => !haveAddresses.includes(x))) plan.ip.push(`addr replace ${a} dev ${dev}${a.includes(":") ? " nodad" : ""}`);
  for (const a of haveAddresses.filter((x) => !desired.addresses.includes(x))) plan.ip.push(`addr del ${a} dev ${dev}`);
  planNeighbors(desired.peers, seen.neighbors, plan);
  planFdb(desired.peers, seen.fdb, plan);
  return plan;
}

function planNeighbors(peers: OverlayPeer[], have: VxlanObserved["neighbors"], plan: VxlanPlan): void {
  const want = new Map(peers.flatMap((p) => p.gateways.map((g) => [g.gw, p.mac] as const)));
  const haveMap = new Map(have.map((n) => [n.ip, n.mac]));
  for (const [ip, mac] of want) if (haveMap.get(ip) !== mac) plan.ip.push(`neigh replace ${ip} lladdr ${mac} dev ${dev} nud permanent`);
  for (const ip of haveMap.keys()) if (!want.has(ip)) plan.after.ip.push(`neigh del ${ip} dev ${dev}`);
}

function planFdb(peers: OverlayPeer[], have: VxlanObserved["fdb"], plan: VxlanPlan): void {
  const want = new Map(peers.map((p) => [p.mac, p.underlayIp]));
  const haveMap = new Map(have.map((f) => [f.mac, f.dst]));
  for (const [mac, dst] of want) if (haveMap.get(mac) !== dst) plan.bridge.push(`fdb replace ${mac} dev ${dev} dst ${dst} self permanent`);
  for (const [mac, dst] of haveMap) if (!want.has(mac)) plan.after.bridge.push(`fdb del ${mac} dev ${dev} dst ${dst} self`);
}

/** This node's overlay addresses: the first address of each own pod CIDR, as a host route. */
export function overlayAddresses(ownCidrs: string[]): string[] {
  return ownCidrs.map((c) => {
    const cidr = parseCidr(c);
    return `${c.split("/")[0]}/${cidr.family === 4 ? 32 : 128}`;
  });
}

/** Another VXLAN device on this node, as `ip -d link show type vxlan` tells it. */
export interface OtherVxlan { name: string; vni?: number; port?: number }

/**
 * Pure: what to tell the user when the kernel refused podnet.vxlan because its UDP port or VNI is taken (by a
 * former CNI's device, flannel.1 on 8472 and VNI 1, or another socket on the port). iproute2 says only "Address
 * already in use" or "A VXLAN device with the specified VNI already exists", naming neither.
 */
export function vxlanClash(errors: readonly string[], want: { port: number; vni: number }, others: readonly OtherVxlan[]): string | undefined {
  const text = errors.join("\n");
  const portTaken = /Address already in use/i.test(text);
  const vniTaken = /VNI already exists/i.test(text);
  if (!portTaken && !vniTaken) return undefined;
  const onPort = others.filter((o) => o.port === want.port);
  const flag = vniTaken ? `--vxlan-id` : `--vxlan-port`;
  const what = vniTaken ? `VNI ${want.vni} on UDP port ${want.port}` : `UDP port ${want.port}`;
  if (onPort.length === 0) return `${what} is taken by another socket (\`ss -ulpn sport = :${want.port}\` names it): stop it, or give the agent another ${flag} (the same on every node)`;
  return `${what} is taken by ${onPort.map((o) => `${o.name} (VNI ${o.vni ?? "?"})`).join(", ")}: delete that device if it is a former CNI's, or give the agent another ${flag} (the same on every node)`;
}
