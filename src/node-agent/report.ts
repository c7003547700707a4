import type { ConditionInput } from "../lib/conditions.js";
import type { RejectedRecord } from "./desired-state.js";
import { chainName, type ForeignForwardDrop } from "./foreign-forward.js";
import { BRIDGE_NAME } from "./cni-conflist.js";
import { FAMILY_PENDING } from "./family-gap.js";
import { podCidrHeldMessage, type PodCidrHolder } from "./pod-cidr-holders.js";

/** What one sync pass did, gathered from the shells; turned into conditions by `agentConditions`. */
export interface SyncOutcome {
  routes: { desired: number; installed: number; overlay: number; overlayChanges: number; added: number; replaced: number; deleted: number; conflicts: string[]; unreachable: string[]; error?: string;
    /** The VXLAN device failed while no peer needed it: direct routes are fine, nodes behind a router would not be. */
    overlayError?: string };
  /**
   * removedBridgeAddresses: old pod-CIDR gateways taken off podnet's bridge in this pass; bridgeError: one
   * could not be taken off (see bridge-addresses.ts).
   */
  cni: { path: string; changed: boolean; shadowedBy: string[]; missingPlugins: string[]; removedBridgeAddresses?: string[]; bridgeError?: string; error?: string; skipped?: string;
    /** Devices other than podnet's bridge holding routes or addresses in this node's pod CIDRs (another plugin's cni0). */
    podCidrHeldBy?: { podCidrs: string[]; holders: PodCidrHolder[] };
    /** This node's further CIDRs of a family it already has one of: not in the conflist (one per family). */
    unusedCidrs?: string[];
    /** Plugins chained after podnet's that were dropped from the conflist: no binary in `binDir` (while it stays missing). */
    droppedChained?: { plugins: string[]; binDir: string };
    /** The config the runtime picks sorts before podnet's but delegates to podnet's network (Multus's 00-multus.conf). */
    usedThrough?: string;
    /** That config holds its own copy of podnet's conflist (Multus's thin plugin): podnet's changes wait for Multus to rewrite it. */
    usedThroughCopy?: boolean;
    /** No first conflist yet: this node's pool serves these families too, and their NodeCIDRs may still come (family-gap.ts). */
    awaitingFamilies?: Array<4 | 6>;
    /** host-local's state stays in `dataDir` although `configured` names another (see ipamDataDirInEffect). */
    ipamDataDirKept?: { dataDir: string; configured: string };
    /** Pods holding host-local leases outside this node's pod CIDRs (pod-leases.ts): the first few, and how many. */
    leasesOutside?: { count: number; shown: Array<{ ip: string; container: string }> } };
  /** skipped: not re-checked in this event-driven pass; the last full pass's result stands. */
  masquerade: { enabled: boolean; keepSourceTo?: string[]; error?: string; skipped?: boolean;
    /** Packets the VXLAN filter dropped (from non-nodes / pods' own), as read on a full pass. */
    vxlanDrops?: { in: number; fromPods: number } };
  /**
   * error: forwarding (no pod traffic leaves the node); bridgeNetfilterError: same-node Services fail;
   * reversePathError: strict reverse-path filtering left in place (pods of nodes that see this one differently).
   */
  sysctls: {
    error?: string; bridgeNetfilterError?: string; reversePathError?: string; skipped?: boolean;
    /** The families the forwarding sysctls were checked for (named in SysctlsReady, so a result never speaks for a family it did not check). */
    families?: Array<4 | 6>;
    /** The host firewall step ran in this pass (event passes run it when the pod network changed). */
    firewallChecked?: boolean;
    /** Families whose host FORWARD chain drops by default (podnet accepts the pod network there), or why it could not. */
    forwardDropPolicy?: Array<4 | 6>; forwardAcceptError?: string;
    /** The chain could not even be read (nft refused the listing): whether it drops is unknown. */
    forwardChainUnreadable?: boolean;
    /** Other tables' chains on the forward hook that drop by default and drop, or may drop, pod traffic. */
    forwardDroppedElsewhere?: ForeignForwardDrop[];
    /** The firewall step met a held xtables lock and decided nothing: the last result stands, the pass is retried. */
    firewallBusy?: string;
  };
  rejected: RejectedRecord[];
  /** FamiliesComplete: this node has a pod CIDR of every family its pool serves (family-gap.ts); absent without own records. */
  families?: ConditionInput;
}

type Sysctls = SyncOutcome["sysctls"];
const firewallResult = ({ forwardDropPolicy, forwardAcceptError, forwardChainUnreadable, forwardDroppedElsewhere }: Sysctls): Sysctls =>
  ({ ...(forwardDropPolicy ? { forwardDropPolicy } : {}), ...(forwardAcceptError ? { forwardAcceptError } : {}), ...(forwardChainUnreadable ? { forwardChainUnreadable } : {}),
    ...(forwardDroppedElsewhere ? { forwardDroppedElsewhere } : {}) });

/**
 * Pure: a pass's sysctls outcome against the last one. An event pass checks no sysctl, so the last full pass's
 * result stands; the host firewall step's result, success included, replaces the earlier one when the step ran
 * and decided something (not when it met a held xtables lock).
 */
export function sysctlsAfterPass(last: Sysctls | undefined, now: Sysctls): Sysctls {
  if (!last) return now;
  const decided = now.firewallChecked && !now.firewallBusy;
  if (!now.skipped && decided) return now;
  if (now.skipped && !now.firewallChecked) return last;
  const { forwardDropPolicy: _policy, forwardAcceptError: _error, forwardChainUnreadable: _unreadable, forwardDroppedElsewhere: _elsewhere, firewallBusy: _busy, ...rest } = now.skipped ? last : now;
  return { ...rest, ...firewallResult(decided ? now : last), ...(now.firewallBusy ? { firewallBusy: now.firewallBusy } : {}) };
}

/** Pure: did a pass leave this node short of what it should have (the agent then retries with backoff)? */
export const passLeftWorkUndone = (o: SyncOutcome): boolean =>
  Boolean(o.routes.error || o.cni.error || o.masquerade.error || o.sysctls.error || o.sysctls.forwardAcceptError || o.sysctls.firewallBusy);

const ok = (type: string, reason: string, message: string): ConditionInput => ({ type, status: "True", reason, message });
const bad = (type: string, reason: string, message: string): ConditionInput => ({ type, status: "False", reason, message });

/** SysctlsReady=False for br_netfilter alone: pods still network (the Node is not held back), Services on the node do not. */
export const BRIDGE_NETFILTER_OFF = "BridgeNetfilterOff";
/** SysctlsReady=False, not held against the Node either: only pods of nodes that see this one differently are cut off. */
export const REVERSE_PATH_STRICT = "ReversePathFilterStrict";
/** SysctlsReady=False: another table's forward-hook chain drops pod traffic on every way its rules allow. */
export const FORWARD_DROPPED_BY_OTHER_TABLE = "ForwardDroppedByOtherTable";
/** SysctlsReady=True: such a chain may drop some pod traffic, depending on what podnet cannot tell from its rules. */
export const FORWARD_MAY_BE_DROPPED = "ForwardMayBeDropped";
/** CNIConfigured=False: another device (a plugin's leftover bridge) holds this node's pod CIDR; the kernel routes pods there. */
export const POD_CIDR_HELD_BY_DEVICE = "PodCIDRHeldByDevice";
/** CNIConfigured=True: new pods network, but pods started from an earlier range's conflist hold addresses no node routes here. */
export const POD_ADDRESSES_OUTSIDE_CIDR = "PodAddressesOutsideCIDR";
/** CNIConfigured=True: pods network, but a configured IPAM directory change waits for the node to be drained. */
export const IPAM_DATA_DIR_KEPT = "IPAMDataDirKept";

const masqueradeMessage = (keepSourceTo: string[]) => "pod traffic leaving the pod network is masqueraded" +
  (keepSourceTo.length ? `, except to ${keepSourceTo.join(", ")} (no-masquerade CIDRs)` : "");

/** Pure: a sync outcome → the agent's conditions on its node's NodeCIDR(s). Ready summarises the rest. */
export function agentConditions(o: SyncOutcome): ConditionInput[] {
  const routes = routesCondition(o);
  const cni = cniCondition(o);
  const masq = o.masquerade.error
    ? bad("MasqueradeReady", "NftablesFailed", o.masquerade.error)
    : o.masquerade.enabled ? ok("MasqueradeReady", "Applied", masqueradeMessage(o.masquerade.keepSourceTo ?? []))
    : ok("MasqueradeReady", "Disabled", "masquerade disabled by configuration");
  const elsewhere = o.sysctls.forwardDroppedElsewhere ?? [];
  const sysctl = o.sysctls.error ? bad("SysctlsReady", "SysctlFailed", o.sysctls.error)
    : o.sysctls.forwardAcceptError && o.sysctls.forwardChainUnreadable ? bad("SysctlsReady", "FirewallUnreadable", "podnet could not read the host "
      + `firewall's FORWARD chain, so it cannot tell whether forwarded pod traffic is dropped there: ${o.sysctls.forwardAcceptError}`)
    : o.sysctls.forwardAcceptError ? bad("SysctlsReady", "ForwardDropped", "the host firewall's FORWARD chain drops by default and podnet "
      + `could not accept the pod network in it, so forwarded pod traffic is dropped: ${o.sysctls.forwardAcceptError}`)
    : elsewhere.some((f) => f.dropped.length) ? bad("SysctlsReady", FORWARD_DROPPED_BY_OTHER_TABLE, droppedElsewhereMessage(elsewhere))
    : o.sysctls.bridgeNetfilterError ? bad("SysctlsReady", BRIDGE_NETFILTER_OFF, o.sysctls.bridgeNetfilterError)
    : o.sysctls.reversePathError ? bad("SysctlsReady", REVERSE_PATH_STRICT, o.sysctls.reversePathError)
    : ok("SysctlsReady", elsewhere.length ? FORWARD_MAY_BE_DROPPED : "Set", `forwarding enabled${o.sysctls.families ? ` (${o.sysctls.families.map((f) => `IPv${f}`).join(", ")})` : ""}; bridged pod traffic passes netfilter` + (o.sysctls.forwardDropPolicy?.length
      ? `; the host firewall's FORWARD chain drops by default (${o.sysctls.forwardDropPolicy.map((f) => `IPv${f}`).join(", ")}): podnet accepts the pod network in it` : "")
      + (elsewhere.length ? `; ${droppedElsewhereMessage(elsewhere)}` : ""));
  const shadowed = o.cni.shadowedBy.length
    ? ok("CNIConfigShadowed", "EarlierConfigPresent", `${o.cni.shadowedBy.join(", ")} sorts before ${o.cni.path}`)
    : o.cni.usedThrough ? bad("CNIConfigShadowed", "UsedThrough", `the runtime picks ${o.cni.usedThrough}, which hands pods to podnet's network`)
    : bad("CNIConfigShadowed", "NotShadowed", "podnet's conflist is the one the runtime picks");
  const parts = [routes, cni, masq, sysctl, ...(o.families ? [o.families] : [])];
  const failing = parts.filter((c) => c.status !== "True");
  const ready = failing.length === 0
    ? ok("Ready", "NodeNetworkReady", "routes, CNI config, masquerade and sysctls are in place")
    : bad("Ready", failing[0]!.reason, failing.map((c) => `${c.type}: ${c.message}`).join("; "));
  return [...parts, shadowed, ready];
}

/**
 * Which chains drop, or may drop, which pod traffic, and what lets it through: podnet cannot accept it in another
 * program's table, and a packet must be accepted by every chain on the hook.
 */
function droppedElsewhereMessage(chains: ForeignForwardDrop[]): string {
  const shown = chains.slice(0, 3).map((c) => c.unreadable ? `${chainName(c)} (forward hook) may drop pod traffic: podnet cannot read it (${c.unreadable})` : `${chainName(c)} (forward hook) drops by default and ${[
    ...(c.dropped.length ? [`drops ${c.dropped.join(", ")}`] : []),
    ...(c.mayDrop.length ? [`may drop ${c.mayDrop.join(", ")} (its rules match on what podnet cannot tell: another interface's name, ports, marks)`] : []),
  ].join("; it ")}`);
  const ranges = [...new Set(chains.flatMap((c) => c.ranges))];
  return `${shown.join("; ")}${chains.length > 3 ? ` (+${chains.length - 3} more)` : ""}. podnet cannot accept pod traffic in another program's table, `
    + `and a packet must pass every table's chain on the forward hook: let ${BRIDGE_NAME} and the pod network (${ranges.join(", ")}) through there `
    + `(firewalld: firewall-cmd --permanent --zone=trusted --add-interface=${BRIDGE_NAME}${ranges.map((r) => ` --add-source=${r}`).join("")}, then firewall-cmd --reload)`;
}

function routesCondition(o: SyncOutcome): ConditionInput {
  const r = o.routes;
  if (r.error) return bad("RoutesProgrammed", "RouteSyncFailed", r.error);
  const problems = [
    ...r.conflicts.map((c) => `conflict: ${c}`),
    ...r.unreachable.map((u) => `unreachable: ${u}`),
    ...o.rejected.map((x) => `${x.reason}: ${x.message}`),
    ...(r.overlayError ? [`overlay unavailable, so a node behind a router would be unreachable: ${r.overlayError}`] : []),
  ];
  // State only, no per-pass deltas: a message that changes every pass would mean a status write every pass.
  const summary = `${r.installed}/${r.desired} routes installed${r.overlay ? ` (${r.overlay} through VXLAN)` : ""}`;
  if (problems.length === 0) return ok("RoutesProgrammed", "Programmed", summary);
  const reason = r.conflicts.length ? "RouteConflict" : r.unreachable.length ? "NodeUnreachable" : o.rejected.length ? o.rejected[0]!.reason : "OverlayUnavailable";
  return bad("RoutesProgrammed", reason, `${summary}; ${problems.slice(0, 5).join("; ")}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ""}`);
}

function cniCondition(o: SyncOutcome): ConditionInput {
  const c = o.cni;
  if (c.error) return bad("CNIConfigured", "WriteFailed", c.error);
  // Multus's thin plugin goes on handing out what its copy says, whatever podnet's own file says or whether it exists.
  if (c.skipped) return bad("CNIConfigured", "NoPodCIDR", `${c.skipped}${c.usedThroughCopy ? `; ${c.usedThrough} holds its own copy of podnet's conflist, `
    + "which the runtime goes on using until Multus rewrites it" : ""}`);
  if (c.bridgeError) return bad("CNIConfigured", "StaleBridgeAddress", `an old pod-CIDR gateway stays on the pod bridge, so new pods will not start: ${c.bridgeError}`);
  if (c.podCidrHeldBy) return bad("CNIConfigured", POD_CIDR_HELD_BY_DEVICE, podCidrHeldMessage(c.podCidrHeldBy.podCidrs, c.podCidrHeldBy.holders));
  if (c.missingPlugins.length) return bad("CNIConfigured", "PluginsMissing", `CNI plugins missing: ${c.missingPlugins.join(", ")}`);
  if (c.awaitingFamilies) return bad("CNIConfigured", FAMILY_PENDING, `no CNI config yet: waiting a few seconds for this node's ${c.awaitingFamilies.map((f) => `IPv${f}`).join(" and ")} `
    + "pod CIDR, which its pool serves too (FamiliesComplete)");
  if (c.shadowedBy.length) return bad("CNIConfigured", "CNIConfigShadowed", `${c.shadowedBy.join(", ")} sorts before ${c.path}; the container runtime will use it instead of podnet's config`);
  // The same words whether this pass wrote the file or found it current: "written" then "up to date" cost every
  // agent a second status write after each start.
  const written = `${c.path} in place${c.usedThrough ? `, used through ${c.usedThrough}` : ""}${c.usedThroughCopy
    ? ", which holds its own copy: changes reach pods only when Multus rewrites it" : ""}${c.unusedCidrs?.length
    ? `; ${c.unusedCidrs.join(", ")} not handed out: a second pod CIDR of its family for this node (pods get one per family)` : ""}${c.droppedChained
    ? `; ${namesCapped(c.droppedChained.plugins)} dropped from the plugins chained after podnet's: not in ${c.droppedChained.binDir}, so every pod's CNI ADD would fail on it` : ""}`;
  const kept = c.ipamDataDirKept && `; host-local state stays in ${c.ipamDataDirKept.dataDir}, not the configured ${c.ipamDataDirKept.configured}: pods `
    + `on this node hold leases there, and an empty directory would lease their addresses again. To switch, drain the node and delete ${c.path}`;
  if (c.leasesOutside) {
    const { count, shown } = c.leasesOutside;
    const list = shown.map((l) => `${l.ip}${l.container ? ` (container ${l.container})` : ""}`).join(", ");
    return ok("CNIConfigured", POD_ADDRESSES_OUTSIDE_CIDR, `${written}${kept || ""}; ${count === 1 ? "1 pod address leased on this node lies" : `${count} pod addresses `
      + "leased on this node lie"} outside its pod CIDRs: ${list}${count > shown.length ? ` (+${count - shown.length} more)` : ""}. Those pods started from the `
      + "conflist of an earlier range and no node routes their addresses to this one: delete them to start them again in this node's range "
      + "(a lease whose container is gone is host-local's leftover: remove its file)");
  }
  if (kept) return ok("CNIConfigured", IPAM_DATA_DIR_KEPT, `${written}${kept}`);
  return ok("CNIConfigured", "Written", written);
}

/**
 * At most five names of at most 64 characters: plugin types come from a file anyone with the directory writes,
 * and a condition message past the CRD's limit would have every status write of the record refused.
 */
export function namesCapped(names: string[]): string {
  const shown = names.slice(0, 5).map((n) => (n.length > 64 ? `${n.slice(0, 61)}...` : n));
  return `${shown.join(", ")}${names.length > 5 ? ` (+${names.length - 5} more)` : ""}`;
}
