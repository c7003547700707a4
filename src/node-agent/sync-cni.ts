import { rmSync } from "node:fs";
import { join } from "node:path";
import type { AgentConfig } from "../config.js";
import {
  POD_NETWORK_NAME, chainedPlugins, cniVersionInEffect, commonCniVersion, conflistMatches, conflistText, ipamDataDirInEffect, rangesHeldByOthers, readPodnetConflist, renderConflist, runnableChained,
  withChainedPlugins,
  type ChainedPlugin, type CniVersionChoice,
} from "./cni-conflist.js";
import { configPrecedence, missingPlugins, pluginVersions, readIfPresent, writeFileAtomic } from "./cni-files.js";
import { noPodCidrReason } from "./desired-state.js";
import { holdFirstConflist } from "./family-gap.js";
import { leasesOutside, readPodLeases } from "./pod-leases.js";
import { vxlanOverhead } from "./overlay-plan.js";
import type { SyncOutcome } from "./report.js";
import type { SyncInput } from "./sync.js";

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export const CNI_PLUGINS = ["bridge", "host-local", "portmap", "loopback"];
const versionCache = new Map<string, string>();
/** Bin dirs whose VERSION probe found no common version: probed again on full passes only (a hung plugin costs 5 s). */
const versionProbeFailed = new Set<string>();

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
    const stale = leasesOutside(readPodLeases(ipam.dataDir, POD_NETWORK_NAME), [...input.state.ownCidrs, ...input.state.unusedOwnCidrs]);
    if (stale) result.leasesOutside = stale;
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
