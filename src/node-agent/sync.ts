import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { AgentConfig } from "../config.js";
import type { Logger } from "../log.js";
import { commonCniVersion, conflistText, renderConflist } from "./cni-conflist.js";
import { missingPlugins, pluginVersions, shadowingConfigs, writeFileAtomic } from "./cni-files.js";
import type { DesiredNodeState } from "./desired-state.js";
import { ensureSysctls, neededSysctls } from "./forwarding.js";
import { applyRoutes, readLinks, readRoutes, type LinkInfo } from "./ip-route.js";
import { applyMasquerade, renderMasqueradeRuleset } from "./masquerade.js";
import type { SyncOutcome } from "./report.js";
import { planRoutes, type ObservedRoute, type RouteAction, type RoutePlan } from "./routes-plan.js";

export const CNI_PLUGINS = ["bridge", "host-local", "portmap", "loopback"];
const versionCache = new Map<string, string>();

interface SyncInput {
  config: AgentConfig; state: DesiredNodeState; nodeIP?: string; netns?: string; log: Logger;
  /**
   * Periodic full pass: also re-apply the nft table and re-check sysctls (drift repair). Event-driven passes
   * skip what the event cannot have changed, so N agents reacting to one node join stay cheap.
   */
  full: boolean;
}
const appliedPodCidrs = new Map<string, string>();

/**
 * What the kernel looked like after the last pass, per namespace. Event-driven passes plan against it and
 * spawn at most one `ip -batch`; full passes re-read the kernel, which is how drift (a route deleted or
 * added by hand) is found. With dozens of agents on a node join, process spawns are the cost that matters.
 */
interface KernelView { links: LinkInfo; routes: ObservedRoute[]; desiredKey?: string; outcome?: SyncOutcome["routes"] }
const kernelViews = new Map<string, KernelView>();

async function kernelView(input: SyncInput): Promise<KernelView> {
  const key = input.netns ?? "";
  const cached = kernelViews.get(key);
  if (cached && !input.full) return cached;
  const view: KernelView = { links: await readLinks(input.netns), routes: await readRoutes(input.netns) };
  kernelViews.set(key, view);
  return view;
}

function applyToView(view: KernelView, actions: RouteAction[]): void {
  const byDst = new Map(view.routes.map((r) => [r.dst, r]));
  for (const a of actions) {
    if (a.kind === "delete") byDst.delete(a.dst);
    else byDst.set(a.dst, { dst: a.dst, gateway: a.via, ours: true });
  }
  view.routes = [...byDst.values()];
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** One pass of "make this node match": each step fails on its own and is reported, never thrown. */
export async function syncKernelAndFiles(input: SyncInput): Promise<SyncOutcome> {
  const { state } = input;
  const view = await kernelView(input).catch((err: unknown) => err as Error);
  const outcome: SyncOutcome = {
    routes: await syncRoutes(input, view),
    cni: await syncCni(input, view instanceof Error ? undefined : view.links.mtuOf(input.nodeIP ?? "")),
    masquerade: { enabled: input.config.masquerade },
    sysctls: {},
    rejected: state.rejected,
  };
  const podSetKey = state.podNetwork.join(",");
  const masqueradeDue = input.full || appliedPodCidrs.get(input.netns ?? "") !== podSetKey;
  if (input.config.masquerade && !masqueradeDue) outcome.masquerade.skipped = true;
  if (input.config.masquerade && masqueradeDue) {
    try {
      // Re-applied on every full pass too: that is what repairs a hand-edited table.
      if (input.config["dry-run"]) input.log.info({ ruleset: renderMasqueradeRuleset(state.podNetwork) }, "dry-run: would apply nft table inet podnet");
      else { await applyMasquerade(state.podNetwork, input.netns); appliedPodCidrs.set(input.netns ?? "", podSetKey); }
    } catch (err) { outcome.masquerade.error = message(err); }
  }
  if (!input.full) outcome.sysctls.skipped = true;
  else {
    try {
      const wanted = neededSysctls(state.families.length ? state.families : [4]);
      if (input.config["dry-run"]) input.log.info({ sysctls: wanted }, "dry-run: would ensure sysctls");
      else await ensureSysctls(wanted, input.netns);
    } catch (err) { outcome.sysctls.error = message(err); }
  }
  return outcome;
}

async function syncRoutes(input: SyncInput, view: KernelView | Error): Promise<SyncOutcome["routes"]> {
  const base = { desired: input.state.routes.length, installed: 0, added: 0, replaced: 0, deleted: 0, conflicts: [] as string[], unreachable: [] as string[] };
  if (view instanceof Error) return { ...base, error: view.message };
  const desiredKey = JSON.stringify(input.state.routes);
  if (!input.full && view.desiredKey === desiredKey && view.outcome) return { ...view.outcome, added: 0, replaced: 0, deleted: 0 };
  try {
    let plan = planRoutes(input.state.routes, view.routes, view.links.onLink);
    const counts = { added: 0, replaced: 0, deleted: 0 };
    for (const a of plan.actions) counts[a.kind === "add" ? "added" : a.kind === "replace" ? "replaced" : "deleted"]++;
    if (input.config["dry-run"]) {
      for (const a of plan.actions) input.log.info({ route: a }, `dry-run: would ${a.kind} route ${a.dst}`);
      return { ...base, ...counts, ...findings(plan), installed: plan.installed };
    }
    const result = await applyRoutes(plan.actions, input.netns);
    let error: string | undefined;
    if (result.errors.length === 0) applyToView(view, plan.actions);
    else {
      // ip -batch is not transactional and our view may be stale (a route added by hand since the last
      // full pass): read the kernel, plan again, and report what still does not match.
      view.routes = await readRoutes(input.netns);
      plan = planRoutes(input.state.routes, view.routes, view.links.onLink);
      if (plan.actions.length) error = result.errors.slice(0, 3).join("; ");
    }
    if (counts.added + counts.replaced + counts.deleted) input.log.info({ ...counts, installed: plan.installed, desired: base.desired }, "routes synced");
    const outcome = { ...base, ...counts, ...findings(plan), installed: plan.installed - (error ? plan.actions.filter((a) => a.kind !== "delete").length : 0), ...(error ? { error } : {}) };
    view.desiredKey = error ? undefined : desiredKey;
    view.outcome = outcome;
    return outcome;
  } catch (err) {
    kernelViews.delete(input.netns ?? "");
    return { ...base, error: message(err) };
  }
}

function findings(plan: RoutePlan): { conflicts: string[]; unreachable: string[] } {
  return {
    conflicts: plan.conflicts.map((c) => c.reason),
    unreachable: plan.unreachable.map((u) => `node ${u.nodeName}: ${u.via} is not on a local subnet; ${u.dst} needs an overlay`),
  };
}

async function syncCni(input: SyncInput, linkMtu: number | undefined): Promise<SyncOutcome["cni"]> {
  const { config } = input;
  const dir = config["cni-conf-dir"];
  const name = config["conflist-name"];
  const path = join(dir, name);
  const result: SyncOutcome["cni"] = { path, changed: false, shadowedBy: [], missingPlugins: [] };
  try {
    result.missingPlugins = missingPlugins(config["cni-bin-dir"], CNI_PLUGINS);
    result.shadowedBy = shadowingConfigs(dir, name);
    if (input.state.ownCidrs.length === 0) return { ...result, skipped: "no NodeCIDR is allocated to this node yet" };
    const binDir = config["cni-bin-dir"];
    let version = versionCache.get(binDir);
    if (!version && result.missingPlugins.length === 0) {
      version = commonCniVersion(await pluginVersions(binDir, ["bridge", "host-local", "portmap"]));
      if (version) versionCache.set(binDir, version);
    }
    const mtu = config.mtu || linkMtu || 1500;
    const text = conflistText(renderConflist({
      cniVersion: version ?? "1.0.0", podCidrs: input.state.ownCidrs, mtu,
      ipamDataDir: join(config["ipam-data-dir"], "podnet"),
    }));
    if (config["dry-run"]) {
      const current = existsSync(path) ? readFileSync(path, "utf8") : undefined;
      input.log.info({ path, changed: current !== text }, "dry-run: would write CNI conflist");
      return result;
    }
    result.changed = writeFileAtomic(dir, name, text);
    if (result.changed) input.log.info({ path, podCidrs: input.state.ownCidrs, mtu, cniVersion: version }, "CNI conflist written");
    return result;
  } catch (err) {
    return { ...result, error: message(err) };
  }
}
