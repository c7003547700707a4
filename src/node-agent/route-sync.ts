import { parseIp } from "../lib/cidr.js";
import type { AgentConfig } from "../config.js";
import type { Logger } from "../log.js";
import type { DesiredNodeState, DesiredRoute } from "./desired-state.js";
import { applyBatch, readLinks, readNexthops, readRoutes, type LinkInfo } from "./ip-route.js";
import { planRouteBatch, type ObservedNexthop, type RouteBatch } from "./nexthop-plan.js";
import { splitRoutes, vxlanOverhead, VXLAN_DEVICE, type RouteSplit } from "./overlay-plan.js";
import type { SyncOutcome } from "./report.js";
import { planRoutes, type ObservedRoute, type RouteAction } from "./routes-plan.js";
import { applyVxlan, readVxlan } from "./vxlan.js";
import { overlayAddresses, planVxlan, type VxlanDesired, type VxlanObserved } from "./vxlan-plan.js";

export interface RouteSyncInput {
  config: AgentConfig; state: DesiredNodeState; log: Logger; netns?: string; full: boolean;
  /** This node's IP the overlay sends from (IPv4 preferred); undefined until the controller mirrored it. */
  underlayIp?: string;
}

/**
 * What the kernel looked like after the last pass, per namespace. Event-driven passes plan against it and
 * spawn at most one `ip -batch` (two when the overlay changes); full passes re-read the kernel, which is how
 * drift (a route, neighbour or fdb entry changed by hand) is found. With dozens of agents reacting to one
 * node join, process spawns are the cost that matters.
 */
export interface KernelView {
  links: LinkInfo; routes: ObservedRoute[]; vxlan?: VxlanObserved; desiredKey?: string; outcome?: SyncOutcome["routes"];
  /** undefined: the kernel has no nexthop objects, routes carry their gateway. */
  nexthops?: ObservedNexthop[];
}
const kernelViews = new Map<string, KernelView>();

export async function kernelView(input: { netns?: string; full: boolean; config: AgentConfig }): Promise<KernelView> {
  const key = input.netns ?? "";
  const cached = kernelViews.get(key);
  if (cached && !input.full) return cached;
  const view: KernelView = {
    links: await readLinks(input.netns), routes: await readRoutes(input.netns), nexthops: await readNexthops(input.netns),
    // With the overlay off, still look until no device is left from an earlier mode, so it gets removed.
    ...(input.config.overlay !== "none" || !cached || cached.vxlan?.device ? { vxlan: await readVxlan(input.netns) } : {}),
  };
  kernelViews.set(key, view);
  return view;
}

/** MTU of the overlay device and of pods when the overlay is on: the underlay link's minus VXLAN headers. */
export function overlayMtu(config: AgentConfig, links: LinkInfo, underlayIp: string | undefined): number | undefined {
  if (config.overlay === "none" || !underlayIp) return undefined;
  const link = links.mtuOf(underlayIp);
  return link ? link - vxlanOverhead(parseIp(underlayIp).family) : undefined;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export async function syncRoutes(input: RouteSyncInput, view: KernelView | Error): Promise<SyncOutcome["routes"]> {
  const base = { desired: input.state.routes.length, installed: 0, overlay: 0, overlayChanges: 0, added: 0, replaced: 0, deleted: 0, conflicts: [] as string[], unreachable: [] as string[] };
  if (view instanceof Error) return { ...base, error: view.message };
  const split = splitRoutes(input.state.routes, view.links.deviceFor, input.config.overlay, input.underlayIp);
  const vxlan = vxlanDesired(input, view, split);
  const desiredKey = JSON.stringify([split, vxlan]);
  if (!input.full && view.desiredKey === desiredKey && view.outcome) return { ...view.outcome, added: 0, replaced: 0, deleted: 0, overlayChanges: 0 };
  try {
    const overlay = await syncOverlay(input, view, vxlan);
    let plan = planRoutes(split.kernel, view.routes);
    const counts = { added: 0, replaced: 0, deleted: 0 };
    for (const a of plan.actions) counts[a.kind === "add" ? "added" : a.kind === "replace" ? "replaced" : "deleted"]++;
    const findings = {
      conflicts: plan.conflicts.map((c) => c.reason),
      unreachable: split.unreachable.map((u) => `node ${u.nodeName} (${u.dst}): ${u.reason}`),
      overlay: split.kernel.filter((k) => k.dev && !plan.conflicts.some((c) => c.dst === k.dst)).length,
    };
    if (input.config["dry-run"]) {
      for (const a of plan.actions) input.log.info({ route: a }, `dry-run: would ${a.kind} route ${a.dst}`);
      return { ...base, ...counts, ...findings, overlayChanges: overlay.changes, installed: plan.installed };
    }
    const batch = planRouteBatch(plan.actions, view.routes, view.nexthops, view.links.deviceFor);
    const result = await applyBatch(batch.text, input.netns);
    let error = overlay.error;
    if (result.errors.length === 0) applyToView(view, plan.actions, batch);
    else {
      // ip -batch is not transactional and our view may be stale (a route added by hand since the last
      // full pass): read the kernel, plan again, and report what still does not match.
      view.routes = await readRoutes(input.netns);
      view.nexthops = await readNexthops(input.netns);
      plan = planRoutes(split.kernel, view.routes);
      if (plan.actions.length) error = [error, ...result.errors.slice(0, 3)].filter(Boolean).join("; ");
    }
    if (counts.added + counts.replaced + counts.deleted) input.log.info({ ...counts, installed: plan.installed, overlay: findings.overlay, desired: base.desired }, "routes synced");
    const outcome = { ...base, ...counts, ...findings, overlayChanges: overlay.changes, installed: plan.installed - (error ? plan.actions.filter((a) => a.kind !== "delete").length : 0), ...(error ? { error } : {}) };
    view.desiredKey = error ? undefined : desiredKey;
    view.outcome = outcome;
    return outcome;
  } catch (err) {
    kernelViews.delete(input.netns ?? "");
    return { ...base, error: message(err) };
  }
}

function vxlanDesired(input: RouteSyncInput, view: KernelView, split: RouteSplit): VxlanDesired | undefined {
  const mtu = overlayMtu(input.config, view.links, input.underlayIp);
  if (input.config.overlay === "none" || !input.underlayIp || !mtu) return undefined;
  return {
    vni: input.config["vxlan-id"], port: input.config["vxlan-port"], local: input.underlayIp, mtu,
    addresses: overlayAddresses(input.state.ownCidrs), peers: split.peers,
  };
}

/**
 * Cold-start head start: while the initial list is still paging in, add the direct routes of the records seen
 * so far, so the kernel's share of a cold start overlaps the list instead of following it. Adds only, for
 * prefixes with no route at all: replacing, deleting, the overlay, conflicts and status need the complete list
 * and are left to the full pass that follows it. A record that the complete list shows to be bad (overlapping
 * a later one) loses its route in that pass, a moment later. Not in dry-run, and not when every route goes
 * through the overlay (`earlyRoutesApply`).
 */
export const earlyRoutesApply = (config: AgentConfig) => !config["dry-run"] && config.overlay !== "vxlan";

export async function addRoutesEarly(input: { config: AgentConfig; netns?: string }, routes: DesiredRoute[]): Promise<number> {
  if (!earlyRoutesApply(input.config) || routes.length === 0) return 0;
  const view = await kernelView({ ...input, full: false });
  const direct = splitRoutes(routes, view.links.deviceFor, input.config.overlay, undefined).kernel.filter((k) => !k.dev);
  const adds = planRoutes(direct, view.routes).actions.filter((a) => a.kind === "add");
  const batch = planRouteBatch(adds, view.routes, view.nexthops, view.links.deviceFor);
  const result = await applyBatch(batch.text, input.netns);
  if (result.errors.length) kernelViews.delete(input.netns ?? "");
  else applyToView(view, adds, batch);
  return result.errors.length ? 0 : adds.length;
}

/** Bring podnet.vxlan, its neighbours and fdb entries in line; how many changes that took, and any error. */
async function syncOverlay(input: RouteSyncInput, view: KernelView, desired: VxlanDesired | undefined): Promise<{ changes: number; error?: string }> {
  if (!view.vxlan) return { changes: 0 };
  const plan = planVxlan(desired, view.vxlan);
  const changes = plan.ip.length + plan.bridge.length;
  if (changes === 0) return { changes };
  if (input.config["dry-run"]) {
    input.log.info({ ip: plan.ip, bridge: plan.bridge }, `dry-run: would change ${VXLAN_DEVICE}`);
    return { changes };
  }
  const errors = await applyVxlan(plan, input.netns);
  view.vxlan = await readVxlan(input.netns);
  input.log.info({ device: VXLAN_DEVICE, changes, peers: desired?.peers.length ?? 0 }, "overlay synced");
  return { changes, ...(errors.length ? { error: `${VXLAN_DEVICE}: ${errors.join("; ")}` } : {}) };
}

function applyToView(view: KernelView, actions: RouteAction[], batch: RouteBatch): void {
  const byDst = new Map(view.routes.map((r) => [r.dst, r]));
  for (const a of actions) {
    const nhid = batch.nhidOf.get(a.dst);
    if (a.kind === "delete") byDst.delete(a.dst);
    else byDst.set(a.dst, { dst: a.dst, gateway: a.via, ...(a.dev ? { dev: a.dev } : {}), ours: true, ...(nhid !== undefined ? { nhid } : {}) });
  }
  view.routes = [...byDst.values()];
  if (view.nexthops) {
    const gone = new Set(batch.deleted);
    view.nexthops = [...view.nexthops.filter((n) => !gone.has(n.id)), ...batch.created];
  }
}
