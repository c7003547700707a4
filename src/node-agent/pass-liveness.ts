/**
 * Whether the agent's pass loop is alive, for /healthz: a wedged loop (a pass awaiting something that never
 * settles, a loop that stopped scheduling) leaves the routes and the conflist as they were, with nothing to
 * repair drift or follow NodeCIDRs, while the process answers probes. kubelet restarts it once this says so.
 *
 * Passes read only the agent's cache and the node's kernel and files, never the API server: they go on through
 * an API outage (the resync timer starts them), so an outage cannot make the loop look stuck. Before the first
 * pass (the caches wait for the API server) nothing is judged.
 *
 * Times are monotonic (performance.now()): judged on Date.now(), an NTP step forward past the idle limit failed
 * /healthz until the next pass (kubelet restarting agents on every node the step reached), and a step back
 * hid a stuck loop for as long as the step.
 */
export class PassLiveness {
  private begun = false;
  private inFlightSince?: number;
  private lastEndedAt = 0;
  private reported = false;

  constructor(private readonly limits: LivenessLimits) {}

  started(now: number): void {
    this.begun = true;
    this.inFlightSince = now;
  }

  ended(now: number): void {
    this.inFlightSince = undefined;
    this.lastEndedAt = now;
  }

  /** For /healthz: whether the loop is alive; `report` hears why not, once each time it turns stuck. */
  alive(now: number, report: (why: string) => void): boolean {
    const why = this.stuck(now);
    if (why !== undefined && !this.reported) report(why);
    this.reported = why !== undefined;
    return why === undefined;
  }

  /** Pure over the recorded times: undefined while alive, else why the loop counts as stuck. */
  stuck(now: number): string | undefined {
    if (!this.begun) return undefined;
    if (this.inFlightSince !== undefined) {
      const running = now - this.inFlightSince;
      return running > this.limits.passMs ? `a sync pass has been running for ${seconds(running)} (limit ${seconds(this.limits.passMs)})` : undefined;
    }
    const idle = now - this.lastEndedAt;
    return idle > this.limits.idleMs ? `no sync pass started for ${seconds(idle)} since the last one ended (limit ${seconds(this.limits.idleMs)})` : undefined;
  }
}

export interface LivenessLimits {
  /** Between passes: the loop sleeps at most one resync period before the next. */
  idleMs: number;
  /** One pass: long ones are legitimate (each of its tools is killed at its own deadline, 30 s for most). */
  passMs: number;
}

/** Margin for timers that fire late on a loaded node. */
const IDLE_MARGIN_MS = 30_000;
/** Twenty of a pass's tools killed one after another at their 30 s deadline: past that it is not a slow pass. */
const PASS_LIMIT_MS = 10 * 60_000;

export const livenessLimits = (resyncMs: number, passMs = PASS_LIMIT_MS): LivenessLimits => ({ idleMs: 3 * resyncMs + IDLE_MARGIN_MS, passMs });

const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;
