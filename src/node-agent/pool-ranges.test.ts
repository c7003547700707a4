import { describe, expect, it } from "vitest";
import { poolRanges } from "./records.js";

const pool = (name: string, v4: string[], v6: string[], valid?: "True" | "False") => ({
  metadata: { name }, spec: { ...(v4.length ? { ipv4: { cidrs: v4, nodeMaskSize: 24 } } : {}), ...(v6.length ? { ipv6: { cidrs: v6, nodeMaskSize: 64 } } : {}) },
  ...(valid ? { status: { conditions: [{ type: "Valid", status: valid }] } } : {}),
});

describe("poolRanges", () => {
  it("takes both families of every pool not declared invalid, including pools the controller has not judged yet", () => {
    expect(poolRanges([
      pool("default", ["10.244.0.0/16"], ["fd00:10:244::/56"], "True"),
      pool("new", ["10.250.0.0/16"], []),
      pool("broken", ["10.96.0.0/12"], [], "False"),
    ])).toEqual(["10.244.0.0/16", "10.250.0.0/16", "fd00:10:244::/56"]);
  });
});
