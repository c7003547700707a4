import { describe, expect, it } from "vitest";
import { forEachLimited } from "./k8s.js";

describe("forEachLimited", () => {
  it("keeps at most `limit` in flight and does every item", async () => {
    let inFlight = 0;
    let most = 0;
    const done: number[] = [];
    await forEachLimited([1, 2, 3, 4, 5, 6, 7], 3, async (i) => {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      done.push(i);
    });
    expect([most, done.sort()]).toEqual([3, [1, 2, 3, 4, 5, 6, 7]]);
  });

  it("after a failure starts no item, and throws the first error only once those in flight have ended", async () => {
    const started: number[] = [];
    let ended = 0;
    const run = forEachLimited([1, 2, 3, 4, 5, 6], 3, async (i) => {
      started.push(i);
      if (i === 1) throw new Error("first");
      await new Promise((r) => setTimeout(r, 20));
      ended++;
      if (i === 2) throw new Error("second");
    });
    await expect(run).rejects.toThrow("first");
    expect([started, ended]).toEqual([[1, 2, 3], 2]);
  });
});
