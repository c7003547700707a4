import { describe, expect, it } from "vitest";
import {
  chainedPlugins, cniVersionInEffect, conflistMatches, conflistText, ipamDataDirInEffect, rangesHeldByOthers, readPodnetConflist, renderConflist, runnableChained, withChainedPlugins,
} from "./cni-conflist.js";
import { agentConditions, IPAM_DATA_DIR_KEPT, type SyncOutcome } from "./report.js";

const podnetConflist = (dataDir?: string) => conflistText(renderConflist({ cniVersion: "1.0.0", podCidrs: ["10.244.1.0/24"], mtu: 1500, ...(dataDir ? { ipamDataDir: dataDir } : {}) }));

describe("ipamDataDirInEffect: a node's host-local state directory never changes under its pods", () => {
  const configured = "/run/cni-ipam-state";
  it.each([
    ["no conflist yet (a new node): the configured directory", undefined, { dataDir: configured }],
    ["podnet's conflist already names it", podnetConflist(configured), { dataDir: configured }],
    ["podnet's conflist names another: that one stays", podnetConflist("/var/lib/podnet-ipam"), { dataDir: "/var/lib/podnet-ipam", keptInsteadOf: configured }],
    ["podnet's conflist names none: host-local's default stays", podnetConflist(), { dataDir: "/var/lib/cni/networks", keptInsteadOf: configured }],
    ["a foreign network's file at our path: not podnet's leases", JSON.stringify({ name: "other", plugins: [{ ipam: { type: "host-local", dataDir: "/x" } }] }), { dataDir: configured }],
    ["podnet's name without host-local IPAM", JSON.stringify({ name: "podnet", plugins: [{ type: "ptp", ipam: { type: "dhcp" } }] }), { dataDir: configured }],
    ["half-written or hand-broken JSON", '{"name": "podnet", "plugins": [', { dataDir: configured }],
    ["JSON that is no conflist", "[1, 2]", { dataDir: configured }],
  ])("%s", (_name, existing, expected) => {
    expect(ipamDataDirInEffect(existing === undefined ? undefined : readPodnetConflist(existing), configured)).toEqual(expected);
  });
});

describe("readPodnetConflist", () => {
  it("reads back the directory and the MTU pods get from podnet's own conflist only", () => {
    expect(readPodnetConflist(podnetConflist("/run/x"))).toEqual({ dataDir: "/run/x", mtu: 1500, cniVersion: "1.0.0" });
    expect(readPodnetConflist(JSON.stringify({ name: "podnet", cniVersion: "1.0", plugins: [{ ipam: { type: "host-local" } }] }))).toEqual({ dataDir: "/var/lib/cni/networks" });
    expect(readPodnetConflist(JSON.stringify({ name: "other", plugins: [{ mtu: 9000, ipam: { type: "host-local" } }] }))).toBeUndefined();
    expect(readPodnetConflist("not json")).toBeUndefined();
  });
});

describe("CNIConfigured with a kept IPAM directory", () => {
  const outcome = (kept?: { dataDir: string; configured: string }): SyncOutcome => ({
    routes: { desired: 0, installed: 0, overlay: 0, overlayChanges: 0, added: 0, replaced: 0, deleted: 0, conflicts: [], unreachable: [] },
    cni: { path: "/etc/cni/net.d/10-podnet.conflist", changed: false, shadowedBy: [], missingPlugins: [], ...(kept ? { ipamDataDirKept: kept } : {}) },
    masquerade: { enabled: true }, sysctls: {}, rejected: [],
  });
  const cni = (o: SyncOutcome) => agentConditions(o).find((c) => c.type === "CNIConfigured")!;

  it("stays True (pods network) with a reason and message that name both directories and how to switch", () => {
    const c = cni(outcome({ dataDir: "/var/lib/cni/networks", configured: "/run/cni-ipam-state" }));
    expect(c.status).toBe("True");
    expect(c.reason).toBe(IPAM_DATA_DIR_KEPT);
    expect(c.message).toContain("stays in /var/lib/cni/networks, not the configured /run/cni-ipam-state");
    expect(c.message).toContain("drain the node");
    expect(agentConditions(outcome({ dataDir: "/a", configured: "/b" })).find((x) => x.type === "Ready")!.status).toBe("True");
  });

  it("says Written when nothing is kept", () => {
    expect(cni(outcome()).reason).toBe("Written");
  });
});

describe("rangesHeldByOthers: a node without a pod CIDR whose conflist hands out another node's range", () => {
  const dualStack = conflistText(renderConflist({ cniVersion: "1.0.0", podCidrs: ["10.244.1.0/24", "fd00:10:244:1::/64"], mtu: 1500 }));
  const route = (dst: string, nodeName = "n2") => ({ dst, nodeName });
  it.each([
    ["nobody holds the range (Released, in its cooldown)", dualStack, [route("10.244.2.0/24")], []],
    ["another node holds the same range", dualStack, [route("10.244.2.0/24"), route("10.244.1.0/24", "n9")],
      [{ subnet: "10.244.1.0/24", heldAs: "10.244.1.0/24", nodeName: "n9" }]],
    ["another node holds a slice of it (the pool's mask changed)", dualStack, [route("10.244.1.128/25", "n9")],
      [{ subnet: "10.244.1.0/24", heldAs: "10.244.1.128/25", nodeName: "n9" }]],
    ["another node holds a range around it", dualStack, [route("10.244.0.0/23", "n9")], [{ subnet: "10.244.1.0/24", heldAs: "10.244.0.0/23", nodeName: "n9" }]],
    ["the IPv6 range, spelled otherwise", dualStack, [route("fd00:10:244:1:0::/64", "n9")], [{ subnet: "fd00:10:244:1::/64", heldAs: "fd00:10:244:1:0::/64", nodeName: "n9" }]],
    ["a foreign network's file", JSON.stringify({ name: "other", plugins: [{ ipam: { type: "host-local", ranges: [[{ subnet: "10.244.1.0/24" }]] } }] }), [route("10.244.1.0/24")], []],
    ["broken JSON", '{"name": "podnet", "plugins": [', [route("10.244.1.0/24")], []],
    ["podnet's name, ranges not as host-local writes them", JSON.stringify({ name: "podnet", plugins: [{ ipam: { type: "host-local", ranges: [{ subnet: "10.244.1.0/24" }, [{ subnet: 7 }]] } }] }), [route("10.244.1.0/24")], []],
  ])("%s", (_name, text, routes, expected) => {
    expect(rangesHeldByOthers(text, routes)).toEqual(expected);
  });
});

describe("chainedPlugins / withChainedPlugins / conflistMatches: plugins chained after podnet's stay, podnet's own entries are restored", () => {
  const ours = renderConflist({ cniVersion: "1.0.0", podCidrs: ["10.244.1.0/24"], mtu: 1500 });
  const istio = { type: "istio-cni", log_level: "info", kubernetes: { kubeconfig: "/etc/cni/net.d/ZZZ-istio-cni-kubeconfig", cni_bin_dir: "/opt/cni/bin" } };
  const linkerd = { name: "linkerd-cni", type: "linkerd-cni", policy: { type: "k8s" } };
  const onDisk = (plugins: unknown[], extra: object = {}) => JSON.stringify({ ...ours, ...extra, plugins });
  it.each([
    ["no file", undefined, []],
    ["podnet's own file", conflistText(ours), []],
    ["Istio appended its plugin", onDisk([...ours.plugins, istio]), [istio]],
    ["Linkerd, then Istio", onDisk([...ours.plugins, linkerd, istio]), [linkerd, istio]],
    ["a hand edit to podnet's entries with Istio's after them", onDisk([{ ...ours.plugins[0], mtu: 9000 }, istio]), [istio]],
    ["a second portmap or a stray loopback (podnet's types: not kept)", onDisk([...ours.plugins, { type: "portmap" }, { type: "loopback" }, istio]), [istio]],
    ["a plugin before podnet's bridge (not chained after it)", onDisk([istio, ...ours.plugins]), []],
    ["entries that are no plugin", onDisk([...ours.plugins, "x", null, [], { type: "" }, { name: "no-type" }]), []],
    ["another network's file", onDisk([...ours.plugins, istio], { name: "k8s-pod-network" }), []],
    ["broken JSON", '{"name": "podnet", "plugins": [', []],
  ])("%s", (_name, text, expected) => {
    expect(chainedPlugins(text)).toEqual(expected);
  });

  it.each([
    ["every binary there: all kept, in order", [linkerd, istio], [], { kept: [linkerd, istio], dropped: [] }],
    ["Istio's binary gone (its installer killed before its cleanup): dropped, Linkerd's kept", [linkerd, istio], ["istio-cni"], { kept: [linkerd], dropped: [istio] }],
    ["all gone", [linkerd, istio], ["linkerd-cni", "istio-cni"], { kept: [], dropped: [linkerd, istio] }],
    ["nothing chained", [], ["istio-cni"], { kept: [], dropped: [] }],
  ])("runnableChained: %s", (_name, chained, missing, expected) => {
    expect(runnableChained(chained, missing)).toEqual(expected);
  });

  it("puts them after podnet's own plugins; the file then matches however its keys are ordered or indented", () => {
    const desired = withChainedPlugins(ours, [istio]);
    expect(desired.plugins.map((p) => p.type)).toEqual(["bridge", "portmap", "istio-cni"]);
    expect(withChainedPlugins(ours, [])).toBe(ours);
    // As Go's encoder writes it back: keys sorted, its own indentation.
    const sortKeys = (v: unknown): unknown => (Array.isArray(v) ? v.map(sortKeys)
      : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => [k, sortKeys(x)])) : v);
    const rewritten = JSON.stringify(sortKeys(desired), null, 4);
    expect(rewritten).not.toBe(conflistText(desired));
    expect(conflistMatches(rewritten, desired)).toBe(true);
    expect(conflistMatches(conflistText(ours), desired)).toBe(false);
    expect(conflistMatches(onDisk([{ ...ours.plugins[0], hairpinMode: false }, ours.plugins[1], istio]), desired)).toBe(false);
    expect(conflistMatches(undefined, desired)).toBe(false);
    expect(conflistMatches("{", desired)).toBe(false);
  });
});

describe("cniVersionInEffect: a failed VERSION probe never flips a working conflist's version", () => {
  const onDisk = (cniVersion: string) => readPodnetConflist(conflistText(renderConflist({ cniVersion, podCidrs: ["10.244.1.0/24"], mtu: 1500 })))?.cniVersion;
  it.each([
    ["the probe found one: it wins over the file's", "1.0.0", onDisk("0.4.0"), { version: "1.0.0" }],
    ["the probe found an older one", "0.4.0", onDisk("1.0.0"), { version: "0.4.0" }],
    ["no common version, the file says 0.4.0 (plugins older than 1.0): kept", undefined, onDisk("0.4.0"), { version: "0.4.0", fallback: "kept" }],
    ["no common version and no file: 1.0.0, as before", undefined, undefined, { version: "1.0.0", fallback: "default" }],
  ])("%s", (_name, probed, existing, expected) => {
    expect(cniVersionInEffect(probed, existing)).toEqual(expected);
  });
});

describe("renderConflist", () => {
  it("tells libcni to run only the plugins it lists (no <conf dir>/podnet/*.conf appended to the chain)", () => {
    const c = renderConflist({ cniVersion: "1.0.0", podCidrs: ["10.244.1.0/24"], mtu: 1500 });
    expect(JSON.parse(conflistText(c))).toMatchObject({ cniVersion: "1.0.0", name: "podnet", loadOnlyInlinedPlugins: true });
    expect(c.plugins.some((p) => "loadOnlyInlinedPlugins" in p)).toBe(false);
  });

  it("refuses two pod CIDRs of one family: each range's default route goes into the pod, and every ADD would fail", () => {
    expect(() => renderConflist({ cniVersion: "1.0.0", podCidrs: ["10.244.1.0/24", "10.244.2.0/24"], mtu: 1500 })).toThrow("one pod CIDR per family");
    expect(renderConflist({ cniVersion: "1.0.0", podCidrs: ["10.244.1.0/24", "fd00:10:244:1::/64"], mtu: 1500 }).plugins[0].ipam.routes).toEqual([{ dst: "0.0.0.0/0" }, { dst: "::/0" }]);
  });
});
