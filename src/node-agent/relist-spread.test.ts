import { describe, expect, it } from "vitest";
import { relistSpreadMs } from "./records.js";

// After an API server restart every agent hears 410 Gone at once: how long their relists are spread over.
describe("relistSpreadMs", () => {
  it.each([[0, 1_000], [50, 1_000], [300, 3_000], [5_000, 50_000], [20_000, 60_000]])("%i NodeCIDRs → up to %i ms", (records, ms) => {
    expect(relistSpreadMs(records)).toBe(ms);
  });
});
