import { Backoff } from "../lib/backoff.js";

/**
 * When the agent's next pass is due because the last one fell short: it threw, or it left work undone (a route
 * batch, the conflist, nft or a sysctl failed: a full /etc/cni/net.d, a directory the runtime creates later).
 * Retried from 1 s, doubling up to the resync period; a retry of undone work is a full pass (event passes skip
 * the sysctls and nft). The backoff grows only when a retry fires, not with the event passes in between, and
 * a clean pass ends it.
 */
export class PassRetry {
  /** When the retry is due, on the caller's monotonic clock (performance.now()); undefined when none is. */
  dueAt?: number;
  /** Whether the retry must be a full pass. */
  full = false;
  private readonly backoff: Backoff;

  constructor(maxMs: number, random = Math.random) {
    this.backoff = new Backoff(1_000, maxMs, random);
  }

  /** After each pass. */
  passed(outcome: "clean" | "threw" | "undone", now: number): void {
    if (outcome === "clean") {
      this.dueAt = undefined;
      this.full = false;
      this.backoff.reset();
      return;
    }
    this.full ||= outcome === "undone";
    this.dueAt ??= now + this.backoff.next();
  }

  /** The retry's timer fired: the next shortfall waits longer. Returns whether the pass must be full. */
  fired(): boolean {
    this.dueAt = undefined;
    return this.full;
  }
}
