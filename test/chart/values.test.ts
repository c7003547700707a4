import { describe, expect, it } from "vitest";
import { agentConfigSchema, controllerConfigSchema, loadConfig } from "../../src/config.js";
import { args, find, render, renderNotes, type Obj } from "./helm.js";

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

  it.each([
    ["a no-masquerade CIDR with host bits (every agent exits)", "nonMasqueradeCIDRs={192.168.0.0/16,10.0.0.1/8}", /nonMasqueradeCIDRs: 10\.0\.0\.1\/8 has host bits set/],
    ["an IPv6 one (bits inside a group)", "nonMasqueradeCIDRs={fd00:99:0:40::/57}", /nonMasqueradeCIDRs: fd00:99:0:40::\/57 has host bits set/],
    ["a pool range with host bits (the controller exits)", "pool.clusterCIDRs={fd00:10:244::1/56}", /pool\.clusterCIDRs: fd00:10:244::1\/56 has host bits set/],
    ["a service CIDR with host bits", "serviceCIDRs={10.96.0.1/12}", /serviceCIDRs: 10\.96\.0\.1\/12 has host bits set/],
    ["a resync period past Node's longest timer (every agent exits)", "resyncPeriod=600h", /resyncPeriod: 600h is longer than podnet takes/],
    ["a release cooldown past it (the controller exits)", "releaseCooldown=2147483648ms", /releaseCooldown: 2147483648ms is longer/],
    ["a duration too long to compute", "releaseCooldown=99999999999h", /releaseCooldown/],
  ])("refuses %s when rendering", (_case, set, message) => {
    expect(() => render(set)).toThrow(message);
  });

  it("takes the values next to those limits, as podnet does", () => {
    const objs = render("nonMasqueradeCIDRs={10.0.0.0/8,fd00:99:0:80::/58,::/0,192.0.2.7/32}", "pool.clusterCIDRs={10.244.0.0/16,fd00:10:244:ff00::/56}",
      "resyncPeriod=596h", "releaseCooldown=2147483647ms");
    const agent = loadConfig(agentConfigSchema, args(find(objs, "DaemonSet", "podnet-agent")).slice(1), { NODE_NAME: "n" });
    expect(agent["no-masquerade-cidrs"]).toEqual(["10.0.0.0/8", "fd00:99:0:80::/58", "::/0", "192.0.2.7/32"]);
    expect(agent["resync-period"]).toBe(596 * 3_600_000);
    const controller = loadConfig(controllerConfigSchema, args(find(objs, "Deployment", "podnet-controller")).slice(1), {});
    expect(controller["release-cooldown"]).toBe(2_147_483_647);
  });

  it("lets the controller tolerate a taint of the user's (every node tainted, e.g. AKS's CriticalAddonsOnly) and pulls every image with the given secrets", () => {
    type PodSpec = { tolerations: unknown[]; imagePullSecrets?: unknown[] };
    const pod = (o: Obj) => (o.spec as { template?: { spec: PodSpec } } | undefined)?.template?.spec;
    const defaults = render();
    expect(pod(find(defaults, "Deployment", "podnet-controller"))!.tolerations).toEqual([
      { key: "node-role.kubernetes.io/control-plane", operator: "Exists", effect: "NoSchedule" },
      { key: "node.kubernetes.io/not-ready", operator: "Exists" },
      { key: "node.kubernetes.io/network-unavailable", operator: "Exists", effect: "NoSchedule" },
    ]);
    expect(defaults.filter((o) => pod(o)?.imagePullSecrets !== undefined)).toEqual([]); // none unless asked
    const custom = render("controller.tolerations[0].key=CriticalAddonsOnly", "controller.tolerations[0].operator=Exists", "imagePullSecrets[0].name=regcred");
    expect(pod(find(custom, "Deployment", "podnet-controller"))!.tolerations).toEqual([{ key: "CriticalAddonsOnly", operator: "Exists" }]);
    for (const o of [find(custom, "Deployment", "podnet-controller"), find(custom, "DaemonSet", "podnet-agent"), find(render("cleanup.enabled=true", "imagePullSecrets[0].name=regcred"), "DaemonSet", "podnet-cleanup")]) {
      expect(pod(o)!.imagePullSecrets, o.metadata.name).toEqual([{ name: "regcred" }]);
    }
    expect(() => render("imagePullSecrets[0].secret=regcred")).toThrow(/imagePullSecrets/);
    expect(() => render("controller.tolerations[0].operator=Sometimes")).toThrow(/tolerations/);
  });
});
