import { describe, expect, it } from "vitest";
import { PassRetry } from "./pass-retry.js";

describe("PassRetry", () => {
  const upper = () => 1; // Backoff's jitter at its top: the full ceiling

  it("backs off from 1 s, doubling each time a retry fires, up to the resync period", () => {
    const retry = new PassRetry(5_000, upper);
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      retry.passed("undone", 0);
      delays.push(retry.dueAt!);
      expect(retry.fired()).toBe(true);
    }
    expect(delays).toEqual([1_000, 2_000, 4_000, 5_000, 5_000]);
  });

  it("does not grow with the passes in between (events), and a clean pass ends it", () => {
    const retry = new PassRetry(60_000, upper);
    retry.passed("undone", 0);
    for (let t = 10; t < 900; t += 10) retry.passed("undone", t); // event passes that still fall short
    expect(retry.dueAt).toBe(1_000);
    retry.passed("clean", 950);
    expect(retry.dueAt).toBeUndefined();
    retry.passed("undone", 2_000);
    expect(retry.dueAt).toBe(3_000); // from 1 s again
  });

  it("retries a pass that threw with an event pass, and undone work with a full one", () => {
    const retry = new PassRetry(60_000, upper);
    retry.passed("threw", 0);
    expect(retry.fired()).toBe(false);
    retry.passed("threw", 0);
    retry.passed("undone", 10);
    expect(retry.fired()).toBe(true);
  });
});
