import { describe, expect, it } from "vitest";
import { AllocationController } from "../../src/controllers/controller.js";
import { applyActions } from "../../src/controllers/act.js";
import { controllerConfigSchema } from "../../src/config.js";
import { RetryGate } from "../../src/lib/backoff.js";
import { EventRecorder } from "../../src/lib/events.js";
import { silentLogger } from "../../src/log.js";
import { mergePatch, podnetResource } from "../../src/lib/k8s.js";
import { cidrObjectName } from "../../src/lib/cidr.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, createNodes, deleteNodes, eventsFor, invariantViolations, listNodeCidrs, nodePodCidrViolations } from "../harness/cluster-objects.js";
import { startController, stopAndEmptyAfterEach, until } from "../harness/controller-fixture.js";
import { POD_CIDR_CONDITION } from "../../src/controllers/plan-node-condition.js";
import { putNodeCidr } from "../harness/agent-fixture.js";

// Who gets a range when claims meet: a Node's own preset podCIDRs, a live allocation, a stray hand-made record.
const fx = useControlPlane();
const nodecidrs = podnetResource("nodecidrs");
let controller: AllocationController | undefined;
stopAndEmptyAfterEach(fx, () => controller, () => { controller = undefined; });

const podCidrsOf = async (node: string) => (await fx.api().core.readNode({ name: node })).spec?.podCIDRs ?? [];
const cidrOf = async (node: string) => allocated(await listNodeCidrs(fx.api())).find((r) => r.spec.nodeName === node)?.spec.cidr;

describe("controller on the real API server: claims on one range", () => {
  it("a Node with a preset podCIDR keeps it although a Node whose name sorts first joined without one", async () => {
    // Both exist before the controller starts (an install on a running cluster, or the CRDs recreated).
    await createNodes(fx.api(), [{ name: "a-new", ip: "192.168.61.1" }, { name: "b-old", ip: "192.168.61.2", podCIDRs: ["10.244.0.0/24"] }]);
    controller = await startController(fx);
    expect(await until("b-old adopted", () => cidrOf("b-old"))).toBe("10.244.0.0/24");
    expect(await until("a-new allocated", () => cidrOf("a-new"))).toBe("10.244.1.0/24");
    expect(await until("a-new's podCIDRs", async () => ((await podCidrsOf("a-new")).length ? podCidrsOf("a-new") : undefined))).toEqual(["10.244.1.0/24"]);
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
    expect(await nodePodCidrViolations(fx.api())).toEqual([]);
  });

  it("a range a Node names but podnet cannot adopt (a /23 in a /24 pool) is reported and never handed to another Node", async () => {
    await createNodes(fx.api(), [{ name: "wide", ip: "192.168.64.1", podCIDRs: ["10.244.0.0/23"] }]);
    controller = await startController(fx);
    await createNodes(fx.api(), [{ name: "n-1", ip: "192.168.64.2" }, { name: "n-2", ip: "192.168.64.3" }]);
    // Which newcomer the controller sees first varies; neither gets a slice of the /23.
    const newcomers = [await until("n-1 allocated", () => cidrOf("n-1")), await until("n-2 allocated", () => cidrOf("n-2"))];
    expect(newcomers.sort()).toEqual(["10.244.2.0/24", "10.244.3.0/24"]);
    const reported = await until("wide reported", async () => (await eventsFor(fx.api(), "Node", "wide")).find((e) => e.reason === "PodCIDROutsidePool"));
    expect(reported.message).toContain("10.244.0.0/23");
    expect(await nodePodCidrViolations(fx.api())).toEqual([]);
  });

  it("a Node's own /64 in a pool of /96 slices (2^32 of them) keeps every one of them from other Nodes", async () => {
    // kube-controller-manager's IPv6 default is a /64 per node; a pool cut finer must route around all of it.
    await createNodes(fx.api(), [{ name: "k-1", ip: "fd00:1::1", podCIDRs: ["fd00:10:244::/64"] }]);
    controller = await startController(fx, { "cluster-cidr": "fd00:10:244::/56", "node-mask-v6": "96", "service-cidr": "fd00:96::/112" });
    await createNodes(fx.api(), [{ name: "k-2", ip: "fd00:1::2" }]);
    expect(await until("k-2 allocated", () => cidrOf("k-2"))).toBe("fd00:10:244:1::/96");
    expect(await nodePodCidrViolations(fx.api())).toEqual([]);
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
  });

  it("a podCIDRs fill planned for a Node that has been registered again since (another uid) changes nothing", async () => {
    await createNodes(fx.api(), [{ name: "reborn", ip: "192.168.65.1" }]);
    const uid = (await fx.api().core.readNode({ name: "reborn" })).metadata!.uid!;
    // The act shell on its own, with the plan's action: no controller races it here.
    const api = fx.api("podnet-controller");
    const shell = new AllocationController(api, controllerConfigSchema.parse({ "metrics-address": "127.0.0.1:0", "leader-elect": "false" }), silentLogger());
    const ctx = { api, nodes: shell.nodes, records: shell.records, recorder: new EventRecorder(api, "test", silentLogger()), metrics: shell.metrics,
      log: silentLogger(), planned: new Map(), leading: () => true, retry: new RetryGate() };
    const fill = (nodeUID: string) => applyActions(ctx, [{ kind: "setNodePodCIDRs", node: "reborn", nodeUID, cidrs: ["10.244.9.0/24"] }]);
    await fill("uid-of-the-node-that-was-deleted");
    expect((await fx.api().core.readNode({ name: "reborn" })).spec?.podCIDRs).toBeUndefined();
    expect((await shell.metrics.errors.get()).values.reduce((n, v) => n + v.value, 0)).toBe(0); // skipped, not failed
    await fill(uid);
    expect((await fx.api().core.readNode({ name: "reborn" })).spec?.podCIDRs).toEqual(["10.244.9.0/24"]);
  });

  it("a create that meets a record older than the cache has seen of it (resourceVersions went back: etcd restored) fails and backs off", async () => {
    await createNodes(fx.api(), [{ name: "rewound", ip: "192.168.66.1" }]);
    const existing = await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: {
      apiVersion: "podnet.io/v1alpha1", kind: "NodeCIDR", metadata: { name: "10-244-7-0-24" },
      spec: { nodeName: "other", cidr: "10.244.7.0/24", family: "IPv4", pool: "default", nodeIPs: [] },
    } }) as { metadata: { resourceVersion: string } };
    const api = fx.api("podnet-controller");
    const shell = new AllocationController(api, controllerConfigSchema.parse({ "metrics-address": "127.0.0.1:0", "leader-elect": "false" }), silentLogger());
    const ctx = { api, nodes: shell.nodes, records: shell.records, recorder: new EventRecorder(api, "test", silentLogger()), metrics: shell.metrics,
      log: silentLogger(), planned: new Map(), leading: () => true, retry: new RetryGate() };
    // What a controller holds after etcd went back to a snapshot: it saw this name deleted at a later version,
    // and its watch, resumed at a version the server has not reached, brings nothing. (The informer's own
    // tombstone, set by hand: restoring etcd under a running test costs more than it shows.)
    const later = String(Number(existing.metadata.resourceVersion) + 1_000_000);
    (shell.records as unknown as { bury(name: string, rv: string): void }).bury("10-244-7-0-24", later);
    const create = (cidr = "10.244.7.0/24") => applyActions(ctx, [{ kind: "create", node: "rewound", nodeUID: "u", cidr, family: 4, pool: "default", nodeIPs: [], adopted: false }]);
    const count = async (metric: typeof shell.metrics.errors) => (await metric.get()).values.reduce((n, v) => n + v.value, 0);
    // The common case first: the watch brought the holder between the plan and the GET. Not an error.
    const held = await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: {
      apiVersion: "podnet.io/v1alpha1", kind: "NodeCIDR", metadata: { name: "10-244-8-0-24" },
      spec: { nodeName: "other", cidr: "10.244.8.0/24", family: "IPv4", pool: "default", nodeIPs: [] },
    } });
    shell.records.assume(held as never);
    await create("10.244.8.0/24");
    expect(await count(shell.metrics.errors)).toBe(0);
    await create();
    expect(await count(shell.metrics.errors)).toBe(1);
    await create(); // the next plan, a moment later: waiting its backoff, not sent again
    expect(await count(shell.metrics.apiWrites)).toBe(2);
  });

  it("records from before podnet kept a Node's uid learn it; one older than its Node object (registered again since) is released", async () => {
    await createNodes(fx.api(), [{ name: "legacy-1", ip: "192.168.67.1" }, { name: "legacy-2", ip: "192.168.67.2" }]);
    // As a podnet of before 75247ec left them: no spec.nodeUID.
    await putNodeCidr(fx.api(), "legacy-1", "10.244.5.0/24", ["192.168.67.1"]);
    await putNodeCidr(fx.api(), "legacy-2", "10.244.6.0/24", ["192.168.67.2"]);
    await new Promise((r) => setTimeout(r, 3_100)); // past the 2 s allowed for clock skew, in whole seconds
    await deleteNodes(fx.api(), ["legacy-2"]);
    await createNodes(fx.api(), [{ name: "legacy-2", ip: "192.168.67.2" }]); // while no controller ran
    controller = await startController(fx);
    const uid = (await fx.api().core.readNode({ name: "legacy-1" })).metadata!.uid!;
    const record = async (name: string) => (await listNodeCidrs(fx.api())).find((r) => r.metadata!.name === name);
    expect(await until("legacy-1's uid recorded", async () => (await record("10-244-5-0-24"))?.spec.nodeUID)).toBe(uid);
    expect((await record("10-244-5-0-24"))!.status?.phase).toBe("Allocated");
    await until("legacy-2's old record released", async () => ((await record("10-244-6-0-24"))?.status?.phase === "Released" || undefined));
    expect(await until("legacy-2 given another CIDR", () => cidrOf("legacy-2"))).not.toBe("10.244.6.0/24");
  });

  it("a stray hand-made record covering live ranges is quarantined; the live records stay Allocated and routed", async () => {
    controller = await startController(fx);
    await createNodes(fx.api(), [{ name: "live-1", ip: "192.168.62.1" }, { name: "live-2", ip: "192.168.62.2" }]);
    await until("both allocated", async () => ((await cidrOf("live-1")) && (await cidrOf("live-2")) ? true : undefined));
    // Its name (10-244-0-0-16) sorts before every /24 of the pool.
    await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: {
      apiVersion: "podnet.io/v1alpha1", kind: "NodeCIDR", metadata: { name: "10-244-0-0-16" },
      spec: { nodeName: "live-1", cidr: "10.244.0.0/16", family: "IPv4", pool: "default", nodeIPs: [] },
    } });
    const stray = await until("stray quarantined", async () => (await listNodeCidrs(fx.api())).find((r) => r.metadata!.name === "10-244-0-0-16" && r.status?.phase === "Quarantined"));
    expect(stray.status!.conditions!.find((c) => c.type === "Allocated")!.reason).toBe("WrongSize");
    await controller.stop(); // a restart plans from scratch over the same records
    controller = await startController(fx);
    await new Promise((r) => setTimeout(r, 1_500));
    const live = (await listNodeCidrs(fx.api())).filter((r) => r.metadata!.name !== "10-244-0-0-16");
    expect(live.map((r) => [r.spec.nodeName, r.status?.phase]).sort()).toEqual([["live-1", "Allocated"], ["live-2", "Allocated"]]);
  });

  it("a Node whose name is too long for a label value (up to 253 characters are allowed) still gets its CIDR", async () => {
    controller = await startController(fx);
    const name = `node-${"a".repeat(60)}.example.internal`;
    await createNodes(fx.api(), [{ name, ip: "192.168.63.1" }]);
    const cidr = await until("allocated", () => cidrOf(name));
    const record = (await listNodeCidrs(fx.api())).find((r) => r.spec.cidr === cidr)!;
    expect(record.metadata!.labels).toEqual({ "podnet.io/pool": "default" }); // no podnet.io/node: it would be refused
    expect(await until("podCIDRs", async () => ((await podCidrsOf(name)).length ? podCidrsOf(name) : undefined))).toEqual([cidr]);
    // The selectable field finds it in place of the label.
    const found = (await fx.api().custom.listClusterCustomObject({ ...nodecidrs, fieldSelector: `spec.nodeName=${name}` })) as { items: unknown[] };
    expect(found.items).toHaveLength(1);
  });

  it("a Node's podCIDRs spelt otherwise than canonical are its own: adopted, and given back at once after a hand deletion", async () => {
    // The API server keeps podCIDRs as written; the records hold the canonical text.
    controller = await startController(fx, { "cluster-cidr": "fd00:10:244::/56", "service-cidr": "fd00:96::/112", "release-cooldown": "30s" });
    await createNodes(fx.api(), [{ name: "nc-1", ip: "fd00:1::1", podCIDRs: ["FD00:10:244:1:0::/64"] }]);
    expect(await until("nc-1 adopted", () => cidrOf("nc-1"))).toBe("fd00:10:244:1::/64");
    await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: cidrObjectName("fd00:10:244:1::/64") });
    await until("nc-1's record gone", async () => ((await cidrOf("nc-1")) ? undefined : true), 5_000);
    expect(await until("nc-1's record back, well before the 30 s cooldown", () => cidrOf("nc-1"), 5_000)).toBe("fd00:10:244:1::/64");
    const node = await fx.api().core.readNode({ name: "nc-1" });
    expect(node.status?.conditions?.find((c) => c.type === POD_CIDR_CONDITION)?.status).not.toBe("True");
    expect((await eventsFor(fx.api(), "Node", "nc-1")).filter((e) => e.reason === "PodCIDRConflict")).toEqual([]);
  });

  it("a NodeCIDR deleted by hand goes back to its Node; when its Node goes too, the CIDR waits out the cooldown", async () => {
    // Two /24s, both taken, and a newcomer whose name sorts first waiting; fill-node-podcidrs off, so no
    // Node's podCIDRs says which range it had.
    controller = await startController(fx, { "cluster-cidr": "10.232.0.0/23", "default-pool": "small", "fill-node-podcidrs": "false", "release-cooldown": "4s" });
    await createNodes(fx.api(), [{ name: "hd-1", ip: "192.168.66.1" }, { name: "hd-2", ip: "192.168.66.2" }]);
    const first = await until("hd-1 allocated", () => cidrOf("hd-1"));
    const second = await until("hd-2 allocated", () => cidrOf("hd-2"));
    await createNodes(fx.api(), [{ name: "hd-0", ip: "192.168.66.3" }]);
    await until("hd-0 waits", async () => (await eventsFor(fx.api(), "Node", "hd-0")).find((e) => e.reason === "PodCIDRNotAvailable"));
    const deleteRecord = (cidr: string) => fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: cidrObjectName(cidr) });

    await deleteRecord(first);
    const back = await until("hd-1's record made again", async () => (await listNodeCidrs(fx.api())).find((r) => r.spec.cidr === first && r.status?.phase === "Allocated"));
    expect(back.spec.nodeName).toBe("hd-1");
    expect(back.status!.conditions!.find((c) => c.type === "Allocated")!.reason).toBe("Restored");
    expect(await cidrOf("hd-0")).toBeUndefined();

    // hd-2 drains behind a finalizer; its record is deleted by hand meanwhile; then the Node goes.
    await fx.api().core.patchNode({ name: "hd-2", body: { metadata: { finalizers: ["podnet.io/test-drain"] } } }, mergePatch());
    try {
      await deleteNodes(fx.api(), ["hd-2"]);
      await until("hd-2 marked for deletion", async () => ((await fx.api().core.readNode({ name: "hd-2" })).metadata?.deletionTimestamp ? true : undefined));
      const deletedAt = Date.now();
      await deleteRecord(second);
      await new Promise((r) => setTimeout(r, 500));
      await fx.api().core.patchNode({ name: "hd-2", body: { metadata: { finalizers: null } } }, mergePatch());
      expect(await until("hd-0 allocated", () => cidrOf("hd-0"))).toBe(second);
      expect(Date.now() - deletedAt).toBeGreaterThanOrEqual(4_000);
    } finally {
      await fx.api().core.patchNode({ name: "hd-2", body: { metadata: { finalizers: null } } }, mergePatch()).catch(() => undefined);
    }
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
  });

  it("a NodeCIDR deleted by hand goes back to its Node relabelled into an IPv6-only pool, not to another Node naming its range", async () => {
    // The record stays across the relabel; deleted, it used to go to the other Node at once (a pool soak).
    controller = await startController(fx, { "cluster-cidr": "10.234.0.0/24", "fill-node-podcidrs": "true", "release-cooldown": "30s" });
    await fx.api().custom.createClusterCustomObject({ ...podnetResource("podcidrpools"), body: {
      apiVersion: "podnet.io/v1alpha1", kind: "PodCIDRPool", metadata: { name: "rl-six" }, spec: { ipv6: { cidrs: ["fd00:234::/120"], nodeMaskSize: 122 }, nodeSelector: { "podnet.io/rl": "six" } },
    } });
    await createNodes(fx.api(), [{ name: "rl-1", ip: "192.168.68.1" }]);
    const cidr = await until("rl-1 allocated", () => cidrOf("rl-1"));
    await until("rl-1's podCIDRs", async () => ((await podCidrsOf("rl-1")).includes(cidr) ? true : undefined));
    await fx.api().core.patchNode({ name: "rl-1", body: { metadata: { labels: { "podnet.io/rl": "six" } } } }, mergePatch());
    await createNodes(fx.api(), [{ name: "rl-0", ip: "192.168.68.2", podCIDRs: [cidr] }]);
    await until("rl-0 in conflict", async () => (await eventsFor(fx.api(), "Node", "rl-0")).find((e) => e.reason === "PodCIDRConflict"));
    const before = (await listNodeCidrs(fx.api())).find((r) => r.spec.cidr === cidr)!;
    expect(before.spec.nodeName).toBe("rl-1");
    await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: cidrObjectName(cidr) });
    const again = await until("the record made again", async () => (await listNodeCidrs(fx.api())).find((r) => r.spec.cidr === cidr && r.metadata!.uid !== before.metadata!.uid && r.status?.phase === "Allocated"), 5_000);
    expect(again.spec.nodeName).toBe("rl-1");
    expect(await cidrOf("rl-0")).toBeUndefined(); // rl-0 named the range itself (a second allocator): still in conflict
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
  });

  it.each([["off", "false"], ["on", "true"]])("a NodeCIDR deleted by hand goes back to its Node, not to a Node whose name sorts first and names its range (fill-node-podcidrs %s)", async (_case, fill) => {
    controller = await startController(fx, { "fill-node-podcidrs": fill });
    await createNodes(fx.api(), [{ name: "sr-e", ip: "192.168.67.1" }]);
    const cidr = await until("sr-e allocated", () => cidrOf("sr-e"));
    if (fill === "true") await until("sr-e's podCIDRs", async () => ((await podCidrsOf("sr-e")).length ? true : undefined));
    // A second allocator filled a joining Node's podCIDRs with sr-e's range: that Node is in conflict.
    await createNodes(fx.api(), [{ name: "sr-c", ip: "192.168.67.2", podCIDRs: [cidr] }]);
    await until("sr-c in conflict", async () => (await eventsFor(fx.api(), "Node", "sr-c")).find((e) => e.reason === "PodCIDRConflict"));
    const before = (await listNodeCidrs(fx.api())).find((r) => r.spec.cidr === cidr)!;
    await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: cidrObjectName(cidr) });
    const again = await until("the record made again", async () => (await listNodeCidrs(fx.api())).find((r) => r.spec.cidr === cidr && r.metadata!.uid !== before.metadata!.uid && r.status?.phase === "Allocated"));
    expect(again.spec.nodeName).toBe("sr-e");
    expect(await cidrOf("sr-c")).toBeUndefined();
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
  });

  it("a settled pool's status is not written again by later plans", async () => {
    controller = await startController(fx);
    await createNodes(fx.api(), [{ name: "st-1", ip: "192.168.64.1" }, { name: "st-2", ip: "192.168.64.2" }]);
    await until("podCIDRs filled", async () => ((await podCidrsOf("st-2")).length && (await podCidrsOf("st-1")).length ? true : undefined));
    await new Promise((r) => setTimeout(r, 500));
    const poolWrites = async () => (await controller!.metrics.apiWrites.get()).values.find((v) => v.labels.action === "poolStatus")?.value ?? 0;
    const [writes, plans] = [await poolWrites(), controller.plans];
    // A label change on a Node wakes the planner; nothing about the pool changes.
    for (let i = 0; i < 3; i++) {
      await fx.api().core.patchNode({ name: "st-1", body: { metadata: { labels: { touched: String(i) } } } }, mergePatch());
      await until("a plan", async () => (controller!.plans > plans + i ? true : undefined));
    }
    expect(await poolWrites()).toBe(writes);
  });
});
