import { describe, expect, it } from "vitest";
import { isNewerVersion } from "./informer.js";

describe("isNewerVersion", () => {
  it.each([
    ["101", "100", true],
    ["100", "101", false],
    ["100", "100", false],
    ["1000", "999", true], // numeric, not lexical: "1000" < "999" as strings
    ["18446744073709551616", "18446744073709551615", true], // beyond 64 bits
    [undefined, "5", false],
    ["5", undefined, false],
    ["abc", "5", false], // not comparable: never treated as newer
  ])("%s newer than %s → %s", (a, b, expected) => {
    expect(isNewerVersion(a, b)).toBe(expected);
  });
});
