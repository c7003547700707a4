import { describe, expect, it, vi } from "vitest";
import { STOPPING, type KubeApi } from "../lib/k8s.js";
import { silentLogger } from "../log.js";
import { clearNetworkUnavailablePatch, NetworkUnavailableClearer, nodeNetworkReady, RECHECK_RESYNCS, type WatchedNodeNetwork } from "./node-network-condition.js";
import { agentConditions, type SyncOutcome } from "./report.js";

const healthy = (): SyncOutcome => ({
  routes: { desired: 2, installed: 2, overlay: 0, overlayChanges: 0, added: 0, replaced: 0, deleted: 0, conflicts: [], unreachable: [] },
  cni: { path: "/etc/cni/net.d/10-podnet.conflist", changed: false, shadowedBy: [], missingPlugins: [] },
  masquerade: { enabled: true }, sysctls: {}, rejected: [],
});
const with_ = (change: (o: SyncOutcome) => void) => { const o = healthy(); change(o); return agentConditions(o); };

describe("nodeNetworkReady: whether this node can network pods", () => {
  it.each([
    ["everything in place", with_(() => {}), true],
    ["a peer behind a router with the overlay off", with_((o) => o.routes.unreachable.push("node-9 (192.168.9.9)")), true],
    ["a foreign route for a peer's prefix", with_((o) => o.routes.conflicts.push("10.244.9.0/24")), true],
    ["the VXLAN device unavailable while every peer is direct", with_((o) => (o.routes.overlayError = "A VXLAN device with the specified VNI already exists")), true],
    ["masquerade failing (pods still reach pods)", with_((o) => (o.masquerade.error = "nft: no such table")), true],
    ["route sync failing", with_((o) => (o.routes.error = "ip not found in PATH; install iproute2")), false],
    ["no conflist: the node has no pod CIDR yet", with_((o) => (o.cni.skipped = "no Allocated NodeCIDR for this node")), false],
    ["conflist not written", with_((o) => (o.cni.error = "/etc/cni/net.d does not exist")), false],
    ["CNI plugins missing", with_((o) => o.cni.missingPlugins.push("bridge")), false],
    ["another conflist sorts first", with_((o) => o.cni.shadowedBy.push("00-other.conflist")), false],
    ["Multus's config sorts first and hands pods to podnet's network", with_((o) => (o.cni.usedThrough = "00-multus.conf")), true],
    ["an old gateway that could not be taken off the bridge", with_((o) => (o.cni.bridgeError = "RTNETLINK answers: Operation not permitted")), false],
    ["another plugin's bridge holding this node's pod CIDR", with_((o) => (o.cni.podCidrHeldBy = { podCidrs: ["10.244.1.0/24"], holders: [{ device: "cni0", routes: [{ dst: "10.244.1.0/24" }], addresses: [] }] })), false],
    ["forwarding off", with_((o) => (o.sysctls.error = "net.ipv4.ip_forward stays 0")), false],
    ["br_netfilter off (pods network; same-node Services do not, and that is reported)", with_((o) => (o.sysctls.bridgeNetfilterError = "the br_netfilter module is not loaded")), true],
    ["strict reverse-path filtering left (only pods of nodes that see this one differently are cut off)", with_((o) => (o.sysctls.reversePathError = "reverse-path filtering is strict on podnet.vxlan")), true],
    ["forwarding off and reverse-path filtering strict", with_((o) => { o.sysctls.error = "net.ipv4.ip_forward stays 0"; o.sysctls.reversePathError = "strict"; }), false],
    ["forwarding and br_netfilter both off", with_((o) => { o.sysctls.error = "net.ipv4.ip_forward stays 0"; o.sysctls.bridgeNetfilterError = "not loaded"; }), false],
    ["first conflist held: the node's IPv6 NodeCIDR may still come (FamilyPending)", with_((o) => (o.cni.awaitingFamilies = [6])), false],
    ["running without IPv6 past the grace period (FamilyMissing): pods network with IPv4", with_((o) => (o.families = { type: "FamiliesComplete", status: "False", reason: "FamilyMissing", message: "no IPv6" })), true],
    ["no conditions at all", [], false],
  ] as const)("%s → %s", (_label, conditions, ready) => {
    expect(nodeNetworkReady([...conditions])).toBe(ready);
  });
});

it("podnet used through Multus's config is CNIConfigured=True, naming the file, and not CNIConfigShadowed", () => {
  const conditions = with_((o) => (o.cni.usedThrough = "00-multus.conf"));
  expect(conditions.find((c) => c.type === "CNIConfigured")).toMatchObject({ status: "True", reason: "Written", message: "/etc/cni/net.d/10-podnet.conflist in place, used through 00-multus.conf" });
  expect(conditions.find((c) => c.type === "CNIConfigShadowed")).toMatchObject({ status: "False", reason: "UsedThrough" });
  expect(conditions.find((c) => c.type === "Ready")!.status).toBe("True");
});

it("podnet used through a thin Multus config holding its own copy says that podnet's changes wait for Multus, with a pod CIDR or without", () => {
  const cni = with_((o) => { o.cni.usedThrough = "00-multus.conf"; o.cni.usedThroughCopy = true; }).find((c) => c.type === "CNIConfigured")!;
  expect(cni).toMatchObject({ status: "True", reason: "Written",
    message: "/etc/cni/net.d/10-podnet.conflist in place, used through 00-multus.conf, which holds its own copy: changes reach pods only when Multus rewrites it" });
  const noCidr = with_((o) => { o.cni.usedThrough = "00-multus.conf"; o.cni.usedThroughCopy = true; o.cni.skipped = "no NodeCIDR is allocated to this node yet"; })
    .find((c) => c.type === "CNIConfigured")!;
  expect(noCidr).toMatchObject({ status: "False", reason: "NoPodCIDR",
    message: "no NodeCIDR is allocated to this node yet; 00-multus.conf holds its own copy of podnet's conflist, which the runtime goes on using until Multus rewrites it" });
});

it("a second pod CIDR of one family is named in CNIConfigured, which stays True (pods network from the first)", () => {
  const cni = with_((o) => (o.cni.unusedCidrs = ["10.244.9.0/24"])).find((c) => c.type === "CNIConfigured")!;
  expect(cni).toMatchObject({ status: "True", reason: "Written" });
  expect(cni.message).toContain("10.244.9.0/24 not handed out: a second pod CIDR of its family for this node");
});

it("an old gateway stuck on the bridge is reported as CNIConfigured=False, StaleBridgeAddress", () => {
  const cni = with_((o) => (o.cni.bridgeError = "RTNETLINK answers: Operation not permitted")).find((c) => c.type === "CNIConfigured")!;
  expect(cni).toMatchObject({ status: "False", reason: "StaleBridgeAddress" });
  expect(cni.message).toContain("new pods will not start");
});

it("another plugin's bridge holding this node's pod CIDR is CNIConfigured=False, PodCIDRHeldByDevice, naming the device; Ready gives that reason", () => {
  const conditions = with_((o) => (o.cni.podCidrHeldBy = { podCidrs: ["10.244.1.0/24"], holders: [{ device: "cni0", kind: "bridge", routes: [{ dst: "10.244.1.0/24" }], addresses: ["10.244.1.1/24"] }] }));
  const cni = conditions.find((c) => c.type === "CNIConfigured")!;
  expect(cni).toMatchObject({ status: "False", reason: "PodCIDRHeldByDevice" });
  expect(cni.message).toContain("by cni0 (route 10.244.1.0/24, address 10.244.1.1/24)");
  expect(cni.message).toContain("ip link delete cni0");
  expect(conditions.find((c) => c.type === "Ready")).toMatchObject({ status: "False", reason: "PodCIDRHeldByDevice" });
});

it("br_netfilter off is SysctlsReady=False, BridgeNetfilterOff, and keeps the NodeCIDR from Ready", () => {
  const conditions = with_((o) => (o.sysctls.bridgeNetfilterError = "the br_netfilter module is not loaded"));
  expect(conditions.find((c) => c.type === "SysctlsReady")).toMatchObject({ status: "False", reason: "BridgeNetfilterOff" });
  expect(conditions.find((c) => c.type === "Ready")).toMatchObject({ status: "False", reason: "BridgeNetfilterOff" });
});

it("reverse-path filtering left strict is SysctlsReady=False, ReversePathFilterStrict, with its message; br_netfilter off is named first", () => {
  const conditions = with_((o) => (o.sysctls.reversePathError = "reverse-path filtering is strict on podnet.vxlan and could not be made loose"));
  expect(conditions.find((c) => c.type === "SysctlsReady")).toMatchObject({ status: "False", reason: "ReversePathFilterStrict", message: "reverse-path filtering is strict on podnet.vxlan and could not be made loose" });
  expect(conditions.find((c) => c.type === "Ready")).toMatchObject({ status: "False", reason: "ReversePathFilterStrict" });
  const both = with_((o) => { o.sysctls.reversePathError = "strict"; o.sysctls.bridgeNetfilterError = "not loaded"; });
  expect(both.find((c) => c.type === "SysctlsReady")).toMatchObject({ reason: "BridgeNetfilterOff" });
});

describe("clearNetworkUnavailablePatch", () => {
  const now = new Date("2026-11-25T10:00:00.123Z");
  const cond = (status: string, reason = "NoRouteCreated") => ({ type: "NetworkUnavailable", status, reason, message: "", lastTransitionTime: new Date(0) });

  it.each([
    ["absent (no cloud route controller)", undefined],
    ["True (the cloud marks new nodes)", [cond("True")]],
    ["Unknown", [cond("Unknown")]],
  ] as const)("writes False when the condition is %s, as one condition merged by type", (_label, current) => {
    expect(clearNetworkUnavailablePatch(current ? [...current] : undefined, now)).toEqual({ status: { conditions: [{
      type: "NetworkUnavailable", status: "False", reason: "PodnetIsUp", message: expect.stringContaining("CNI config"),
      lastTransitionTime: "2026-11-25T10:00:00Z", lastHeartbeatTime: "2026-11-25T10:00:00Z",
    }] } });
  });

  it("writes nothing when it is already False, whoever cleared it, and ignores kubelet's other conditions", () => {
    expect(clearNetworkUnavailablePatch([cond("False", "RouteCreated")], now)).toBeUndefined();
    expect(clearNetworkUnavailablePatch([{ type: "Ready", status: "False" }, cond("False", "PodnetIsUp")], now)).toBeUndefined();
    expect(clearNetworkUnavailablePatch([{ type: "Ready", status: "False" }], now)).toBeDefined();
  });
});

describe("NetworkUnavailableClearer: a call cut off", () => {
  // The Node read fails as client-node's fetch does when the call's signal aborts.
  const api = { core: { readNode: async () => { throw new DOMException("The operation was aborted.", "AbortError"); } } } as unknown as KubeApi;
  const ready = with_(() => {});
  const aborted = (reason?: unknown) => () => { const c = new AbortController(); c.abort(reason); return c.signal; };

  it("by the agent's stop is no failure to count; at its deadline it is", async () => {
    let errors = 0;
    const clearer = new NetworkUnavailableClearer(api, "n1", silentLogger(), 30_000, () => errors++);
    await clearer.afterPass(ready, aborted(STOPPING));
    expect(errors).toBe(0);
    await clearer.afterPass(ready, aborted());
    expect(errors).toBe(1);
  });
});

describe("NetworkUnavailableClearer: the look after a failed one", () => {
  it("comes a retry period later, although the wall clock stepped back an hour meanwhile", async () => {
    let reads = 0;
    const api = { core: { readNode: async () => { reads++; throw Object.assign(new Error("HTTP 503"), { code: 503 }); } } } as unknown as KubeApi;
    const clearer = new NetworkUnavailableClearer(api, "n1", silentLogger(), 50, () => undefined);
    const ready = with_(() => {});
    await clearer.afterPass(ready);
    const realNow = Date.now.bind(Date);
    const stepped = vi.spyOn(Date, "now").mockImplementation(() => realNow() - 3_600_000);
    try {
      await clearer.afterPass(ready);
      expect(reads).toBe(1); // within the retry period
      await new Promise((r) => setTimeout(r, 80));
      await clearer.afterPass(ready);
      expect(reads).toBe(2);
    } finally { stepped.mockRestore(); }
  });
});

describe("NetworkUnavailableClearer: from the watch of its Node", () => {
  // A fake API only for what real parts cannot order on demand: the watch still showing the Node from before
  // this agent's own clear. The watched path itself runs on the real apiserver (rung 3 agent-network).
  const counting = () => {
    const calls = { reads: 0, patches: 0 };
    const api = { fieldManager: "podnet-agent", core: {
      // The Node as the API server has it: NetworkUnavailable False once a patch went through.
      readNode: async () => { calls.reads++; return calls.patches ? { status: { conditions: [{ type: "NetworkUnavailable", status: "False" }] } } : {}; },
      patchNodeStatus: async () => { calls.patches++; return { metadata: { resourceVersion: "100" } }; },
    } } as unknown as KubeApi;
    return { api, calls };
  };
  const ready = with_(() => {});

  it("reads nothing, and writes only when the watched condition is not False", async () => {
    const { api, calls } = counting();
    let view: WatchedNodeNetwork = { resourceVersion: "90", networkUnavailable: "False" };
    const clearer = new NetworkUnavailableClearer(api, "n1", silentLogger(), 30_000, () => undefined, () => view);
    await clearer.afterPass(ready);
    expect([calls, clearer.cleared]).toEqual([{ reads: 0, patches: 0 }, true]);
    view = "absent";
    await clearer.afterPass(ready);
    expect([calls, clearer.cleared]).toEqual([{ reads: 0, patches: 0 }, false]);
    view = { resourceVersion: "95", networkUnavailable: "True" };
    await clearer.afterPass(ready);
    expect([calls, clearer.cleared, clearer.reads]).toEqual([{ reads: 0, patches: 1 }, true, 0]);
  });

  it("takes a view older than its own clear for the state before it; a later one that sets it again is cleared at once", async () => {
    const { api, calls } = counting();
    let view: WatchedNodeNetwork = { resourceVersion: "95", networkUnavailable: "True" };
    const clearer = new NetworkUnavailableClearer(api, "n1", silentLogger(), 30_000, () => undefined, () => view);
    await clearer.afterPass(ready); // writes; the patch answers version 100
    await clearer.afterPass(ready); // the watch still shows 95: no second write
    expect(calls.patches).toBe(1);
    view = { resourceVersion: "100", networkUnavailable: "False" };
    await clearer.afterPass(ready);
    view = { resourceVersion: "130", networkUnavailable: "True" }; // a cloud sets it again
    await clearer.afterPass(ready);
    expect(calls).toEqual({ reads: 0, patches: 2 });
  });

  it("after a 404 (the Node deleted as the patch went out), clears its next registration at once", async () => {
    let gone = true;
    const calls = { patches: 0 };
    const api = { fieldManager: "podnet-agent", core: { patchNodeStatus: async () => {
      calls.patches++;
      if (gone) throw Object.assign(new Error("nodes \"n1\" not found"), { code: 404 });
      return { metadata: { resourceVersion: "120" } };
    } } } as unknown as KubeApi;
    const watch: { view?: WatchedNodeNetwork } = { view: { resourceVersion: "95", networkUnavailable: "True" } };
    const clearer = new NetworkUnavailableClearer(api, "n1", silentLogger(), 30_000, () => undefined, () => watch.view);
    await clearer.afterPass(ready);
    gone = false;
    watch.view = { resourceVersion: "110", networkUnavailable: "True" }; // registered again: the watch's add wakes a pass
    await clearer.afterPass(ready);
    expect([calls.patches, clearer.cleared]).toEqual([2, true]);
  });

  it("once the watch has listed, acts on it at once after a clear made by reading", async () => {
    const { api, calls } = counting();
    const watch: { view?: WatchedNodeNetwork } = {};
    const clearer = new NetworkUnavailableClearer(api, "n1", silentLogger(), 30_000, () => undefined, () => watch.view);
    await clearer.afterPass(ready); // not listed: read, write (version 100)
    watch.view = { resourceVersion: "140", networkUnavailable: "True" }; // listed, and set again since
    await clearer.afterPass(ready);
    expect(calls).toEqual({ reads: 1, patches: 2 });
  });

  it("holds writes back for the retry period after a failed one", async () => {
    const calls = { patches: 0 };
    const api = { fieldManager: "podnet-agent", core: { patchNodeStatus: async () => { calls.patches++; throw Object.assign(new Error("HTTP 503"), { code: 503 }); } } } as unknown as KubeApi;
    let errors = 0;
    const clearer = new NetworkUnavailableClearer(api, "n1", silentLogger(), 30_000, () => errors++, () => ({ resourceVersion: "95", networkUnavailable: "True" }));
    await clearer.afterPass(ready);
    await clearer.afterPass(ready);
    expect([calls.patches, errors, clearer.cleared]).toEqual([1, 1, false]);
  });

  it("reads the Node while the watch has not listed, or its versions do not compare (again RECHECK_RESYNCS resyncs after a clear)", async () => {
    const { api, calls } = counting();
    const watch: { view?: WatchedNodeNetwork } = {};
    const clearer = new NetworkUnavailableClearer(api, "n1", silentLogger(), 5, () => undefined, () => watch.view);
    await clearer.afterPass(ready); // not listed: read, write (version 100)
    watch.view = { resourceVersion: "opaque", networkUnavailable: "True" };
    await clearer.afterPass(ready); // not comparable with 100: read, but not before RECHECK_RESYNCS × 5 ms
    expect(calls).toEqual({ reads: 1, patches: 1 });
    await new Promise((r) => setTimeout(r, 5 * RECHECK_RESYNCS + 20));
    await clearer.afterPass(ready);
    expect(calls).toEqual({ reads: 2, patches: 1 }); // read: False already, nothing to write
  });
});
