import { canonicalIp, cidrContainsIp, parseCidr, parseIp, type Cidr } from "../lib/cidr.js";
import { run, runOk } from "./exec.js";
import type { ObservedNexthop } from "./nexthop-plan.js";
import type { HostAddress } from "./pod-cidr-holders.js";
import { normaliseDst, PODNET_PROTO, type ObservedRoute } from "./routes-plan.js";
import { BRIDGE_NAME } from "./cni-conflist.js";
import { VXLAN_DEVICE } from "./overlay-plan.js";

/** Thin shell over iproute2: read with `ip -json`, write with one `ip -batch -` process. */

interface JsonRoute { dst: string; gateway?: string; dev?: string; protocol?: string | number; table?: string; nhid?: number }
interface JsonNexthop { id: number; gateway?: string; dev?: string; protocol?: string | number; flags?: string[] }
export interface JsonAddr {
  ifname: string; mtu: number; link_type?: string; linkinfo?: { info_kind?: string };
  addr_info?: Array<{ family: string; local: string; prefixlen: number; scope: string }>;
}

const ownProtocol = (p: string | number | undefined) => String(p) === String(PODNET_PROTO) || p === "podnet";

/**
 * Every route of the main table, both families, marked ours when it carries podnet's protocol. With
 * nexthop_compat_mode=0 a route through a nexthop object comes with its id only: see withNexthopGateways.
 */
export async function readRoutes(netns?: string): Promise<ObservedRoute[]> {
  const out: ObservedRoute[] = [];
  for (const family of [4, 6] as const) {
    const json = await runOk("ip", [`-${family}`, "-json", "route", "show", "table", "main"], { netns });
    for (const r of JSON.parse(json || "[]") as JsonRoute[]) {
      const dst = normaliseDst(r.dst, family);
      if (!dst || (family === 6 && r.dst.startsWith("fe80:"))) continue;
      out.push({ dst, ...(r.gateway ? { gateway: r.gateway } : {}), ...(r.dev ? { dev: r.dev } : {}), ours: ownProtocol(r.protocol), ...(r.nhid ? { nhid: r.nhid } : {}) });
    }
  }
  return out;
}

/** Every nexthop object (any owner: their ids are taken), or undefined when the kernel has none (< 5.3). */
export async function readNexthops(netns?: string): Promise<ObservedNexthop[] | undefined> {
  const r = await run("ip", ["-json", "nexthop", "show"], { netns });
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout || "[]") as JsonNexthop[]).map((n) => ({
    id: n.id, ...(n.gateway ? { gateway: n.gateway } : {}), ...(n.dev ? { dev: n.dev } : {}),
    onlink: (n.flags ?? []).includes("onlink"), ours: ownProtocol(n.protocol),
  }));
}

export interface BatchResult { errors: string[] }

/**
 * Apply route and nexthop changes in one process. `ip -batch` is not transactional; with -force it goes on
 * past a bad line, and the caller re-reads the kernel to learn what really happened. A fresh `ip` per batch
 * (forked by a tool shell, so cheaply): a long-lived `ip -batch -` keeps the device indexes it resolved, and
 * after podnet.vxlan or an uplink is re-created it fails every route on that device ("Invalid device index",
 * measured).
 */
export async function applyBatch(text: string, netns?: string): Promise<BatchResult> {
  if (!text) return { errors: [] };
  const r = await run("ip", ["-force", "-batch", "-"], { netns, input: text, timeoutMs: 60_000 });
  const errors = r.stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  return { errors: r.code === 0 ? [] : errors.length ? errors : [`ip -batch exited ${r.code}`] };
}

export async function flushOwnRoutes(netns?: string): Promise<void> {
  // Nexthops first: deleting one deletes the routes through it, and `ip route flush` cannot delete routes that
  // use a nexthop object (the kernel answers EINVAL). A kernel without nexthop objects has none to flush.
  await run("ip", ["nexthop", "flush", "proto", String(PODNET_PROTO)], { netns });
  for (const family of [4, 6] as const) await runOk("ip", [`-${family}`, "route", "flush", "proto", String(PODNET_PROTO)], { netns });
}

export interface LinkInfo {
  mtuOf: (ip: string) => number | undefined;
  /**
   * The interface whose subnet holds this IP (the longest prefix), if any: whether a node is a direct neighbour,
   * and the device its route and nexthop object name.
   */
  deviceFor: (ip: string) => string | undefined;
  /** Whether an IP is one of this node's own addresses (a peer must never be routed through it). */
  isLocal: (ip: string) => boolean;
  /** Devices holding a global address: the ones routes and nexthops go out of. */
  devices: ReadonlySet<string>;
  /** Every global address, with its device (another plugin's bridge holding this node's pod gateway, say). */
  addresses: readonly HostAddress[];
}


/** Local subnets and the MTU of the interface carrying an IP. */
export async function readLinks(netns?: string): Promise<LinkInfo> {
  const links = JSON.parse((await runOk("ip", ["-details", "-json", "addr", "show"], { netns })) || "[]") as JsonAddr[];
  // Only a node IP on lo or a dummy device needs the default routes' devices: no extra read on other nodes.
  const standing = links.some((l) => isStandIn(l) && (l.addr_info ?? []).some((a) => a.scope === "global"));
  return linkInfoOf(links, standing ? await defaultRouteDevices(netns) : []);
}

async function defaultRouteDevices(netns?: string): Promise<string[]> {
  const routes: DefaultRoute[] = [];
  for (const family of [4, 6] as const) {
    const r = await run("ip", [`-${family}`, "-json", "route", "show", "default"], { netns });
    if (r.code === 0) routes.push(...(JSON.parse(r.stdout || "[]") as DefaultRoute[]));
  }
  // With nexthop_compat_mode=0 a route through a nexthop object names only its id.
  const bare = routes.some((r) => r.nhid !== undefined && !r.dev && !r.nexthops);
  const nexthops = bare ? JSON.parse((await run("ip", ["-json", "nexthop", "show"], { netns })).stdout || "[]") as JsonNexthopObject[] : [];
  return devicesOfRoutes(routes, nexthops);
}

interface DefaultRoute { dev?: string; nhid?: number; nexthops?: Array<{ dev?: string }> }
interface JsonNexthopObject { id: number; dev?: string; group?: Array<{ id: number }> }

/** Pure: the devices default routes go out of, through nexthop objects and groups where they name only an id. */
export function devicesOfRoutes(routes: DefaultRoute[], nexthops: JsonNexthopObject[]): string[] {
  const byId = new Map(nexthops.map((n) => [n.id, n]));
  const viaObject = (id: number | undefined): Array<string | undefined> => {
    const n = id === undefined ? undefined : byId.get(id);
    return n?.group ? n.group.map((m) => byId.get(m.id)?.dev) : [n?.dev];
  };
  const devices = routes.flatMap((r) => (r.dev || r.nexthops ? [r.dev, ...(r.nexthops ?? []).map((n) => n.dev)] : viaObject(r.nhid)));
  return [...new Set(devices.filter((d): d is string => Boolean(d)))];
}

const isStandIn = (link: JsonAddr) => link.link_type === "loopback" || link.linkinfo?.info_kind === "dummy";

/**
 * Pure: LinkInfo from `ip -details -json addr show`. A node IP on the loopback or a dummy device (routing to the
 * host: the address is announced by BGP, the traffic arrives on the uplinks) takes its MTU from the uplinks:
 * the smallest of the default routes' devices (links with only link-local addresses, as BGP unnumbered has, are
 * uplinks too), else of the devices with a global address, else the device's own capped at 1500. lo's 65536
 * is no packet size, and a dummy device's 1500 is nobody's link.
 */
export function linkInfoOf(links: JsonAddr[], defaultRouteDevices: string[] = []): LinkInfo {
  const subnets: Array<{ subnet: Cidr; dev: string }> = [];
  const mtuByIp = new Map<string, number>(); // this node's own addresses (canonical) → their link's MTU
  const addresses: HostAddress[] = [];
  const candidates = links.filter((l) => !isStandIn(l) && l.ifname !== BRIDGE_NAME && l.ifname !== VXLAN_DEVICE);
  const smallest = (list: JsonAddr[]) => (list.length ? Math.min(...list.map((l) => l.mtu)) : undefined);
  const uplinkMtu = smallest(candidates.filter((l) => defaultRouteDevices.includes(l.ifname)))
    ?? smallest(candidates.filter((l) => (l.addr_info ?? []).some((a) => a.scope === "global")));
  for (const link of links) {
    for (const a of link.addr_info ?? []) {
      if (a.scope !== "global" || (a.family !== "inet" && a.family !== "inet6")) continue;
      const own = canonicalIp(a.local);
      if (own) mtuByIp.set(own, isStandIn(link) ? uplinkMtu ?? Math.min(link.mtu, 1500) : link.mtu);
      addresses.push({ dev: link.ifname, local: a.local, prefixlen: a.prefixlen, ...(link.linkinfo?.info_kind ? { kind: link.linkinfo.info_kind } : {}) });
      try { subnets.push({ subnet: parseCidr(`${a.local}/${a.prefixlen}`, { allowHostBits: true }), dev: link.ifname }); } catch { /* not an address we route through */ }
    }
  }
  // Longest prefix first, as the kernel picks: with eth0 on 10.0.0.5/8 and eth1 on 10.1.2.5/24, 10.1.2.9 is on eth1.
  subnets.sort((a, b) => b.subnet.prefix - a.subnet.prefix);
  const deviceFor = (text: string) => {
    try { const ip = parseIp(text); return subnets.find((s) => cidrContainsIp(s.subnet, ip))?.dev; } catch { return undefined; }
  };
  const mtuOf = (text: string) => { const ip = canonicalIp(text); return ip === undefined ? undefined : mtuByIp.get(ip); };
  return { mtuOf, deviceFor, isLocal: (text) => mtuOf(text) !== undefined, devices: new Set(subnets.map((s) => s.dev)), addresses };
}
