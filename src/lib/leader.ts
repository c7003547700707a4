import { hostname } from "node:os";
import type { Logger } from "../log.js";
import { sleep } from "./backoff.js";
import { apiMessage, isAlreadyExists, isNotFound, type KubeApi } from "./k8s.js";

export interface LeaderElectionOptions {
  api: KubeApi;
  namespace: string;
  name: string;
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log: Logger;
  /** Called again, with no onStoppedLeading between, when a leader renews after its renew deadline passed: its writes were refused meanwhile, and another replica may have led. */
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}
interface Lease { metadata: { name: string; namespace: string; resourceVersion?: string }; spec: LeaseSpec }

// Lease times are MicroTime (exactly six fractional digits); the typed client would send JS milliseconds.
export const microTime = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
const leases = { group: "coordination.k8s.io", version: "v1", plural: "leases" };

/**
 * Lease-based leader election (client-node 1.4.0 has none). Like client-go, expiry is judged by when *we*
 * last saw the lease change, on our own monotonic clock, so skew between nodes and a stepped wall clock do not
 * matter (the wall clock only stamps the lease's times). A leader that cannot renew within renewDeadline stops
 * acting before any other replica may take over (leaseDuration).
 */
const monotonicMs = () => performance.now();

/**
 * A replica's lease holder identity: its pod name, pid and a random tail for a restart in place. The chart gives
 * the pod name as POD_NAME: the controller runs in the host network, where the host name is the node's.
 */
export const replicaIdentity = (env: NodeJS.ProcessEnv = process.env) => `${env.POD_NAME || hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

export class LeaderElector {
  readonly identity: string;
  private leading = false;
  private running = false;
  private loop?: Promise<void>;
  private readonly stopSignal = new AbortController();
  private observed?: { record: string; at: number };
  private lastRenew = 0;
  /** This round read the lease held, unexpired, by another replica. */
  private heldByAnother = false;
  private otherHolder?: string;
  transitions = 0;

  constructor(private readonly o: LeaderElectionOptions) {
    this.identity = o.identity ?? replicaIdentity();
  }

  get isLeader(): boolean { return this.leading; }
  private get durationMs() { return this.o.leaseDurationMs ?? 15_000; }
  private get renewDeadlineMs() { return this.o.renewDeadlineMs ?? 10_000; }

  /**
   * Leading, and renewed within the renew deadline by the clock now. The loop notices a missed deadline only
   * at its next round; a process that was frozen (CPU throttling, a paused VM) must not write on before that.
   */
  holdsLease(now = monotonicMs()): boolean {
    return this.leading && now - this.lastRenew < this.renewDeadlineMs;
  }

  run(): Promise<void> {
    this.loop ??= this.rounds();
    return this.loop;
  }

  private async rounds(): Promise<void> {
    this.running = true;
    while (this.running) {
      // A renewal counts from before its request went out: the server cannot have stamped it earlier, so however
      // late the answer (or this process) is, the write window ends before any follower may take over.
      const roundStart = monotonicMs();
      this.heldByAnother = false;
      const ok = await this.withinDeadline(this.tryAcquireOrRenew()).catch((err: unknown) => {
        this.o.log.warn({ lease: this.o.name, err: apiMessage(err) }, "lease update failed");
        return false;
      });
      // stop() came during the round: it releases the lease once this round is over, and nobody leads here.
      if (!this.running) break;
      const now = monotonicMs();
      // Leading, but the deadline passed since the last renewal (a round failed just before it, or the process
      // was frozen): writes were refused meanwhile, so the leader must plan again once it holds the lease.
      const lapsed = this.leading && !this.holdsLease(now);
      if (ok) this.lastRenew = roundStart;
      if (ok && !this.leading) this.setLeading(true);
      else if (ok && lapsed) {
        this.o.log.info({ lease: this.o.name, identity: this.identity }, "lease renewed after its renew deadline had passed");
        this.o.onStartedLeading();
      }
      // Another holder seen: step down at once, not at the renew deadline (client-go's IsLeader turns false then too).
      if (!ok && this.leading && (this.heldByAnother || now - this.lastRenew > this.renewDeadlineMs)) {
        this.setLeading(false, this.heldByAnother ? `the lease is held by ${this.otherHolder ?? "another replica"}`
          : `not renewed within the renew deadline (${this.renewDeadlineMs} ms; the API server did not answer or refused)`);
      }
      await sleep(this.o.retryPeriodMs ?? 2_000, this.stopSignal.signal);
    }
  }

  /**
   * A round trip that hangs (a black-holed connection, a stuck load balancer) must not keep a leader leading
   * past its renew deadline while another replica takes the lease: give up on it when the deadline comes.
   */
  private withinDeadline<T>(attempt: Promise<T>): Promise<T> {
    const deadlineMs = this.renewDeadlineMs;
    const leftMs = this.leading ? Math.max(100, this.lastRenew + deadlineMs - monotonicMs()) : deadlineMs;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from the API server within ${leftMs} ms`)), leftMs);
    });
    attempt.catch(() => undefined); // abandoned on timeout: its late failure is not news
    return Promise.race([attempt, expired]).finally(() => clearTimeout(timer));
  }

  /**
   * Give the lease up so another replica takes over at once (graceful shutdown). A round under way is let
   * finish first: its renewal or acquisition would otherwise land after the release (or make the release's
   * write conflict), and the successor would wait out the whole lease.
   */
  async stop(): Promise<void> {
    this.running = false;
    this.stopSignal.abort();
    await this.loop;
    if (this.leading) this.setLeading(false, "shutting down");
    // Read even as a follower: the last round may have taken the lease just before stop() came.
    const lease = await this.withinDeadline(this.read()).catch(() => undefined);
    if (lease?.spec.holderIdentity !== this.identity) return;
    lease.spec = { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: microTime(Date.now()) };
    await this.withinDeadline(this.write(lease)).catch(() => undefined);
  }

  /** On-call reads why a leader stepped down (another holder, or an API server that did not answer) from this line. */
  private setLeading(value: boolean, why = ""): void {
    this.leading = value;
    if (value) this.o.log.info({ lease: this.o.name, identity: this.identity }, "became leader");
    else this.o.log[why === "shutting down" ? "info" : "warn"]({ lease: this.o.name, identity: this.identity, reason: why }, `stopped leading: ${why}`);
    if (value) this.o.onStartedLeading();
    else this.o.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const lease = await this.read();
    // The clock is read once the answer is in, as client-go does: a slow read must not count its own latency
    // as time the holder failed to renew.
    const now = monotonicMs();
    const stamp = microTime(Date.now());
    const mine: LeaseSpec = { holderIdentity: this.identity, leaseDurationSeconds: Math.ceil(this.durationMs / 1000), renewTime: stamp };
    if (!lease) return this.create({ ...mine, acquireTime: stamp, leaseTransitions: 0 });
    const record = JSON.stringify(lease.spec);
    if (this.observed?.record !== record) this.observed = { record, at: now };
    const holder = lease.spec.holderIdentity;
    const expired = !holder || now - this.observed.at > (lease.spec.leaseDurationSeconds ?? 0) * 1000;
    if (holder !== this.identity && !expired) { this.heldByAnother = true; this.otherHolder = holder; return false; }
    const takingOver = holder !== this.identity;
    lease.spec = takingOver
      ? { ...mine, acquireTime: stamp, leaseTransitions: (lease.spec.leaseTransitions ?? 0) + 1 }
      : { ...lease.spec, ...mine };
    await this.write(lease);
    if (takingOver) this.transitions++;
    this.observed = { record: JSON.stringify(lease.spec), at: now };
    return true;
  }

  private async read(): Promise<Lease | undefined> {
    try {
      return (await this.o.api.custom.getNamespacedCustomObject({ ...leases, namespace: this.o.namespace, name: this.o.name })) as Lease;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  private async create(spec: LeaseSpec): Promise<boolean> {
    const body = { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: this.o.name, namespace: this.o.namespace }, spec };
    try {
      await this.o.api.custom.createNamespacedCustomObject({ ...leases, namespace: this.o.namespace, body, fieldManager: this.o.api.fieldManager });
      return true;
    } catch (err) {
      if (isAlreadyExists(err)) return false;
      throw err;
    }
  }

  /** Update with the read resourceVersion: a racing replica gets 409 and stays follower. */
  private async write(lease: Lease): Promise<void> {
    await this.o.api.custom.replaceNamespacedCustomObject({
      ...leases, namespace: this.o.namespace, name: this.o.name, body: lease, fieldManager: this.o.api.fieldManager,
    });
  }
}
