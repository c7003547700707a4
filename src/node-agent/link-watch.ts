import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { canonicalIp, familyOfText, formatCidr, parseCidr, type Cidr } from "../lib/cidr.js";
import { diesWithParent } from "../lib/parent-death.js";
import { overlayGateway } from "./overlay-plan.js";
import { normaliseDst } from "./routes-plan.js";

/**
 * A line of `ip -o monitor link address route nexthop`: a device's link changed, one of its addresses came or
 * went, or something removed one of podnet's routes or nexthops.
 */
export type NetEvent = { kind: "link"; device: string } | AddressEvent | PodnetRouteGone | ForeignRouteGone | { kind: "restart" };
/** A main-table route of another owner deleted (a leftover holding this node's pod CIDR, removed as told). */
export interface ForeignRouteGone { kind: "foreign-route-gone"; dst: string }
export interface AddressEvent { kind: "address"; device: string; address: string; scope: string; deleted: boolean }
/** A route (`dst`) or nexthop object (`via`, its gateway, if it has one) of podnet's protocol deleted. */
export type PodnetRouteGone = { kind: "route-gone"; dst: string } | { kind: "nexthop-gone"; via?: string };

/**
 * Pure: what an `ip -o monitor link address` line is about ("3: eth0@if7: <…>", "Deleted 5: veth1: …",
 * "2: eth0    inet 192.168.1.5/24 … scope global eth0 …"). undefined for anything else.
 */
export function netEvent(line: string): NetEvent | undefined {
  if (line.startsWith("Deleted ") && / proto (?:249|podnet)\b/.test(line)) {
    const nexthop = /^Deleted id \d+(?: via (\S+))?/.exec(line);
    if (nexthop) return { kind: "nexthop-gone", ...(nexthop[1] ? { via: nexthop[1] } : {}) };
    const route = /^Deleted (?:unicast |blackhole |unreachable |prohibit )?(\S+) /.exec(line);
    if (route) return { kind: "route-gone", dst: route[1]! };
  }
  const foreign = /^Deleted (?:unicast |blackhole |unreachable |prohibit )?([0-9a-f.:]+(?:\/\d+)?) (?!.*\btable )/.exec(line);
  if (foreign && !/^Deleted \d+: /.test(line)) return { kind: "foreign-route-gone", dst: foreign[1]! };
  // A point-to-point address ("inet 10.1.1.1 peer 10.1.1.2/30") carries its prefix on the peer.
  const address = /^(Deleted )?\d+: (\S+)\s+inet6? (\S+)(?: peer \S+?(\/\d+))? .*?\bscope (\S+)/.exec(line);
  if (address) {
    const text = address[4] && !address[3]!.includes("/") ? `${address[3]}${address[4]}` : address[3]!;
    return { kind: "address", device: address[2]!, address: text, scope: address[5]!, deleted: Boolean(address[1]) };
  }
  const link = /^(?:Deleted )?\d+: ([^:@\s]+)[@:]/.exec(line);
  return link ? { kind: "link", device: link[1]! } : undefined;
}

/**
 * The node's on-link subnets, as address events tell them. Which peers are direct neighbours depends on these
 * alone, so a full pass is due only when one appears or goes. Host addresses (/32, /128: Service IPs kube-proxy's
 * IPVS mode puts on kube-ipvs0, VIPs, node-local DNS) make no neighbours, and an address seen again (IPv6
 * lifetimes refreshed by every router advertisement) changes nothing.
 */
export class OnLinkSubnets {
  private readonly addresses = new Map<string, Set<string>>(); // "device subnet" → its addresses

  /** `ownDevices`: devices the agent itself addresses (the pod bridge, the overlay), whose changes it made. */
  constructor(private readonly ownDevices: readonly string[] = []) {}

  /** Forget what was seen (the monitor restarted: events may have been missed; a full pass reads the kernel). */
  forget(): void { this.addresses.clear(); }

  changedBy(event: AddressEvent): boolean {
    // Pods' veths bring only link-local addresses.
    if (event.scope !== "global" || this.ownDevices.includes(event.device)) return false;
    let cidr: Cidr;
    try { cidr = parseCidr(event.address, { allowHostBits: true }); } catch { return true; } // unknown form: look again
    if (cidr.prefix === (cidr.family === 4 ? 32 : 128)) return false;
    const key = `${event.device} ${formatCidr(cidr)}`;
    const known = this.addresses.get(key);
    if (event.deleted) {
      known?.delete(event.address);
      if (known?.size) return false;
      this.addresses.delete(key);
      return true;
    }
    if (known) { known.add(event.address); return false; }
    this.addresses.set(key, new Set([event.address]));
    return true;
  }
}

/**
 * Whether a deletion of podnet's was someone else's: a route this node should have, or a nexthop one of them may
 * go through. systemd-networkd (ManageForeignRoutes, on by default) flushes routes of protocols it does not know
 * on a restart or reconfigure, and a nexthop's flush takes its routes along without a notice for each. The
 * agent's own deletions are of routes it no longer wants, so they wake nothing. A route's nexthop may go through
 * any of its node's IPs, or, through the tunnel, the first address of its pod CIDR: all count. The sets are
 * built on the first deletion after a pass, not on every pass (thousands of routes, a pass per join).
 */
export class ExpectedRoutes {
  private routes: ReadonlyArray<{ dst: string; via?: string; nodeIPs?: readonly string[] }> = [];
  private sets?: { dsts: Set<string>; gateways: Set<string> };

  /** At a pass's start: the routes it wants (its own deletions, of routes it no longer wants, come after). */
  expect(routes: ReadonlyArray<{ dst: string; via?: string; nodeIPs?: readonly string[] }>): void {
    this.routes = routes;
    this.sets = undefined;
  }

  wanted(event: PodnetRouteGone): boolean {
    const { dsts, gateways } = this.sets ??= {
      dsts: new Set(this.routes.map((r) => r.dst)),
      gateways: new Set(this.routes.flatMap((r) => [...(r.via ? [r.via] : []), ...(r.nodeIPs ?? []), overlayGateway(r.dst)]).map((ip) => canonicalIp(ip) ?? ip)),
    };
    if (event.kind === "nexthop-gone") return event.via === undefined || gateways.has(canonicalIp(event.via) ?? event.via);
    const dst = normaliseDst(event.dst, familyOfText(event.dst));
    return dst === undefined || dsts.has(dst);
  }
}

const onPath = (tool: string) => (process.env.PATH ?? "").split(":").some((dir) => dir !== "" && existsSync(join(dir, tool)));

export interface LinkWatch { stop(): void }

/**
 * Calls `onChange(event)` for every link event the kernel reports (carrier, state, flags, MTU, a device gone),
 * every address added or removed, and every deletion of a podnet route or nexthop.
 *
 * Why links: the kernel flushes nexthop objects, and every route through them, from a device that loses its
 * carrier (a switch reboot, a NIC reset), and does not bring them back with the carrier; classic routes only go
 * "linkdown". Without a watch, such routes stayed gone until the next full resync.
 * Why addresses: ifupdown, DHCP and NetworkManager bring a link up before its address is back. A pass on the
 * link event finds no subnet for the neighbours then, and only the address's return makes them direct again.
 *
 * One `ip monitor` per agent, started with it while it is still small (see tool-shell.ts on fork cost). It
 * ends with the agent: stop() kills it, a pod's processes end with its first one, and in a node namespace the
 * local cluster's teardown ends every process there.
 */
export function watchLinks(netns: string | undefined, onChange: (event: NetEvent) => void, restartMs = 5_000): LinkWatch {
  let child: ChildProcess | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let restarts = 0;
  const start = () => {
    if (restarts++ > 0) onChange({ kind: "restart" }); // events may have been missed while it was down
    const monitor = ["ip", ...(netns ? ["-n", netns] : []), "-o", "monitor", "link", "address", "route", "nexthop"];
    // Dies with the agent: killed outright (OOM, SIGKILL), it would leave `ip monitor` holding its network
    // namespace open until the next event hit the closed pipe (a pod's PID namespace does this for a DaemonSet,
    // not for an agent run as a plain process). Only when `ip` is there: the wrapper would turn a missing one
    // into an exit every restartMs, each a full pass, where spawning it alone fails once.
    const argv = onPath("ip") ? diesWithParent(monitor) : monitor;
    child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "ignore"] });
    let partial = "";
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop()!;
      for (const line of lines) { const event = netEvent(line); if (event) onChange(event); }
    });
    child.on("error", () => undefined); // no `ip`: RoutesProgrammed says so; the resync still repairs
    child.on("exit", () => { if (!stopped) timer = setTimeout(start, restartMs).unref(); });
  };
  start();
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      child?.kill();
    },
  };
}

/** Pure: whether a foreign route's deletion removes one of the holders reported on this node's pod CIDR. */
export function removesHolder(event: ForeignRouteGone, holders: ReadonlyArray<{ routes: ReadonlyArray<{ dst: string }> }> | undefined): boolean {
  if (!holders?.length) return false;
  const dst = normaliseDst(event.dst, familyOfText(event.dst));
  return holders.some((h) => h.routes.some((r) => normaliseDst(r.dst, familyOfText(r.dst)) === dst));
}

/**
 * Which events call for a full pass. A device that carries routes changed (carrier lost or back): the kernel may
 * have flushed podnet's nexthops and routes on it, which only a full pass reads back and repairs. An on-link
 * subnet came or went (an uplink's address back after its link): which peers are direct neighbours may have
 * changed. A route of podnet's deleted by someone else (systemd-networkd's flush of foreign routes): put back
 * now. A route PodCIDRHeldByDevice named deleted: the condition clears now. A monitor restart: events missed.
 */
export function fullPassTrigger(ctx: {
  ownDevices: readonly string[]; routedDevices: () => ReadonlySet<string>; expected: ExpectedRoutes;
  holders: () => ReadonlyArray<{ routes: ReadonlyArray<{ dst: string }> }> | undefined;
}): (event: NetEvent) => boolean {
  const subnets = new OnLinkSubnets(ctx.ownDevices);
  return (event) => {
    switch (event.kind) {
      case "restart": subnets.forget(); return true; // what it missed is read by the full pass
      case "link": return ctx.routedDevices().has(event.device);
      case "address": return subnets.changedBy(event);
      case "foreign-route-gone": return removesHolder(event, ctx.holders());
      default: return ctx.expected.wanted(event);
    }
  };
}
