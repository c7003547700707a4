import { PODNET_PROTO, routeBatch, RouteTable, type ObservedRoute, type RouteAction } from "./routes-plan.js";

/**
 * Routes point at nexthop objects (Linux ≥ 5.3) instead of carrying their gateway. The kernel keys classic IPv4
 * gateway routes' shared nexthop info by device and protocol but not by gateway, so with one distinct gateway
 * per node every insert scans all the others. Measured here (kernel 6.18), `route add … via` for 2,500 / 5,000
 * / 10,000 / 20,000 nodes: 0.12 / 0.43 / 1.59 / 6.0 s; one nexthop per node plus `route add … nhid`: 0.13 s
 * for 5,000, 0.52 s for 20,000. IPv6 routes are not affected, but take the same path so there is only one.
 */

/** podnet's nexthop ids start here (its protocol number << 16), clear of the low ids routing daemons use. */
export const NEXTHOP_ID_BASE = PODNET_PROTO << 16;

/** A nexthop object in the kernel; `gateway` is absent for groups and blackholes, whose ids are still taken. */
export interface ObservedNexthop { id: number; gateway?: string; dev?: string; onlink: boolean; ours: boolean }

/**
 * Pure: each route that names a nexthop object but no gateway or device gets the object's. With
 * net.ipv4.nexthop_compat_mode=0 (per namespace; it governs IPv6 too) the kernel lists such a route by its id
 * alone, and compared as listed every podnet route looked moved: each full pass replaced them all. A group's
 * members are left out: podnet makes no groups, and a foreign route through one reads as with compat mode 1.
 */
export function withNexthopGateways(routes: ObservedRoute[], nexthops: ObservedNexthop[] | undefined): ObservedRoute[] {
  if (!nexthops?.length || !routes.some((r) => r.nhid !== undefined && !r.gateway && !r.dev)) return routes;
  const byId = new Map(nexthops.map((n) => [n.id, n]));
  return routes.map((r) => {
    const n = r.nhid === undefined || r.gateway || r.dev ? undefined : byId.get(r.nhid);
    return n ? { ...r, ...(n.gateway ? { gateway: n.gateway } : {}), ...(n.dev ? { dev: n.dev } : {}) } : r;
  });
}

export interface RouteBatch {
  /** `ip -batch` input: nexthops created first, then the route changes, then podnet nexthops left unused. */
  text: string;
  created: ObservedNexthop[];
  deleted: number[];
  /** Nexthop id each added or replaced route now uses (absent: written the classic way). */
  nhidOf: Map<string, number>;
  /** Routes each nexthop id gains (+) or loses (−) with this batch. */
  useChange: Map<number, number>;
}

const keyOf = (gateway: string, dev: string, onlink: boolean) => `${gateway}|${dev}|${onlink ? "onlink" : ""}`;

/**
 * The kernel's nexthop objects and how many routes use each, built once per kernel read and kept in step with
 * every applied batch (`applyBatch`), so a pass that changes one route does not re-index thousands.
 */
export class NexthopTable {
  /** Every id in the kernel, any owner's. */
  readonly taken = new Set<number>();
  /** podnet's reusable nexthops (a gateway on a device) by gateway, device and onlink. */
  readonly ours = new Map<string, number>();
  /** Routes (any owner's) per nexthop id. */
  private readonly users = new Map<number, number>();
  /** podnet nexthops no route uses: removed by the next batch. */
  private readonly idle = new Set<number>();
  private readonly keyOfId = new Map<number, string>();

  constructor(nexthops: ObservedNexthop[], routes: Iterable<ObservedRoute>) {
    for (const n of nexthops) {
      this.taken.add(n.id);
      if (n.ours && n.gateway && n.dev) this.ours.set(keyOf(n.gateway, n.dev, n.onlink), n.id);
    }
    for (const [key, id] of this.ours) this.keyOfId.set(id, key);
    for (const r of routes) if (r.nhid !== undefined) this.users.set(r.nhid, (this.users.get(r.nhid) ?? 0) + 1);
    for (const id of this.keyOfId.keys()) if (!this.users.get(id)) this.idle.add(id);
  }

  static of(nexthops: NexthopTable | ObservedNexthop[], routes: RouteTable): NexthopTable {
    return nexthops instanceof NexthopTable ? nexthops : new NexthopTable(nexthops, [...routes.ours.values(), ...routes.foreign.values()]);
  }

  /** Route count of a nexthop once `change` (per id) is applied. */
  usersAfter(id: number, change: ReadonlyMap<number, number>): number { return (this.users.get(id) ?? 0) + (change.get(id) ?? 0); }
  /** Ids whose use may have dropped to none: podnet's idle ones, and those the batch moved routes off. */
  candidatesForRemoval(change: ReadonlyMap<number, number>): number[] {
    return [...new Set([...this.idle, ...change.keys()])].filter((id) => this.keyOfId.has(id));
  }

  /** Record an applied batch. */
  applyBatch(batch: RouteBatch): void {
    for (const n of batch.created) {
      this.taken.add(n.id);
      const key = keyOf(n.gateway!, n.dev!, n.onlink);
      this.ours.set(key, n.id);
      this.keyOfId.set(n.id, key);
    }
    for (const [id, by] of batch.useChange) this.users.set(id, (this.users.get(id) ?? 0) + by);
    for (const id of batch.deleted) {
      this.taken.delete(id);
      const key = this.keyOfId.get(id)!;
      if (this.ours.get(key) === id) this.ours.delete(key);
      this.keyOfId.delete(id);
      this.users.delete(id);
    }
    for (const id of new Set([...this.idle, ...batch.useChange.keys()])) {
      if (this.keyOfId.has(id) && !this.users.get(id)) this.idle.add(id);
      else this.idle.delete(id);
    }
  }
}

/**
 * Pure: route actions + the kernel's routes and nexthops + "which device reaches this gateway" → one batch.
 * With `nexthops` undefined (a kernel without nexthop objects) every route is written the classic way. A
 * direct gateway whose device is unknown is written the classic way too, so nothing is ever left unrouted.
 * Tables passed in are read, never changed: the caller records the batch once it has been applied.
 */
export function planRouteBatch(actions: RouteAction[], observedRoutes: RouteTable | ObservedRoute[], observedNexthops: NexthopTable | ObservedNexthop[] | undefined,
  deviceFor: (gateway: string) => string | undefined): RouteBatch {
  if (!observedNexthops) return { text: routeBatch(actions), created: [], deleted: [], nhidOf: new Map(), useChange: new Map() };
  const routes = RouteTable.of(observedRoutes);
  const nexthops = NexthopTable.of(observedNexthops, routes);
  const created: ObservedNexthop[] = [];
  const createdFor = new Map<string, number>();
  const createdIds = new Set<number>();
  let next = NEXTHOP_ID_BASE;
  const idFor = (gateway: string, dev: string, onlink: boolean): number => {
    const key = keyOf(gateway, dev, onlink);
    const existing = nexthops.ours.get(key) ?? createdFor.get(key);
    if (existing !== undefined) return existing;
    while (nexthops.taken.has(next) || createdIds.has(next)) next++;
    createdFor.set(key, next);
    createdIds.add(next);
    created.push({ id: next, gateway, dev, onlink, ours: true });
    return next;
  };
  // How many routes each nexthop gains or loses; a podnet nexthop left with none is removed after the routes.
  const useChange = new Map<number, number>();
  const use = (id: number | undefined, by: number) => { if (id !== undefined) useChange.set(id, (useChange.get(id) ?? 0) + by); };
  const nhidOf = new Map<string, number>();
  const lines: string[] = [];
  for (const a of actions) {
    use(routes.ours.get(a.dst)?.nhid, -1);
    const dev = a.kind === "delete" ? undefined : a.dev ?? a.linkDev ?? deviceFor(a.via);
    if (a.kind === "delete" || !dev) {
      lines.push(routeBatch([a]).trimEnd());
      continue;
    }
    const id = idFor(a.via, dev, a.dev !== undefined);
    use(id, 1);
    nhidOf.set(a.dst, id);
    lines.push(`route ${a.kind} ${a.dst} nhid ${id} proto ${PODNET_PROTO}`);
  }
  const deleted = nexthops.candidatesForRemoval(useChange).filter((id) => nexthops.usersAfter(id, useChange) <= 0).sort((a, b) => a - b);
  const all = [
    ...created.map((n) => `nexthop add id ${n.id} via ${n.gateway} dev ${n.dev}${n.onlink ? " onlink" : ""} proto ${PODNET_PROTO}`),
    ...lines,
    ...deleted.map((id) => `nexthop del id ${id}`),
  ];
  return { text: all.length ? all.join("\n") + "\n" : "", created, deleted, nhidOf, useChange };
}
