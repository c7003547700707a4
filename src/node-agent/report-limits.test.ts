import { describe, expect, it } from "vitest";
import { nextCondition } from "../lib/conditions.js";
import { namesCapped } from "./report.js";

// Plugin types come from a file anyone with the CNI config directory writes; a condition message past the
// schema's 32,768 characters would have every status write of the record refused (422), for good.
describe("condition messages stay within the schema's limit", () => {
  it("namesCapped names at most five, each at most 64 characters, and counts the rest", () => {
    expect(namesCapped(["istio-cni"])).toBe("istio-cni");
    const many = Array.from({ length: 40 }, (_, i) => `${"x".repeat(1_000)}${i}`);
    const text = namesCapped(many);
    expect(text.length).toBeLessThan(400);
    expect(text.endsWith(" (+35 more)")).toBe(true);
    expect(text.split(", ")[0]).toBe(`${"x".repeat(61)}...`);
  });

  it("nextCondition cuts a message past 32,768 characters, and leaves shorter ones alone", () => {
    const long = nextCondition(undefined, { type: "CNIConfigured", status: "True", reason: "Written", message: "y".repeat(40_000) }, 1, new Date(0));
    expect(long.message).toHaveLength(32_768);
    expect(long.message.endsWith("...")).toBe(true);
    expect(nextCondition(undefined, { type: "X", status: "True", reason: "R", message: "short" }, 1, new Date(0)).message).toBe("short");
  });
});
