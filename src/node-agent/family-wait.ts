import type { IpFamily } from "../lib/cidr.js";
import type { Logger } from "../log.js";
import { familiesCondition, familyGap, type FamilyGap, type PoolFamilies } from "./family-gap.js";

/**
 * The clock beside the family-gap planners: since when this node has lacked a family its pool serves, a pass
 * woken when the grace period ends, and one log line each way. Monotonic time, as everywhere in the agent.
 */
export class FamilyWait {
  private since?: number;
  private timer?: NodeJS.Timeout;
  private reported = "";

  constructor(private readonly nodeName: string, private readonly graceMs: number, private readonly log: Logger, private readonly requestPass: () => void) {}

  /** For one pass: the gap, how long it has lasted, and the FamiliesComplete condition (none without own records). */
  observe(ownPools: string[], pools: PoolFamilies[], held: IpFamily[], now = performance.now()) {
    const gap = familyGap(ownPools, pools, held);
    if (gap.missing.length === 0) this.since = undefined;
    else this.since ??= now;
    const waitedMs = this.since === undefined ? 0 : now - this.since;
    this.logTransition(gap, waitedMs);
    this.wakeAtGraceEnd(gap, waitedMs);
    return { gap, waitedMs, graceMs: this.graceMs, condition: ownPools.length ? familiesCondition(gap, waitedMs, this.graceMs, this.nodeName) : undefined };
  }

  stop(): void { clearTimeout(this.timer); }

  /** The pass after the grace period writes the conflist with what the node has: no event need come to wake it. */
  private wakeAtGraceEnd(gap: FamilyGap, waitedMs: number): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (gap.missing.length && waitedMs < this.graceMs) this.timer = setTimeout(this.requestPass, this.graceMs - waitedMs + 10);
  }

  private logTransition(gap: FamilyGap, waitedMs: number): void {
    const key = gap.missing.length && waitedMs >= this.graceMs ? `${gap.missing.join(",")}:${gap.pools.join(",")}` : "";
    if (key === this.reported) return;
    const families = (fs: IpFamily[]) => fs.map((f) => `IPv${f}`);
    if (key) this.log.warn({ node: this.nodeName, pools: gap.pools, missing: families(gap.missing), graceMs: this.graceMs },
      `node ${this.nodeName} has no ${families(gap.missing).join(" and ")} pod CIDR from ${gap.pools.join(", ")} after the grace period: its pods get the other family only until it arrives (FamiliesComplete=False)`);
    else if (gap.missing.length === 0) this.log.info({ node: this.nodeName, pools: gap.pools, families: families(gap.expected) }, "node has a pod CIDR of every family its pool serves again");
    this.reported = key;
  }
}
