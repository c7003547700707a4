import { join } from "node:path";
import type { Gauge } from "prom-client";
import type { AgentConfig } from "../config.js";
import type { Logger } from "../log.js";
import { isPodnetConflist } from "./cleanup-leftovers.js";
import type { DesiredNodeState } from "./desired-state.js";
import { desiredWithHeld, RecordHold, type HoldDecision } from "./record-hold.js";
import { observed, type Record_ } from "./records.js";

/**
 * The agent's side of record-hold.ts: each pass's decision from the informer's cache (and, while this node has no
 * record, from its conflist on disk), the desired state with held records in it, and the report of the hold.
 */
export class AgentRecordHold {
  readonly hold: RecordHold;
  private readonly node: string;

  constructor(private readonly config: AgentConfig, private readonly log: Logger, private readonly gauge: Gauge) {
    this.node = config["node-name"];
    this.hold = new RecordHold(this.node);
  }

  /** When a hold ends (monotonic ms): a full pass is due then. */
  get wakeAt(): number | undefined { return this.hold.wakeAt; }

  vanished(record: Record_): void { this.hold.vanished(observed(record), performance.now()); }

  /**
   * The desired state for a pass, and whether it removes nothing. `predecessors`: Allocated records of this node's
   * name made for an earlier Node of it (node-identity.ts), left out of `cache`. They are the controller's state
   * (no hold for them), and a conflist still handing out their range goes, as one handing out another node's does.
   */
  plan(cache: ReadonlyMap<string, Record_>, poolRanges: string[], predecessors: readonly Record_[] = []): { state: DesiredNodeState; removalsHeld: boolean } {
    const all = [...cache.values()];
    const mine = all.filter((r) => r.spec.nodeName === this.node);
    const live = mine.some((r) => r.status?.phase === "Allocated");
    const decision = this.hold.decide({
      own: { live, retired: !live && (mine.length > 0 || predecessors.length > 0), conflistOnDisk: () => this.conflistOnDisk() },
      present: (name) => cache.has(name), now: performance.now(),
    });
    const { state, clashing } = desiredWithHeld(all.map(observed), decision.held, this.node, poolRanges);
    this.hold.forget(clashing);
    this.report(decision);
    if (!live) state.othersLive.push(...predecessors.map((r) => ({ dst: r.spec.cidr, nodeName: this.node, earlierNode: true })));
    return { state, removalsHeld: decision.removalsHeld };
  }

  /** Unreadable counts as absent: removals go on as they did before the hold existed. */
  private conflistOnDisk(): boolean {
    try { return isPodnetConflist(join(this.config["cni-conf-dir"], this.config["conflist-name"])); } catch { return false; }
  }

  private report(decision: HoldDecision): void {
    this.gauge.set(decision.removalsHeld ? 1 : 0);
    if (decision.change === "own-record-gone") this.log.warn({ node: this.node }, "this node's NodeCIDR is gone without a release (deleted by hand or with its CRD, "
      + "an uninstall): until it is back, the agent removes none of the routes, podnet.vxlan entries, nft elements and FORWARD accepts it programmed, and only adds and updates");
    if (decision.change === "own-record-back") this.log.info({ node: this.node, holdMs: this.hold.holdMs }, "this node's NodeCIDR is back: what no NodeCIDR names is removed after the hold-down");
  }
}
