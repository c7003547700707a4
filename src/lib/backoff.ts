/** Exponential backoff with full jitter; reset after a success. Pure apart from Math.random. */
export class Backoff {
  private attempt = 0;

  constructor(private readonly baseMs = 200, private readonly maxMs = 30_000, private readonly random = Math.random) {}

  next(): number {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  reset(): void {
    this.attempt = 0;
  }
}

/**
 * A backoff's wait, but never shorter than the server asked (Retry-After with a 429 or 503): a retry sooner is
 * refused again and adds to the load the server is shedding. The server's word counts up to `maxMs`.
 */
export const waitAtLeast = (backoffMs: number, serverAskedMs: number | undefined, maxMs: number): number =>
  Math.max(backoffMs, Math.min(serverAskedMs ?? 0, maxMs));

/** Resolves after `ms`, or at once when `signal` aborts; the abort listener goes with the timer (long outages sleep often). */
export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) { resolve(); return; }
    const onAbort = () => { clearTimeout(timer); resolve(); };
    const timer = setTimeout(() => { signal?.removeEventListener("abort", onAbort); resolve(); }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/**
 * Per-key retry times after failures, like client-go's per-item rate limiter: a write the API server keeps
 * refusing (a 403, an admission policy's 422, a 503) is retried at 1, 2, 4 … s up to `maxMs`, or later when the
 * server's Retry-After says so, while every other key goes ahead at once. Times are on the monotonic clock (performance.now()), the default `now`: on the
 * wall clock, one stepped back an hour held a failed write for that hour. Tests pass `now` in.
 */
export class RetryGate {
  private readonly failing = new Map<string, { attempts: number; retryAt: number }>();

  constructor(private readonly baseMs = 1_000, private readonly maxMs = 60_000) {}

  /** Whether a key failed recently enough to wait. */
  waiting(key: string, now = performance.now()): boolean {
    return (this.failing.get(key)?.retryAt ?? 0) > now;
  }

  /** `retryAfterMs`: the server's Retry-After (api-errors' retryAfterMs), waited at least, up to `maxMs`. */
  failed(key: string, now = performance.now(), retryAfterMs?: number): void {
    const attempts = (this.failing.get(key)?.attempts ?? 0) + 1;
    const backoffMs = Math.min(this.maxMs, this.baseMs * 2 ** (attempts - 1));
    this.failing.set(key, { attempts, retryAt: now + waitAtLeast(backoffMs, retryAfterMs, this.maxMs) });
  }

  succeeded(key: string): void {
    this.failing.delete(key);
  }

  /** Forget keys no longer asked for (the node went, the plan changed), so the map stays bounded. */
  keepOnly(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const key of this.failing.keys()) if (!keep.has(key)) this.failing.delete(key);
  }

  /** When (on the clock of `now`) the earliest waiting key may be tried again; undefined when none waits. */
  nextRetryAt(): number | undefined {
    let next: number | undefined;
    for (const { retryAt } of this.failing.values()) next = next === undefined ? retryAt : Math.min(next, retryAt);
    return next;
  }

  get size(): number { return this.failing.size; }
}
