import { parseIp } from "../lib/cidr.js";
import type { AgentConfig } from "../config.js";
import type { Logger } from "../log.js";
import type { DesiredNodeState, DesiredRoute } from "./desired-state.js";
import { applyBatch, readLinks, readNexthops, readRoutes, type LinkInfo } from "./ip-route.js";
import { NexthopTable, planRouteBatch, withNexthopGateways, type ObservedNexthop, type RouteBatch } from "./nexthop-plan.js";
import { splitRoutes, tunnelMtu, tunnelMtuRefusal, VXLAN_DEVICE, type KernelRoute, type RouteSplit } from "./overlay-plan.js";
import type { SyncOutcome } from "./report.js";
import { withoutDeletions, withoutVxlanRemovals } from "./record-hold.js";
import { planRoutes, RouteTable, type RoutePlan, type RouteAction } from "./routes-plan.js";
import { applyVxlan, explainVxlanErrors, readVxlan } from "./vxlan.js";
import { overlayAddresses, planVxlan, replacesDevice, vxlanChanges, type VxlanDesired, type VxlanLines, type VxlanObserved } from "./vxlan-plan.js";

export interface RouteSyncInput {
  config: AgentConfig; state: DesiredNodeState; log: Logger; netns?: string; full: boolean;
  /** This node's IP the overlay sends from (IPv4 preferred); undefined until the controller mirrored it. */
  underlayIp?: string;
  /** Remove nothing podnet programmed: a record set may have vanished without its nodes (record-hold.ts). */
  removalsHeld?: boolean;
}

/**
 * What the kernel looked like after the last pass, per namespace. Event-driven passes plan against it and
 * spawn at most one `ip -batch` (two when the overlay changes); full passes re-read the kernel, which is how
 * drift (a route, neighbour or fdb entry changed by hand) is found. With dozens of agents reacting to one
 * node join, process spawns are the cost that matters.
 */
export interface KernelView {
  links: LinkInfo; routes: RouteTable; vxlan?: VxlanObserved; planned?: PlannedFor; outcome?: SyncOutcome["routes"];
  /** undefined: the kernel has no nexthop objects, routes carry their gateway. */
  nexthops?: NexthopTable;
}
const kernelViews = new Map<string, KernelView>();

export async function kernelView(input: { netns?: string; full: boolean; config: AgentConfig; nodeIP?: string }): Promise<KernelView> {
  const key = input.netns ?? "";
  const cached = kernelViews.get(key);
  // A node IP the kept view does not know was just added to this node (an address change): read afresh, or the
  // overlay and the pods' MTU would be planned as if the node had no underlay address at all.
  if (cached && !input.full && (input.nodeIP === undefined || cached.links.isLocal(input.nodeIP))) return cached;
  const links = await readLinks(input.netns);
  const { routes, nexthops } = await readRouteTables(input.netns);
  const view: KernelView = {
    links, routes, nexthops,
    // With the overlay off, still look until no device is left from an earlier mode, so it gets removed.
    ...(input.config.overlay !== "none" || !cached || cached.vxlan?.device ? { vxlan: await readVxlan(input.netns) } : {}),
  };
  kernelViews.set(key, view);
  return view;
}

/** Devices this node's routes go out of, as last read (empty before the first read). */
export const routedDevices = (netns?: string): ReadonlySet<string> => kernelViews.get(netns ?? "")?.links.devices ?? new Set();

/** Whether podnet.vxlan may carry IPv6: this node has IPv6 pods, or routes to other nodes' IPv6 pods. */
export const tunnelCarriesIpv6 = (state: DesiredNodeState): boolean => state.families.includes(6) || state.routes.some((r) => r.dst.includes(":"));

/** MTU of the overlay device: the underlay link's minus VXLAN headers (at least 1280 with IPv6: tunnelMtu). */
export function overlayMtu(config: AgentConfig, links: LinkInfo, underlayIp: string | undefined, state: DesiredNodeState): number | undefined {
  if (config.overlay === "none" || !underlayIp) return undefined;
  const link = links.mtuOf(underlayIp);
  return link ? tunnelMtu(link, parseIp(underlayIp).family, tunnelCarriesIpv6(state)) : undefined;
}

/**
 * MTU pods get: the link's. Only when everything is encapsulated (`vxlan`) the overlay's: with `auto`, pods on
 * direct peers get the full MTU, and TCP into the overlay has its MSS clamped (see renderNftTable).
 */
export function podMtu(config: AgentConfig, links: LinkInfo, nodeIp: string | undefined, state: DesiredNodeState): number | undefined {
  return config.overlay === "vxlan" ? overlayMtu(config, links, nodeIp, state) : links.mtuOf(nodeIp ?? "");
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export async function syncRoutes(input: RouteSyncInput, view: KernelView | Error): Promise<SyncOutcome["routes"]> {
  const base = { desired: input.state.routes.length, installed: 0, overlay: 0, overlayChanges: 0, added: 0, replaced: 0, deleted: 0, conflicts: [] as string[], unreachable: [] as string[] };
  if (view instanceof Error) return { ...base, error: view.message };
  // The kernel's fdb too: of two peers that share a VTEP MAC, the one it already sends to keeps the tunnel.
  const split = splitRoutes(input.state.routes, view.links.deviceFor, input.config.overlay, input.underlayIp, view.links.isLocal, view.vxlan?.fdb);
  const vxlan = vxlanDesired(input, view, split);
  const planned = plannedFor(split, vxlan, input.removalsHeld);
  if (!input.full && view.planned && samePlanInputs(view.planned, planned) && view.outcome) return { ...view.outcome, added: 0, replaced: 0, deleted: 0, overlayChanges: 0 };
  try {
    const overlay = await syncOverlay(input, view, vxlan);
    // A removed or re-created device took its nexthops and routes with it: plan against the kernel as it is now.
    if (overlay.replacedDevice) Object.assign(view, await readRouteTables(input.netns), { links: await readLinks(input.netns) });
    // Held removals: a route no record names stays until they are not (then the full pass that follows removes it).
    const planNow = (): RoutePlan => { const p = planRoutes(split.kernel, view.routes); return input.removalsHeld ? { ...p, actions: withoutDeletions(p.actions) } : p; };
    let plan = planNow();
    const counts = { added: 0, replaced: 0, deleted: 0 };
    for (const a of plan.actions) counts[a.kind === "add" ? "added" : a.kind === "replace" ? "replaced" : "deleted"]++;
    const findingsOf = (p: typeof plan) => ({
      conflicts: p.conflicts.map((c) => c.reason),
      unreachable: split.unreachable.map((u) => `node ${u.nodeName} (${u.dst}): ${u.reason}`),
      overlay: split.kernel.filter((k) => k.dev && !p.conflicts.some((c) => c.dst === k.dst)).length,
    });
    let findings = findingsOf(plan);
    if (input.config["dry-run"]) {
      for (const a of plan.actions) input.log.info({ route: a }, `dry-run: would ${a.kind} route ${a.dst}`);
      return { ...base, ...counts, ...findings, overlayChanges: overlay.changes, installed: plan.installed };
    }
    const batch = planRouteBatch(plan.actions, view.routes, view.nexthops, view.links.deviceFor);
    const result = await applyBatch(batch.text, input.netns);
    await finishOverlay(input, view, overlay);
    // The device serves only peers behind a router: with none, its failure (another VXLAN device holding the
    // VNI and port, flannel.1 left behind say) is reported but does not fail the direct routes.
    const overlayError = overlay.error && split.peers.length === 0 ? overlay.error : undefined;
    let error = overlayError ? undefined : overlay.error;
    if (result.errors.length === 0) applyToView(view, plan.actions, batch);
    else {
      // ip -batch is not transactional and our view may be stale (a route added by hand since the last
      // full pass): read the kernel, plan again, and report what still does not match.
      Object.assign(view, await readRouteTables(input.netns));
      plan = planNow();
      findings = findingsOf(plan); // a foreign route found only now is a conflict now, not at the next full pass
      if (plan.actions.length) error = [error, ...result.errors.slice(0, 3)].filter(Boolean).join("; ");
    }
    const outcome = { ...base, ...counts, ...findings, overlayChanges: overlay.changes, installed: plan.installed - (result.errors.length ? plan.actions.filter((a) => a.kind !== "delete").length : 0),
      ...(error ? { error } : {}), ...(overlayError ? { overlayError } : {}) };
    // The planned counts only when the batch went through: a refused one said "synced" while nothing changed.
    // (A refusal the re-read shows was only a stale view, "File exists" say, leaves nothing to do: no warning.)
    if (result.errors.length && plan.actions.length) input.log.warn({ planned: counts, installed: outcome.installed, desired: base.desired, errors: result.errors.slice(0, 3) }, "route batch partly refused; will retry");
    else if (counts.added + counts.replaced + counts.deleted) input.log.info({ ...counts, installed: plan.installed, overlay: findings.overlay, desired: base.desired }, "routes synced");
    // Kept for event passes to reuse only when the batch went through as planned.
    view.planned = error || result.errors.length ? undefined : planned;
    view.outcome = outcome;
    return outcome;
  } catch (err) {
    kernelViews.delete(input.netns ?? "");
    return { ...base, error: message(err) };
  }
}

/** What the last successful pass planned for: the kernel routes, and the rest (usually tiny) as text. */
interface PlannedFor { kernel: KernelRoute[]; rest: string }
const plannedFor = (split: RouteSplit, vxlan: VxlanDesired | VxlanKept | "held" | undefined, removalsHeld = false): PlannedFor =>
  ({ kernel: split.kernel, rest: JSON.stringify([split.peers, split.unreachable, vxlan, removalsHeld]) });
/** Compared field by field: serialising thousands of routes on every pass cost more than planning them. */
function samePlanInputs(a: PlannedFor, b: PlannedFor): boolean {
  if (a.rest !== b.rest || a.kernel.length !== b.kernel.length) return false;
  return a.kernel.every((r, i) => { const o = b.kernel[i]!; return r.dst === o.dst && r.via === o.via && r.dev === o.dev && r.linkDev === o.linkDev && r.nodeName === o.nodeName; });
}

/** Leave the device as it is, for this reason (reported as the overlay's error). */
interface VxlanKept { keep: string }

/**
 * The device as it should be; undefined: no device; kept: the NodeCIDR names a node IP this node does not
 * have (the address changed and the controller has not mirrored it yet): leave the device as it is rather than
 * remove it and the overlay routes with it; or the link is too small for the tunnel to carry IPv6 (tunnelMtuRefusal);
 * "held": no node IP known while removals are held (this node's NodeCIDR gone with the rest): the device stays
 * as it is, quietly.
 */
function vxlanDesired(input: RouteSyncInput, view: KernelView, split: RouteSplit): VxlanDesired | VxlanKept | "held" | undefined {
  if (input.config.overlay === "none") return undefined;
  if (!input.underlayIp) return input.removalsHeld ? "held" : undefined;
  const mtu = overlayMtu(input.config, view.links, input.underlayIp, input.state);
  const link = view.links.mtuOf(input.underlayIp);
  if (!mtu || !link) return { keep: `node IP ${input.underlayIp} is not an address of this node; ${VXLAN_DEVICE} left as it is` };
  const refused = tunnelMtuRefusal(link, parseIp(input.underlayIp).family, tunnelCarriesIpv6(input.state));
  if (refused) return { keep: refused };
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
  const direct = splitRoutes(routes, view.links.deviceFor, input.config.overlay, undefined, view.links.isLocal).kernel.filter((k) => !k.dev);
  const adds = planRoutes(direct, view.routes).actions.filter((a) => a.kind === "add");
  const batch = planRouteBatch(adds, view.routes, view.nexthops, view.links.deviceFor);
  const result = await applyBatch(batch.text, input.netns);
  if (result.errors.length) kernelViews.delete(input.netns ?? "");
  else applyToView(view, adds, batch);
  return result.errors.length ? 0 : adds.length;
}

interface OverlayStep { changes: number; error?: string; replacedDevice?: boolean; after?: VxlanLines }

/**
 * Bring podnet.vxlan, its neighbours and fdb entries in line, except the removals `finishOverlay` makes after
 * the route batch; how many changes that takes, and any error.
 */
async function syncOverlay(input: RouteSyncInput, view: KernelView, desired: VxlanDesired | VxlanKept | "held" | undefined): Promise<OverlayStep> {
  if (!view.vxlan || desired === "held") return { changes: 0 };
  if (desired && "keep" in desired) return { changes: 0, error: desired.keep };
  const plan = input.removalsHeld ? withoutVxlanRemovals(planVxlan(desired, view.vxlan)) : planVxlan(desired, view.vxlan);
  const changes = vxlanChanges(plan);
  if (changes === 0) return { changes };
  if (input.config["dry-run"]) {
    input.log.info({ ip: [...plan.ip, ...plan.after.ip], bridge: [...plan.bridge, ...plan.after.bridge] }, `dry-run: would change ${VXLAN_DEVICE}`);
    return { changes };
  }
  const errors = await explainVxlanErrors(await applyVxlan(plan, input.netns), { port: input.config["vxlan-port"], vni: input.config["vxlan-id"] }, input.netns);
  input.log.info({ device: VXLAN_DEVICE, changes, peers: desired?.peers.length ?? 0 }, "overlay synced");
  return { changes, replacedDevice: replacesDevice(plan), after: plan.after, ...(errors.length ? { error: `${VXLAN_DEVICE}: ${errors.join("; ")}` } : {}) };
}

/** After the route batch: entries of peers that left the overlay go, then the device is read back. */
async function finishOverlay(input: RouteSyncInput, view: KernelView, step: OverlayStep): Promise<void> {
  if (!step.after) return;
  const errors = await applyVxlan(step.after, input.netns);
  view.vxlan = await readVxlan(input.netns);
  if (errors.length) step.error = [step.error, `${VXLAN_DEVICE}: ${errors.join("; ")}`].filter(Boolean).join("; ");
}

async function readRouteTables(netns?: string): Promise<{ routes: RouteTable; nexthops?: NexthopTable }> {
  const listed = await readRoutes(netns);
  const nexthops: ObservedNexthop[] | undefined = await readNexthops(netns);
  const observed = withNexthopGateways(listed, nexthops);
  return { routes: new RouteTable(observed), nexthops: nexthops && new NexthopTable(nexthops, observed) };
}

function applyToView(view: KernelView, actions: RouteAction[], batch: RouteBatch): void {
  view.routes.applyActions(actions, batch.nhidOf);
  view.nexthops?.applyBatch(batch);
}
