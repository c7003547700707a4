import { describe, expect, it } from "vitest";
import { nextPassInMs } from "./next-pass.js";

const RESYNC = 60_000;

describe("nextPassInMs: the allocation loop's sleep", () => {
  it.each([
    ["nothing due: the resync period", [], RESYNC],
    ["nothing due (all undefined)", [undefined, undefined], RESYNC],
    ["the earliest due time", [4_000, undefined, 1_500], 1_500],
    ["a due time past already: 50 ms, not a hot loop", [-10_000], 50],
    ["a due time within 50 ms: 50 ms", [3], 50],
    ["a due time past the resync period: the resync period", [3_600_000], RESYNC],
    // 30 days: a setTimeout this long fires after 1 ms (TimeoutOverflowWarning), and the loop planned every few ms.
    ["a due time past Node's longest timer: the resync period", [30 * 86_400_000], RESYNC],
  ])("%s", (_what, due, expected) => {
    expect(nextPassInMs(due, RESYNC)).toBe(expected);
  });
});
