import { desiredNodeState, type DesiredNodeState, type ObservedNodeCidr } from "./desired-state.js";
import type { NftTableInput } from "./masquerade.js";
import type { RouteAction } from "./routes-plan.js";
import type { VxlanPlan } from "./vxlan-plan.js";

/**
 * A record set that vanishes is no proof that the nodes did. The controller retires a departed Node's NodeCIDR by
 * marking it Released, and deletes the object only after its cooldown; an object gone while still Allocated was
 * deleted by hand, with its CRD, or by an uninstall, and the controller gives a hand-deleted one back with the same
 * CIDR within milliseconds. Trusting such an absence, every agent deleted its routes and podnet.vxlan (a review:
 * `kubectl delete crd` cost ~45 s of pod networking, a hand `delete nodecidrs --all` 100–160 ms). So:
 * - while this node's own NodeCIDR is missing without having been retired, and for HOLD_DOWN_MS after it is back
 *   (the rest may follow it a moment later), the agent removes nothing it programmed; it still adds and updates.
 *   Missing means: seen to vanish while Allocated, or (a restart, a reinstall) absent while podnet's conflist on
 *   disk says this node had a pod CIDR. A node that never had one (new, or no pool gives it one) and one whose
 *   record the controller Released hold nothing: a restarted agent converges at once;
 * - another node's record that vanished while Allocated is planned as live for HOLD_DOWN_MS (longer while removals
 *   are held): restored meanwhile, its route never moves. A Released record goes at once, as before.
 * Pure: the caller gives the monotonic time.
 */
export const HOLD_DOWN_MS = 5_000;

/** What a pass plans with, from the hold. */
export interface HoldDecision {
  /** Other nodes' records that vanished while Allocated, planned as still live. */
  held: ObservedNodeCidr[];
  /** Nothing the agent programmed is removed in this pass (routes, podnet.vxlan entries, nft, FORWARD accepts). */
  removalsHeld: boolean;
  /** Set on the pass that sees this node's own record go, or come back: said once each. */
  change?: "own-record-gone" | "own-record-back";
}

/** This node's own records as a pass finds them. */
export interface OwnRecords {
  /** One is Allocated. */
  live: boolean;
  /** One is there in another phase (Released, Quarantined): the controller's state is there and took it back. */
  retired: boolean;
  /** Whether podnet's conflist is on disk (asked only when no record of this node's is there). */
  conflistOnDisk: () => boolean;
}

export class RecordHold {
  private readonly vanishedPeers = new Map<string, { record: ObservedNodeCidr; until: number }>();
  /** This node's Allocated record left the cache (deleted, not released) and none is back yet. */
  private ownVanished = false;
  /** This node's record was seen retired since it was last live: its absence is the controller's doing. */
  private ownRetired = false;
  private ownMissing = false;
  private removalsHeldUntil = -Infinity;
  /** When a hold ends (monotonic ms): a pass is due then. Undefined while none ends by time. */
  wakeAt?: number;

  constructor(private readonly self: string, readonly holdMs = HOLD_DOWN_MS) {}

  /** A record left the informer's cache (its last state). Only an Allocated one counts. */
  vanished(record: ObservedNodeCidr, now: number): void {
    if (record.phase !== "Allocated") return;
    if (record.nodeName === this.self) this.ownVanished = true;
    else this.vanishedPeers.set(record.name, { record, until: now + this.holdMs });
  }

  /** Held records whose range a live record now holds: the controller gave it on, and the held one would clash. */
  forget(names: readonly string[]): void {
    for (const name of names) this.vanishedPeers.delete(name);
  }

  /** Once per pass. `present`: whether a record of that name is in the cache (a restored record ends its hold). */
  decide(input: { own: OwnRecords; present: (name: string) => boolean; now: number }): HoldDecision {
    const { now } = input;
    const missing = this.ownRecordMissing(input.own);
    let change: HoldDecision["change"];
    if (missing && !this.ownMissing) change = "own-record-gone";
    if (!missing && this.ownMissing) { change = "own-record-back"; this.removalsHeldUntil = now + this.holdMs; }
    this.ownMissing = missing;
    const removalsHeld = missing || now < this.removalsHeldUntil;
    const held: ObservedNodeCidr[] = [];
    const ends: number[] = removalsHeld && !missing ? [this.removalsHeldUntil] : [];
    for (const [name, h] of this.vanishedPeers) {
      if (input.present(name) || (!removalsHeld && h.until <= now)) { this.vanishedPeers.delete(name); continue; }
      held.push(h.record);
      if (!missing && h.until > now) ends.push(h.until);
    }
    this.wakeAt = ends.length ? Math.min(...ends) : undefined;
    return { held, removalsHeld, ...(change ? { change } : {}) };
  }

  private ownRecordMissing(own: OwnRecords): boolean {
    if (own.live) { this.ownVanished = false; this.ownRetired = false; return false; }
    if (own.retired) { this.ownVanished = false; this.ownRetired = true; return false; }
    return this.ownVanished || (!this.ownRetired && own.conflistOnDisk());
  }
}

/**
 * Pure: the desired state with held records planned as live. A held record that overlaps a live one is left out
 * (its range is another record's now; planned together, both would be withheld) and named for the hold to forget.
 */
export function desiredWithHeld(live: ObservedNodeCidr[], held: ObservedNodeCidr[], self: string, poolRanges: string[]): { state: DesiredNodeState; clashing: string[] } {
  if (held.length === 0) return { state: desiredNodeState(live, self, poolRanges), clashing: [] };
  const heldNames = new Set(held.map((r) => r.name));
  const state = desiredNodeState([...live, ...held], self, poolRanges);
  const clashing = [...new Set(state.rejected.filter((r) => r.reason === "OverlappingCIDR" && heldNames.has(r.name)).map((r) => r.name))];
  if (clashing.length === 0) return { state, clashing };
  return { state: desiredNodeState([...live, ...held.filter((r) => !clashing.includes(r.name))], self, poolRanges), clashing };
}

/** Pure: a route plan's actions with its deletions left out (removals held). */
export const withoutDeletions = (actions: RouteAction[]): RouteAction[] => actions.filter((a) => a.kind !== "delete");

/**
 * Pure: a podnet.vxlan plan without its removals: no address, neighbour or forwarding entry goes. A re-creation
 * (another VNI, port or local address: a configuration change) stays, as does the device's removal when the overlay
 * is turned off: neither comes from a vanished record.
 */
export const withoutVxlanRemovals = (plan: VxlanPlan): VxlanPlan =>
  ({ ip: plan.ip.filter((line) => !line.startsWith("addr del ")), bridge: plan.bridge, after: { ip: [], bridge: [] } });

/**
 * Pure: the nft table a pass wants, keeping every pod range and VXLAN sender of the one planned before, and its
 * local address and tunnel MTU where this node's are not known now (its NodeCIDR gone with the node IP in it).
 * Configuration (masquerade, the overlay on or off, the port) is taken as it is now.
 */
export function nftTableKeeping(wanted: NftTableInput, before: NftTableInput): NftTableInput {
  const keep = (now: string[], then: string[]) => [...now, ...then.filter((x) => !now.includes(x))];
  const tunnelMtu = wanted.tunnelMtu ?? (wanted.clampMssOut ? before.tunnelMtu : undefined);
  const local = wanted.vxlan?.local ?? before.vxlan?.local;
  return {
    ...wanted, podCidrs: keep(wanted.podCidrs, before.podCidrs), ...(tunnelMtu === undefined ? {} : { tunnelMtu }),
    ...(wanted.vxlan ? { vxlan: { ...wanted.vxlan, senders: keep(wanted.vxlan.senders, before.vxlan?.senders ?? []), ...(local ? { local } : {}) } } : {}),
  };
}
