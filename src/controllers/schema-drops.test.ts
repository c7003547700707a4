import { describe, expect, it } from "vitest";
import { laterFieldsAnswered, SchemaDrops } from "./schema-drops.js";

describe("later NodeCIDR spec fields a write's answer kept or dropped", () => {
  it.each([
    ["a uid stamp kept", { nodeUID: "u1" }, { nodeUID: "u1", cidr: "10.244.0.0/24" }, { kept: ["nodeUID"], dropped: [] }],
    ["a uid stamp pruned by an older schema", { nodeUID: "u1" }, { cidr: "10.244.0.0/24" }, { kept: [], dropped: ["nodeUID"] }],
    ["a create: the uid kept, the IP source pruned", { nodeUID: "u1", nodeIPsFrom: "InternalIP", nodeIPs: ["10.0.0.1"] }, { nodeUID: "u1", nodeIPs: ["10.0.0.1"] }, { kept: ["nodeUID"], dropped: ["nodeIPsFrom"] }],
    ["a write of neither (node IPs only)", { nodeIPs: ["10.0.0.1"] }, { nodeIPs: ["10.0.0.1"] }, { kept: [], dropped: [] }],
    ["no spec in the answer", { nodeUID: "u1" }, undefined, { kept: [], dropped: ["nodeUID"] }],
  ] as const)("%s", (_case, sent, stored, expected) => {
    expect(laterFieldsAnswered(sent, stored)).toEqual(expected);
  });
});

describe("SchemaDrops: writes of a dropped field paused, reported once per pause", () => {
  it("reports a drop once, pauses the field, tries again after the pause, and clears once a write keeps it", () => {
    const drops = new SchemaDrops(1_000);
    expect(drops.observe({ kept: [], dropped: ["nodeUID"] }, 0)).toEqual(["nodeUID"]);
    expect(drops.observe({ kept: [], dropped: ["nodeUID"] }, 10)).toEqual([]); // another record of the same plan
    expect(drops.current(500)).toEqual(["nodeUID"]);
    expect(drops.isMissing("nodeUID")).toBe(true);
    expect(drops.current(1_000)).toEqual([]); // the pause is over: one write tries again
    expect(drops.isMissing("nodeUID")).toBe(true); // still missing for the gauge until a write keeps it
    expect(drops.observe({ kept: [], dropped: ["nodeUID"] }, 1_001)).toEqual(["nodeUID"]);
    expect(drops.observe({ kept: ["nodeUID"], dropped: [] }, 1_500)).toEqual([]); // the CRD applied since
    expect([drops.current(1_500), drops.isMissing("nodeUID")]).toEqual([[], false]);
  });
});
