import { describe, expect, it } from "vitest";
import type { AllocationAction } from "./plan-types.js";
import { laterFieldsAnswered, SchemaDrops, withinAllowance } from "./schema-drops.js";

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

describe("SchemaDrops: a later field's own writes per plan, by what the answers said", () => {
  it("one while unknown, none through a pause after a drop, one again after it, all once an answer kept the field", () => {
    const drops = new SchemaDrops(1_000);
    expect(drops.allowance(0)).toEqual({ nodeUID: 1, nodeIPsFrom: 1 }); // a new process (or leader) knows nothing yet
    expect(drops.observe({ kept: [], dropped: ["nodeUID"] }, 0)).toEqual(["nodeUID"]);
    expect(drops.observe({ kept: [], dropped: ["nodeUID"] }, 10)).toEqual([]); // reported once per pause
    expect(drops.allowance(500)).toEqual({ nodeUID: 0, nodeIPsFrom: 1 });
    expect(drops.isMissing("nodeUID")).toBe(true);
    expect(drops.allowance(1_000)).toEqual({ nodeUID: 1, nodeIPsFrom: 1 }); // the pause is over: one write tries again
    expect(drops.isMissing("nodeUID")).toBe(true); // still missing for the gauge until a write keeps it
    expect(drops.observe({ kept: [], dropped: ["nodeUID"] }, 1_001)).toEqual(["nodeUID"]);
    expect(drops.observe({ kept: ["nodeUID"], dropped: [] }, 1_500)).toEqual([]); // the CRD applied since
    expect([drops.allowance(1_500), drops.isMissing("nodeUID")]).toEqual([{ nodeUID: Infinity, nodeIPsFrom: 1 }, false]);
  });
});

describe("a plan's later-field writes of their own, cut to the allowance", () => {
  const stamp = (name: string): AllocationAction => ({ kind: "stampNodeUID", name, nodeUID: `uid-${name}` });
  const source = (name: string, nodeIPs = ["10.0.0.1"]): AllocationAction => ({ kind: "updateNodeIPs", name, nodeIPs, nodeIPsFrom: "InternalIP" });
  const specs: Record<string, { nodeIPs: string[] }> = { a: { nodeIPs: ["10.0.0.1"] }, b: { nodeIPs: ["10.0.0.1"] }, c: { nodeIPs: ["10.0.0.1"] } };
  const actions = [stamp("a"), stamp("b"), stamp("c"), source("a"), source("b"), source("c", ["10.0.0.2"])];
  it.each([
    ["not known yet (a new leader, a pause just over): one of each, and node IPs that changed go anyway", { nodeUID: 1, nodeIPsFrom: 1 },
      ["stampNodeUID:a", "updateNodeIPs:a", "updateNodeIPs:c"]],
    ["dropped by the CRD: none of its own, node IPs that changed go anyway", { nodeUID: 0, nodeIPsFrom: 0 }, ["updateNodeIPs:c"]],
    ["kept by an answer: all", { nodeUID: Infinity, nodeIPsFrom: Infinity }, actions.map((a) => `${a.kind}:${"name" in a ? a.name : ""}`)],
    ["no allowance: all", undefined, actions.map((a) => `${a.kind}:${"name" in a ? a.name : ""}`)],
  ] as const)("%s", (_case, allowance, expected) => {
    expect(withinAllowance(actions, allowance, (name) => specs[name]).map((a) => `${a.kind}:${"name" in a ? a.name : ""}`)).toEqual(expected);
  });

  it("counts only what goes out: a stamp waiting out its backoff, set aside before, leaves the one allowed to the next record", () => {
    const waiting = new Set(["a"]);
    const sendable = actions.filter((a) => !("name" in a && a.kind === "stampNodeUID" && waiting.has(a.name)));
    expect(withinAllowance(sendable, { nodeUID: 1 }, (name) => specs[name]).filter((a) => a.kind === "stampNodeUID").map((a) => "name" in a && a.name)).toEqual(["b"]);
  });
});
