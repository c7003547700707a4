import { formatCidr, parseCidr } from "../lib/cidr.js";
import { VXLAN_DEVICE, type KernelRoute } from "./overlay-plan.js";

/** podnet's own route protocol number: how the agent knows its routes after a restart. */
export const PODNET_PROTO = 249;

export interface ObservedRoute { dst: string; gateway?: string; dev?: string; ours: boolean; nhid?: number }

/** `dev`: the overlay device (the route is onlink); `linkDev`: the interface a direct route's gateway is on. */
export type RouteAction =
  | { kind: "add"; dst: string; via: string; dev?: string; linkDev?: string }
  | { kind: "replace"; dst: string; via: string; dev?: string; linkDev?: string; was?: string }
  | { kind: "delete"; dst: string };

/**
 * The kernel's routes by prefix, podnet's and other owners' apart. Event-driven passes plan a handful of changes
 * against thousands of routes, so the table is built once per kernel read and then kept in step with every
 * applied batch (`applyActions`) instead of being rebuilt from a list on each pass.
 */
export class RouteTable {
  readonly ours = new Map<string, ObservedRoute>();
  readonly foreign = new Map<string, ObservedRoute>();
  /** Every foreign route as read: two devices may hold one prefix (a leftover bridge's connected route and podnet0's). */
  readonly foreignListed: ObservedRoute[] = [];
  constructor(observed: Iterable<ObservedRoute>) {
    for (const r of observed) {
      (r.ours ? this.ours : this.foreign).set(r.dst, r);
      if (!r.ours) this.foreignListed.push(r);
    }
  }
  static of(observed: RouteTable | ObservedRoute[]): RouteTable {
    return observed instanceof RouteTable ? observed : new RouteTable(observed);
  }
  /** Record applied actions; `nhidOf` names the nexthop each added or replaced route now uses. */
  applyActions(actions: RouteAction[], nhidOf: ReadonlyMap<string, number>): void {
    for (const a of actions) {
      if (a.kind === "delete") { this.ours.delete(a.dst); continue; }
      const nhid = nhidOf.get(a.dst);
      const dev = a.dev ?? a.linkDev;
      this.ours.set(a.dst, { dst: a.dst, gateway: a.via, ...(dev ? { dev } : {}), ours: true, ...(nhid !== undefined ? { nhid } : {}) });
    }
  }
}

export interface RoutePlan {
  actions: RouteAction[];
  /** Desired prefixes already routed by someone else: never touched, reported. */
  conflicts: Array<{ dst: string; reason: string }>;
  /** Routes that will be in place after the actions. */
  installed: number;
}

/**
 * Pure: the kernel routes this node should hold (direct, or through the overlay device; one per prefix) + what
 * the kernel has → the changes. Only routes with podnet's protocol are ever changed or deleted; a foreign route
 * for the same prefix wins and is reported.
 */
export function planRoutes(desired: KernelRoute[], observed: RouteTable | ObservedRoute[]): RoutePlan {
  const { ours, foreign } = RouteTable.of(observed);
  const plan: RoutePlan = { actions: [], conflicts: [], installed: 0 };
  // Run on every pass over thousands of unchanged routes: allocate only for what changes.
  let kept = 0;
  for (const route of desired) {
    const other = foreign.get(route.dst);
    if (other) {
      plan.conflicts.push({ dst: route.dst, reason: `${route.dst} is already routed ${other.gateway ? `via ${other.gateway}` : `on ${other.dev ?? "another device"}`} by another owner; podnet leaves it alone (wanted via ${route.via} for node ${route.nodeName})` });
      continue;
    }
    plan.installed++;
    const mine = ours.get(route.dst);
    if (!mine) { plan.actions.push({ kind: "add", ...target(route) }); continue; }
    kept++;
    // Rewritten when its device is not the one planned: onto or off the overlay, or after the node's address
    // moved to another interface (the kernel keeps an IPv6 route, and a nexthop object, on the old one).
    const moved = route.dev ? mine.dev !== route.dev : route.linkDev ? mine.dev !== route.linkDev : mine.dev === VXLAN_DEVICE;
    if (mine.gateway !== route.via || moved) plan.actions.push({ kind: "replace", ...target(route), ...(mine.gateway ? { was: mine.gateway } : {}) });
  }
  // Every podnet route is still wanted when each was matched once (prefixes are unique): nothing to delete.
  if (kept < ours.size) {
    const wanted = new Set(desired.filter((r) => !foreign.has(r.dst)).map((r) => r.dst));
    for (const dst of ours.keys()) if (!wanted.has(dst)) plan.actions.push({ kind: "delete", dst });
  }
  return plan;
}

const target = (route: KernelRoute) => ({ dst: route.dst, via: route.via, ...(route.dev ? { dev: route.dev } : route.linkDev ? { linkDev: route.linkDev } : {}) });

/** `ip -batch` lines for the actions; every route carries podnet's protocol. None: "", so no `ip` is spawned. */
export function routeBatch(actions: RouteAction[]): string {
  if (actions.length === 0) return "";
  return actions.map((a) => a.kind === "delete"
    ? `route del ${a.dst} proto ${PODNET_PROTO}`
    : `route ${a.kind} ${a.dst} via ${a.via}${a.dev ? ` dev ${a.dev} onlink` : a.linkDev ? ` dev ${a.linkDev}` : ""} proto ${PODNET_PROTO}`).join("\n") + "\n";
}

/** Kernel JSON dst ("default", "10.0.0.1", "10.244.1.0/24") → canonical CIDR text, or undefined. */
export function normaliseDst(dst: string, family: 4 | 6): string | undefined {
  if (dst === "default") return family === 4 ? "0.0.0.0/0" : "::/0";
  try {
    return formatCidr(parseCidr(dst.includes("/") ? dst : `${dst}/${family === 4 ? 32 : 128}`, { allowHostBits: true }));
  } catch {
    return undefined;
  }
}
