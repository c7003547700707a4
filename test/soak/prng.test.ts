import { describe, expect, it } from "vitest";
import { seededPrng } from "./prng.js";

describe("seededPrng", () => {
  it("replays the same numbers for the same seed", () => {
    const a = seededPrng(42), b = seededPrng(42);
    expect(Array.from({ length: 5 }, () => a.next())).toEqual(Array.from({ length: 5 }, () => b.next()));
  });

  it("gives other numbers for another seed", () => {
    expect(seededPrng(1).next()).not.toBe(seededPrng(2).next());
  });

  it.each([1, 2, 7, 1000])("int(%i) stays within [0, n)", (n) => {
    const rng = seededPrng(n);
    for (let i = 0; i < 200; i++) {
      const x = rng.int(n);
      expect(Number.isInteger(x) && x >= 0 && x < n).toBe(true);
    }
  });

  it("refuses to pick from an empty list", () => {
    expect(() => seededPrng(3).pick([])).toThrow(/empty/);
  });
});
