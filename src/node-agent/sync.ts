import type { AgentConfig } from "../config.js";
import type { Logger } from "../log.js";
import type { DesiredNodeState } from "./desired-state.js";
import type { FamilyGap } from "./family-gap.js";
import { removeStaleBridgeAddresses } from "./bridge-addresses.js";
import { podCidrHolders, type PodCidrHolder } from "./pod-cidr-holders.js";
import { MissingToolError } from "./exec.js";
import { bridgeNetfilterProblem, bridgeNetfilterSysctls, ensureSysctls, forwardingProblem, neededSysctls } from "./forwarding.js";
import { kernelView, overlayMtu, podMtu, syncRoutes, type KernelView } from "./route-sync.js";
import { FirewallBusyError, FirewallUnreadableError } from "./forward-accept.js";
import { syncForwardAccepts } from "./forward-accept-sync.js";
import { syncReversePath } from "./reverse-path.js";
import { syncNft } from "./nft-sync.js";
import type { SyncOutcome } from "./report.js";
import { syncCni } from "./sync-cni.js";

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
