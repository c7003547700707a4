import { getEventListeners } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import { RetryGate, sleep, waitAtLeast } from "./backoff.js";

describe("RetryGate: per-key backoff after failures", () => {
  afterEach(() => { vi.useRealTimers(); });

  it("makes a failing key wait 1, 2, 4 … s up to the cap, and lets other keys go at once", () => {
    const gate = new RetryGate(1_000, 4_000);
    const waits: number[] = [];
    let now = 0;
    for (let i = 0; i < 5; i++) {
      gate.failed("create:hot/4", now);
      const retryAt = gate.nextRetryAt()!;
      waits.push(retryAt - now);
      expect(gate.waiting("create:hot/4", retryAt - 1)).toBe(true);
      expect(gate.waiting("create:hot/4", retryAt)).toBe(false);
      expect(gate.waiting("create:cool/4", now)).toBe(false);
      now = retryAt;
    }
    expect(waits).toEqual([1_000, 2_000, 4_000, 4_000, 4_000]);
  });

  it("times waits on the monotonic clock by default: a wall clock stepped back an hour holds nothing longer", () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1, 12), toFake: ["Date", "performance"] });
    const gate = new RetryGate(1_000, 60_000);
    gate.failed("create:x1/4");
    vi.setSystemTime(Date.UTC(2026, 0, 1, 11)); // the wall clock alone steps back
    expect(gate.waiting("create:x1/4")).toBe(true);
    vi.advanceTimersByTime(1_000);
    expect(gate.waiting("create:x1/4")).toBe(false);
  });

  it.each([
    // attempts so far, the server's Retry-After (ms), expected wait (ms); base 1 s, cap 60 s
    [0, undefined, 1_000],
    [0, 5_000, 5_000], // a throttled first failure waits what the server asked, not 1 s
    [3, 5_000, 8_000], // the backoff is longer already: it stands
    [0, 500, 1_000], // never shorter than the backoff
    [0, 3_600_000, 60_000], // the server's word counts up to the cap
  ])("after %i failures and Retry-After %s ms the key waits %i ms", (before, retryAfterMs, expected) => {
    const gate = new RetryGate(1_000, 60_000);
    for (let i = 0; i < before; i++) gate.failed("k", 0);
    gate.failed("k", 0, retryAfterMs);
    expect(gate.nextRetryAt()).toBe(expected);
  });

  it("forgets a key on success and keys no longer planned", () => {
    const gate = new RetryGate();
    gate.failed("a", 0);
    gate.failed("b", 0);
    gate.succeeded("a");
    expect(gate.waiting("a", 1)).toBe(false);
    gate.keepOnly(["a"]);
    expect(gate.size).toBe(0);
    expect(gate.nextRetryAt()).toBeUndefined();
    gate.failed("a", 10);
    expect(gate.nextRetryAt()).toBe(1_010); // a fresh failure starts from the base again
  });
});

describe("waitAtLeast: a backoff's wait, never shorter than the server's Retry-After", () => {
  it.each([
    [150, undefined, 30_000, 150],
    [150, 1_000, 30_000, 1_000], // an informer's first relist after a 429: 1 s, not 100-200 ms
    [4_000, 1_000, 30_000, 4_000],
    [150, 120_000, 30_000, 30_000],
    [45_000, 120_000, 30_000, 45_000], // a cap on the server's word, not on the backoff
  ])("backoff %i, Retry-After %s, cap %i → %i", (backoffMs, serverAskedMs, maxMs, expected) => {
    expect(waitAtLeast(backoffMs, serverAskedMs, maxMs)).toBe(expected);
  });
});

describe("sleep", () => {
  it("leaves no abort listener behind once its timer fires (long outages sleep many times on one signal)", async () => {
    const abort = new AbortController();
    for (let i = 0; i < 20; i++) await sleep(1, abort.signal);
    expect(getEventListeners(abort.signal, "abort")).toHaveLength(0);
  });

  it("ends at once when its signal aborts, also one aborted before", async () => {
    const abort = new AbortController();
    const t0 = performance.now();
    const pending = sleep(60_000, abort.signal);
    abort.abort();
    await pending;
    await sleep(60_000, abort.signal);
    expect(performance.now() - t0).toBeLessThan(1_000);
  });
});
