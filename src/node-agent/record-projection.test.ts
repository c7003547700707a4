import { describe, expect, it } from "vitest";
import { observed, recordProjection } from "./records.js";

const record = (node: string) => ({
  apiVersion: "podnet.io/v1alpha1", kind: "NodeCIDR",
  metadata: { name: `rec-${node}`, uid: "u", resourceVersion: "7", generation: 1, labels: { "podnet.io/node": node }, managedFields: [{ manager: "x" }] },
  spec: { nodeName: node, cidr: "10.244.1.0/24", family: "IPv4" as const, pool: "default", nodeIPs: ["192.168.0.2"] },
  status: { phase: "Allocated" as const, conditions: [{ type: "RoutesProgrammed", status: "True" as const, reason: "Programmed", message: "49 routes", lastTransitionTime: "2026-01-01T00:00:00Z" }] },
});

describe("recordProjection", () => {
  const project = recordProjection("me");
  it("keeps another node's record as routing inputs: spec and phase, not its agent's conditions", () => {
    const other = project(record("other"));
    expect(other.spec).toEqual(record("other").spec);
    expect(other.status).toEqual({ phase: "Allocated" });
    expect(other.metadata).toEqual({ name: "rec-other", uid: "u", resourceVersion: "7", generation: 1 });
  });

  it("keeps this node's own record whole (its conditions are the base of the next status write), minus managedFields", () => {
    const own = project(record("me"));
    expect(own.status?.conditions).toHaveLength(1);
    expect(own.metadata?.labels).toEqual({ "podnet.io/node": "me" });
    expect(own.metadata).not.toHaveProperty("managedFields");
  });
});

describe("observed", () => {
  it("reads node IPs in the kernel's spelling, so a route through one compares equal to what ip -json shows", () => {
    const r = record("other");
    r.spec.nodeIPs = ["FD00:0082:0:0::50", "192.168.0.2", "not-an-ip"];
    expect(observed(r).nodeIPs).toEqual(["fd00:82::50", "192.168.0.2", "not-an-ip"]);
    const canonical = record("other");
    expect(observed(canonical).nodeIPs).toBe(canonical.spec.nodeIPs); // no copy when nothing changes
  });

  it("reads this node's record's creation time (which of two CIDRs of one family it keeps); another node's has none", () => {
    const own = { ...record("me"), metadata: { ...record("me").metadata, creationTimestamp: "2026-01-01T00:00:05Z" as unknown as Date } };
    expect(observed(recordProjection("me")(own)).created).toBe(Date.parse("2026-01-01T00:00:05Z"));
    expect(observed(recordProjection("me")({ ...own, spec: { ...own.spec, nodeName: "other" } }))).not.toHaveProperty("created");
  });
});
