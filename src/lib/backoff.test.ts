import { getEventListeners } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import { RetryGate, sleep } from "./backoff.js";

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
