import { describe, expect, it } from "vitest";
import { controllerConfigSchema, loadConfig } from "../../src/config.js";
import { args, find, render, renderNotes } from "./helm.js";

// Values the README promises work (or are refused at render time, before any pod crash-loops).
describe("chart values", () => {
  it("takes more than two pool ranges: an upgrade that adds one grows the pool (the CRD allows 16 per family)", () => {
    const objs = render("pool.clusterCIDRs={10.244.0.0/16,fd00:10:244::/56,10.245.0.0/16}");
    const controller = loadConfig(controllerConfigSchema, args(find(objs, "Deployment", "podnet-controller")).slice(1), {});
    expect(controller["cluster-cidr"]).toEqual(["10.244.0.0/16", "fd00:10:244::/56", "10.245.0.0/16"]);
  });

  it.each([
    ["IPv4", "pool.clusterCIDRs={10.244.0.0/16}", "(/24 per node for IPv4)", "spec.ipv4.cidrs\n"],
    ["IPv6", "pool.clusterCIDRs={fd00:10:244::/56}", "(/64 per node for IPv6)", "spec.ipv6.cidrs\n"],
    ["dual-stack", "pool.clusterCIDRs={fd00:10:244::/56,10.244.0.0/16,10.245.0.0/16}", "(/24 per node for IPv4, /64 per node for IPv6)", "spec.ipv4.cidrs or spec.ipv6.cidrs\n"],
  ])("NOTES name node sizes and pool fields only for the families the values name: %s", (_case, set, perNode, poolField) => {
    const notes = renderNotes(set);
    expect(notes).toMatch(/^podnet \S+ is installed/);
    expect(notes).toContain(perNode);
    expect(notes).toContain(`grow a pool by appending a range to ${poolField}`);
  });

  it("NOTES with cleanup.enabled say only the cleanup DaemonSet runs", () => {
    const notes = renderNotes("cleanup.enabled=true");
    expect(notes).toContain("kubectl -n kube-system rollout status ds/podnet-cleanup");
    expect(notes).not.toContain("is installed in namespace kube-system.");
  });
});
