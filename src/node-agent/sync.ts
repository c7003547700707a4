import { rmSync } from "node:fs";
import { join } from "node:path";
import type { AgentConfig } from "../config.js";
import type { Logger } from "../log.js";
import {
  chainedPlugins, cniVersionInEffect, commonCniVersion, conflistMatches, conflistText, ipamDataDirInEffect, rangesHeldByOthers, readPodnetConflist, renderConflist, runnableChained,
  withChainedPlugins,
  type ChainedPlugin, type CniVersionChoice,
} from "./cni-conflist.js";
import { configPrecedence, missingPlugins, pluginVersions, readIfPresent, writeFileAtomic } from "./cni-files.js";
import { noPodCidrReason, type DesiredNodeState } from "./desired-state.js";
import { holdFirstConflist, type FamilyGap } from "./family-gap.js";
import { removeStaleBridgeAddresses } from "./bridge-addresses.js";
import { podCidrHolders, type PodCidrHolder } from "./pod-cidr-holders.js";
import { MissingToolError } from "./exec.js";
import { bridgeNetfilterProblem, bridgeNetfilterSysctls, ensureSysctls, forwardingProblem, neededSysctls } from "./forwarding.js";
import { kernelView, overlayMtu, podMtu, syncRoutes, type KernelView } from "./route-sync.js";
import { FirewallBusyError, FirewallUnreadableError } from "./forward-accept.js";
import { syncForwardAccepts } from "./forward-accept-sync.js";
import { vxlanOverhead } from "./overlay-plan.js";
import { syncReversePath } from "./reverse-path.js";
import { syncNft } from "./nft-sync.js";
import type { SyncOutcome } from "./report.js";

export const CNI_PLUGINS = ["bridge", "host-local", "portmap", "loopback"];
const versionCache = new Map<string, string>();
/** Bin dirs whose VERSION probe found no common version: probed again on full passes only (a hung plugin costs 5 s). */
const versionProbeFailed = new Set<string>();

export interface SyncInput {
  config: AgentConfig; state: DesiredNodeState; netns?: string; log: Logger;
  /** This node's IP (IPv4 preferred): the overlay's underlay address and the link whose MTU pods inherit. */
  nodeIP?: string;
  /**
   * Periodic full pass: also re-apply the nft table and re-check sysctls (drift repair). Event-driven passes
   * skip what the event cannot have changed, so N agents reacting to one node join stay cheap.
   */
  full: boolean;
  /** This node's families against its pool's, and how long it has lacked one (family-gap.ts): holds the first conflist. */
  familyWait?: { gap: FamilyGap; waitedMs: number; graceMs: number };
  /**
   * Remove nothing podnet programmed (routes, podnet.vxlan's entries, nft table contents, FORWARD accepts): this
   * node's NodeCIDR is gone, or just back (record-hold.ts). Adds and updates go on.
   */
  removalsHeld?: boolean;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Per namespace: the pod CIDRs the bridge's addresses were last checked against. */
const bridgeCheckedFor = new Map<string, string>();

/**
 * Stale gateway addresses off podnet's bridge, when this node's pod CIDRs changed and on full passes. Before
 * the kernel is read: the old range's connected route goes with its address, and the route planner must not
 * take it for a foreign route to that range.
 */
async function syncBridgeAddresses(input: SyncInput): Promise<{ removed: string[]; error?: string }> {
  const ns = input.netns ?? "";
  const key = input.state.ownCidrs.join(",");
  if (!input.full && bridgeCheckedFor.get(ns) === key) return { removed: [] };
  try {
    const removed = await removeStaleBridgeAddresses(input.state.ownCidrs, { netns: input.netns, dryRun: input.config["dry-run"], log: input.log });
    bridgeCheckedFor.set(ns, key);
    return { removed };
  } catch (err) {
    // Without `ip` nothing on the bridge can be checked, and RoutesProgrammed already names the missing tool.
    if (err instanceof MissingToolError) return { removed: [] };
    return { removed: [], error: message(err) };
  }
}

/** Per namespace: the pod CIDRs other devices were last checked against, and the holders found then. */
const holdersCheckedFor = new Map<string, { key: string; holders: PodCidrHolder[] }>();

/**
 * Devices other than podnet's own that hold this node's pod CIDRs (pod-cidr-holders.ts), on full passes and
 * when those CIDRs change; between them the last finding stands (a device deleted or addressed wakes a full pass
 * through the link watch). Planned from the kernel view the routes were planned from: no extra read.
 */
function podCidrHoldersIn(input: SyncInput, view: KernelView | Error): PodCidrHolder[] {
  const ns = input.netns ?? "";
  const key = input.state.ownCidrs.join(",");
  const last = holdersCheckedFor.get(ns);
  if (view instanceof Error || (!input.full && last?.key === key)) return last?.holders ?? [];
  const holders = podCidrHolders(input.state.ownCidrs, view.routes.foreignListed, view.links.addresses);
  holdersCheckedFor.set(ns, { key, holders });
  return holders;
}

/** One pass of "make this node match": each step fails on its own and is reported, never thrown. */
export async function syncKernelAndFiles(input: SyncInput): Promise<SyncOutcome> {
  const { state } = input;
  const bridge = await syncBridgeAddresses(input);
  // A removed address took its connected route with it: the kept view of the kernel would still hold that route.
  const view = await kernelView(bridge.removed.length ? { ...input, full: true } : input).catch((err: unknown) => err as Error);
  const links = view instanceof Error ? undefined : view.links;
  const outcome: SyncOutcome = {
    routes: await syncRoutes({ ...input, underlayIp: input.nodeIP }, view),
    cni: await syncCni(input, links && podMtu(input.config, links, input.nodeIP, state)),
    masquerade: { enabled: input.config.masquerade, keepSourceTo: input.config["no-masquerade-cidrs"] },
    sysctls: {},
    rejected: state.rejected,
  };
  outcome.cni.removedBridgeAddresses = bridge.removed;
  if (bridge.error) outcome.cni.bridgeError = bridge.error;
  const holders = podCidrHoldersIn(input, view);
  if (holders.length) outcome.cni.podCidrHeldBy = { podCidrs: state.ownCidrs, holders };
  // Right after the routes: a tunnel just made filters strictly until this runs.
  if (!(view instanceof Error)) await syncReversePath(input, view, outcome);
  await syncNft(input, outcome, links && overlayMtu(input.config, links, input.nodeIP, state));
  const families = state.families.length ? state.families : [4 as const];
  // Also when the node's families change: an IPv6 range added between full passes needs IPv6 forwarding (and
  // accept_ra 2 before it) now, and the standing result, judged for IPv4 alone, must not speak for it.
  if (input.full || sysctlsCheckedFor.get(input.netns ?? "") !== families.join(",")) {
    await syncSysctls(input, families, outcome.sysctls);
    sysctlsCheckedFor.set(input.netns ?? "", families.join(","));
  } else {
    outcome.sysctls.skipped = true;
    // A range added to a pool: its pods must not wait for the next full pass behind a dropping firewall.
    if (forwardCheckedFor.get(input.netns ?? "") !== state.podNetwork.join(",")) await syncFirewallForward(input, outcome.sysctls);
  }
  return outcome;
}

/** Per namespace: the families the forwarding sysctls were last checked for. */
const sysctlsCheckedFor = new Map<string, string>();
/** Per namespace: the pod network the host firewall's FORWARD chain was last made to accept. */
const forwardCheckedFor = new Map<string, string>();
/** Per namespace: other tables' forward-hook chains as last judged (logged when that changes). */
const foreignJudged = new Map<string, string>();
/** Per namespace: firewall steps in a row that met a held xtables lock. */
const lockHeldSteps = new Map<string, number>();
/** kube-proxy holds the lock for seconds on a large cluster; held across this many steps (≈25 s), it is reported. */
const LOCK_HELD_STEPS_REPORTED = 3;

async function syncFirewallForward(input: SyncInput, result: SyncOutcome["sysctls"]): Promise<void> {
  result.firewallChecked = true;
  const key = input.netns ?? "";
  try {
    const { dropping, foreign } = await syncForwardAccepts(input.state.podNetwork, { netns: input.netns, dryRun: input.config["dry-run"], log: input.log, keepAccepted: input.removalsHeld });
    if (dropping.length) result.forwardDropPolicy = dropping;
    if (foreign.length) result.forwardDroppedElsewhere = foreign;
    const judged = JSON.stringify(foreign);
    if (judged !== foreignJudged.get(key) && foreign.length) input.log.warn({ chains: foreign }, "another table's chain on the forward hook drops by default, and podnet cannot accept pod traffic there");
    foreignJudged.set(key, judged);
    forwardCheckedFor.set(key, input.state.podNetwork.join(","));
    lockHeldSteps.delete(key);
  } catch (err) {
    const held = err instanceof FirewallBusyError ? (lockHeldSteps.get(key) ?? 0) + 1 : 0;
    if (held) lockHeldSteps.set(key, held); else lockHeldSteps.delete(key);
    if (held && held < LOCK_HELD_STEPS_REPORTED) {
      result.firewallBusy = message(err);
      input.log.warn({ err: message(err) }, "the xtables lock was held by another program: the host firewall step is retried, its last result stands");
      return;
    }
    result.forwardAcceptError = message(err);
    const unreadable = err instanceof FirewallUnreadableError || (err instanceof FirewallBusyError && err.reading);
    if (unreadable) result.forwardChainUnreadable = true;
    input.log.error({ err: message(err) }, unreadable ? "the host firewall's FORWARD chain could not be read"
      : "the host firewall's FORWARD chain drops by default, and the pod network could not be accepted in it");
  }
}

/**
 * Forwarding (without it no pod traffic leaves the node), then br_netfilter (without it same-node Services
 * fail), then the host firewall's FORWARD policy (a drop there stops all pod traffic: forward-accept-sync.ts).
 */
async function syncSysctls(input: SyncInput, families: Array<4 | 6>, result: SyncOutcome["sysctls"]): Promise<void> {
  result.families = families;
  const forwarding = neededSysctls(families);
  const bridged = bridgeNetfilterSysctls(families);
  if (input.config["dry-run"]) input.log.info({ sysctls: { ...forwarding, ...bridged } }, "dry-run: would ensure sysctls");
  else {
    try { await ensureSysctls(forwarding, input.netns); } catch (err) { result.error = forwardingProblem(message(err)); }
    try { await ensureSysctls(bridged, input.netns); } catch (err) { result.bridgeNetfilterError = bridgeNetfilterProblem(message(err)); }
  }
  await syncFirewallForward(input, result);
}

/** With no link to read it from: a common Ethernet MTU, less VXLAN's headers (over IPv4) when everything is encapsulated. */
const fallbackMtu = (config: AgentConfig) => (config.overlay === "vxlan" ? 1500 - vxlanOverhead(4) : 1500);

/** The conflist step: files only (conf and bin dirs), so tests run it on temp dirs. */
export async function syncCni(input: SyncInput, linkMtu: number | undefined): Promise<SyncOutcome["cni"]> {
  const { config } = input;
  const dir = config["cni-conf-dir"];
  const name = config["conflist-name"];
  const path = join(dir, name);
  const result: SyncOutcome["cni"] = { path, changed: false, shadowedBy: [], missingPlugins: [] };
  try {
    result.missingPlugins = missingPlugins(config["cni-bin-dir"], CNI_PLUGINS);
    const precedence = configPrecedence(dir, name);
    result.shadowedBy = precedence.shadowedBy;
    if (precedence.usedThrough) result.usedThrough = precedence.usedThrough;
    if (precedence.usedThroughCopy) result.usedThroughCopy = true;
    if (input.state.ownCidrs.length === 0) return withoutPodCidr(input, path, result);
    logUnusedOnce(input, path);
    if (input.state.unusedOwnCidrs.length) result.unusedCidrs = input.state.unusedOwnCidrs;
    const current = readIfPresent(path);
    // A first conflist while plugins are missing would have the runtime report the network ready and every ADD
    // fail; without one it reports the network not ready (PluginsMissing says why). An existing one is kept up to date.
    if (current === undefined && result.missingPlugins.length) return result;
    // The first conflist waits a little for the node's other family: pods started now would lack it for life.
    const wait = input.familyWait;
    if (wait && holdFirstConflist(wait.gap, current !== undefined, wait.waitedMs, wait.graceMs)) return { ...result, awaitingFamilies: wait.gap.missing };
    // The link carrying the node IP not found (the address just changed, its NodeCIDR not yet mirrored): keep
    // the MTU pods already get. A pod started meanwhile with a larger one would keep it for its whole life.
    const existing = current === undefined ? undefined : readPodnetConflist(current);
    const cniVersion = cniVersionInEffect(await probedCniVersion(input, result.missingPlugins), existing?.cniVersion);
    logVersionFallbackOnce(input, path, cniVersion);
    const mtu = config.mtu || linkMtu || existing?.mtu || fallbackMtu(config);
    const ipam = ipamDataDirInEffect(existing, config["ipam-data-dir"]);
    if (ipam.keptInsteadOf !== undefined) result.ipamDataDirKept = { dataDir: ipam.dataDir, configured: ipam.keptInsteadOf };
    // Chained plugins are looked up as podnet's own are: one whose binary is gone would fail every ADD.
    const found = chainedPlugins(current);
    const chained = runnableChained(found, missingPlugins(config["cni-bin-dir"], found.map((p) => p.type)));
    logChainedOnce(input, path, chained.kept);
    const desired = withChainedPlugins(renderConflist({ cniVersion: cniVersion.version, podCidrs: input.state.ownCidrs, mtu, ipamDataDir: ipam.dataDir }), chained.kept);
    const unchanged = conflistMatches(current, desired);
    if (config["dry-run"]) {
      input.log.info({ path, changed: !unchanged, ...(chained.dropped.length ? { wouldDrop: chained.dropped.map((p) => p.type) } : {}) }, "dry-run: would write CNI conflist");
      return result;
    }
    result.changed = !unchanged && writeFileAtomic(dir, name, conflistText(desired), { current });
    if (result.changed) input.log.info({ path, podCidrs: input.state.ownCidrs, mtu, cniVersion: cniVersion.version }, "CNI conflist written");
    noteDroppedChained(input, path, chained.dropped, result);
    return result;
  } catch (err) {
    return { ...result, error: message(err) };
  }
}

/** The CNI version every plugin speaks, once known for this bin dir; undefined while a plugin is missing or the probe fails. */
async function probedCniVersion(input: SyncInput, missing: string[]): Promise<string | undefined> {
  const binDir = input.config["cni-bin-dir"];
  const known = versionCache.get(binDir);
  if (known || missing.length || (versionProbeFailed.has(binDir) && !input.full)) return known;
  const version = commonCniVersion(await pluginVersions(binDir, ["bridge", "host-local", "portmap"]));
  if (version) { versionCache.set(binDir, version); versionProbeFailed.delete(binDir); } else versionProbeFailed.add(binDir);
  return version;
}

/** Per conflist path and topic: the state last logged, so a state is logged once, not on every pass. */
const loggedOnce = new Map<string, string>();
function logOnce(key: string, state: string, log: () => void): void {
  if (loggedOnce.get(key) === state) return;
  loggedOnce.set(key, state);
  if (state) log();
}

function logVersionFallbackOnce(input: SyncInput, path: string, choice: CniVersionChoice): void {
  logOnce(`${path}:version`, choice.fallback ? `${choice.fallback}:${choice.version}` : "", () => input.log.warn(
    { path, cniVersion: choice.version, binDir: input.config["cni-bin-dir"] }, choice.fallback === "kept"
      ? "the CNI plugins reported no common CNI version (missing, or their VERSION call failed): the conflist keeps its cniVersion"
      : "the CNI plugins reported no common CNI version (missing, or their VERSION call failed): the conflist says 1.0.0"));
}

function logChainedOnce(input: SyncInput, path: string, chained: ChainedPlugin[]): void {
  logOnce(`${path}:chained`, chained.map((p) => p.type).join(","), () =>
    input.log.info({ path, plugins: chained.map((p) => p.type) }, "keeping plugins another installer chained after podnet's in the CNI conflist"));
}

/** Per conflist path: chained plugins dropped for a missing binary; CNIConfigured names them while it stays missing. */
const droppedChained = new Map<string, string[]>();
function noteDroppedChained(input: SyncInput, path: string, dropped: ChainedPlugin[], result: SyncOutcome["cni"]): void {
  const binDir = input.config["cni-bin-dir"];
  const types = dropped.map((p) => p.type);
  if (types.length) input.log.warn({ path, plugins: types, binDir }, "dropped plugins chained after podnet's in the CNI conflist: their binaries "
    + "are not in the CNI bin dir (an installer gone without its cleanup, or a hand edit), and every pod's CNI ADD would fail on them");
  const still = missingPlugins(binDir, [...new Set([...(droppedChained.get(path) ?? []), ...types])]);
  if (still.length) droppedChained.set(path, still); else droppedChained.delete(path);
  if (still.length) result.droppedChained = { plugins: still, binDir };
}

function logUnusedOnce(input: SyncInput, path: string): void {
  const { ownCidrs, unusedOwnCidrs } = input.state;
  logOnce(`${path}:unused`, unusedOwnCidrs.join(","), () => input.log.warn({ path, podCidrs: ownCidrs, unused: unusedOwnCidrs },
    "this node has a second pod CIDR of one family: the conflist hands out one per family (two would give pods two default routes and fail every ADD)"));
}

/**
 * This node has no pod CIDR. Its conflist stays while the range it names is free (Released, in its cooldown):
 * running pods keep their DEL, and a node that gets its range back loses nothing. Once another node holds that
 * range, the conflist goes: the runtime would hand out the other node's pod addresses (duplicate IPs, pods
 * routed to the wrong node). Without a config the runtime reports the network not ready and starts no pod;
 * running pods' DEL waits until a new CIDR brings the conflist back, the lesser harm. A thin Multus config holding
 * a copy of the conflist is Multus's file: the runtime goes on using it, and the message says so.
 */
function withoutPodCidr(input: SyncInput, path: string, result: SyncOutcome["cni"]): SyncOutcome["cni"] {
  const current = readIfPresent(path);
  const held = current === undefined ? [] : rangesHeldByOthers(current, input.state.othersLive);
  const skipped = noPodCidrReason(input.state);
  if (held.length === 0) return { ...result, skipped };
  const ranges = held.map((h) => `${h.subnet} (${h.earlierNode ? `an earlier Node ${h.nodeName}'s ${h.heldAs}, which the controller releases` : `now node ${h.nodeName}'s ${h.heldAs}`})`).join(", ");
  // A dry run changes nothing, so nothing failed: an info line, no error counted, no retry with backoff.
  if (input.config["dry-run"]) {
    input.log.info({ path, ranges: held }, `dry-run: would remove ${path}: this node has no pod CIDR and the conflist hands out ${ranges}`);
    return { ...result, skipped };
  }
  rmSync(path, { force: true });
  const error = `removed ${path}: this node has no pod CIDR and the conflist handed out ${ranges}; `
    + (result.usedThroughCopy ? `but ${result.usedThrough} holds its own copy of it, which the runtime goes on using until Multus rewrites it`
      : "no pod starts here until this node gets a CIDR (running pods' CNI DEL waits for it too)");
  input.log.error({ path, ranges: held }, error);
  return { ...result, error };
}
