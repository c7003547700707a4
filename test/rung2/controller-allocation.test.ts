import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { mergePatch, podnetResource } from "../../src/lib/k8s.js";
import type { AllocationController } from "../../src/controllers/controller.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, createNodes, deleteNodes, eventsFor, invariantViolations, kubeletReportedStatus, listNodeCidrs } from "../harness/cluster-objects.js";
import { recordsOfNode, startController, stopAndEmptyAfterEach, until } from "../harness/controller-fixture.js";

const fx = useControlPlane();
const pools = podnetResource("podcidrpools");
const nodecidrs = podnetResource("nodecidrs");
let controller: AllocationController | undefined;
stopAndEmptyAfterEach(fx, () => controller, () => { controller = undefined; });

const recordsOf = (node: string) => recordsOfNode(fx, node);

describe("controller on the real API server: allocation basics", () => {
  it("allocates one CIDR per family from a dual-stack default pool, mirrors node IPs and fills node.spec.podCIDRs (IPv4 first)", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.244.0.0/16,fd00:10:244::/56", "default-pool": "dual" });
    await createNodes(fx.api(), [{ name: "ds-1", ip: "192.168.50.11" }]);
    const records = await until("two NodeCIDRs", async () => {
      const r = allocated(await recordsOf("ds-1"));
      return r.length === 2 ? r : undefined;
    });
    expect(records.map((r) => r.spec.family).sort()).toEqual(["IPv4", "IPv6"]);
    expect(records.every((r) => r.spec.nodeIPs?.[0] === "192.168.50.11")).toBe(true);
    const node = await until("podCIDRs filled", async () => {
      const n = await fx.api().core.readNode({ name: "ds-1" });
      return n.spec?.podCIDRs?.length === 2 ? n : undefined;
    });
    expect(node.spec!.podCIDRs![0]).toMatch(/^10\.244\./);
    expect(node.spec!.podCIDRs![1]).toMatch(/^fd00:10:244:/);
    const cond = records[0]!.status!.conditions!.find((c) => c.type === "Allocated")!;
    expect(cond).toMatchObject({ status: "True", reason: "Allocated" });
    // A Node registered with an IPv4 podCIDR outside the pool gets its IPv6 CIDR, which its podCIDRs cannot take
    // any more: the Node condition names both, led by the root cause, with a heartbeat (not year 1 in kubectl describe).
    await createNodes(fx.api(), [{ name: "ds-2", ip: "192.168.50.12", podCIDRs: ["172.16.0.0/24"] }]);
    const both = await until("both problems on ds-2's condition", async () => {
      const c = (await fx.api().core.readNode({ name: "ds-2" })).status?.conditions?.find((x) => x.type === "PodCIDRConflict");
      return c?.message?.includes("was set before and cannot be changed") ? c : undefined;
    });
    expect(both).toMatchObject({ status: "True", reason: "PodCIDROutsidePool", message: expect.stringMatching(/^node ds-2 has podCIDR 172\.16\.0\.0\/24, which is not a node-sized slice/) });
    expect(both.lastHeartbeatTime?.getTime()).toBeGreaterThanOrEqual(both.lastTransitionTime!.getTime());
    await deleteNodes(fx.api(), ["ds-1", "ds-2"]);
  });

  it("serves an IPv6-only cluster: one IPv6 CIDR per Node, its IPv6 InternalIP mirrored, node.spec.podCIDRs filled", async () => {
    controller = await startController(fx, { "cluster-cidr": "fd00:10:246::/56", "default-pool": "v6only" });
    await createNodes(fx.api(), [{ name: "v6-1", ip: "fd00:73::11" }, { name: "v6-2", ip: "fd00:73::12" }]);
    const records = await until("one NodeCIDR per node", async () => {
      const r = allocated(await listNodeCidrs(fx.api())).filter((x) => x.spec.pool === "v6only");
      return r.length === 2 ? r : undefined;
    });
    expect(records.map((r) => [r.spec.nodeName, r.spec.family, r.spec.nodeIPs]).sort()).toEqual([["v6-1", "IPv6", ["fd00:73::11"]], ["v6-2", "IPv6", ["fd00:73::12"]]]);
    expect(records.map((r) => r.spec.cidr).sort()).toEqual(["fd00:10:246:1::/64", "fd00:10:246::/64"]); // the pool's first two /64s
    const node = await until("podCIDRs filled", async () => {
      const n = await fx.api().core.readNode({ name: "v6-1" });
      return n.spec?.podCIDRs?.length ? n : undefined;
    });
    expect(node.spec!.podCIDRs).toEqual([records.find((r) => r.spec.nodeName === "v6-1")!.spec.cidr]);
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
  });

  it("adopts a preset node.spec.podCIDRs, reports a conflicting one instead of overwriting it, and one another allocator set later", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.244.0.0/16", "default-pool": "adopt" });
    await createNodes(fx.api(), [{ name: "adopt-a", ip: "192.168.51.1", podCIDRs: ["10.244.77.0/24"] }]);
    const [rec] = await until("adopted", async () => { const r = allocated(await recordsOf("adopt-a")); return r.length ? r : undefined; });
    expect(rec!.spec).toMatchObject({ cidr: "10.244.77.0/24", adopted: true });
    // An adopted CIDR did not wait on podnet: the Node's age is no allocation latency.
    const latencyCount = async () => (await controller!.metrics.allocationLatency.get()).values.find((v) => v.metricName === "podnet_allocation_latency_seconds_count")?.value ?? 0;
    expect(await latencyCount()).toBe(0);
    await createNodes(fx.api(), [
      { name: "adopt-b", ip: "192.168.51.2", podCIDRs: ["10.244.77.0/24"], kubeletStatus: true },
      { name: "adopt-c", ip: "192.168.51.3", podCIDRs: ["172.16.0.0/24"] },
    ]);
    const conflict = await until("conflict event", async () => { const e = await eventsFor(fx.api(), "Node", "adopt-b"); return e.length ? e : undefined; });
    expect(conflict[0]!.reason).toBe("PodCIDRConflict");
    expect(conflict[0]!.message).toContain("10.244.77.0/24");
    const outside = await until("outside-pool event", async () => { const e = await eventsFor(fx.api(), "Node", "adopt-c"); return e.length ? e : undefined; });
    expect(outside[0]!.reason).toBe("PodCIDROutsidePool");
    expect(await recordsOf("adopt-b")).toEqual([]);
    expect((await fx.api().core.readNode({ name: "adopt-b" })).spec!.podCIDRs).toEqual(["10.244.77.0/24"]);
    // A condition on the Node too, next to kubelet's (here the test's) own, which it leaves alone.
    const podCidrCondition = async (name: string) => (await fx.api().core.readNode({ name })).status?.conditions?.find((c) => c.type === "PodCIDRConflict");
    const onB = await until("adopt-b's condition", () => podCidrCondition("adopt-b"));
    expect(onB).toMatchObject({ status: "True", reason: "PodCIDRConflict", message: expect.stringContaining("already held by node adopt-a") });
    expect((await fx.api().core.readNode({ name: "adopt-b" })).status!.conditions!.map((c) => c.type)).toEqual(expect.arrayContaining(["Ready", "MemoryPressure"]));
    expect(await until("adopt-c's condition", () => podCidrCondition("adopt-c"))).toMatchObject({ status: "True", reason: "PodCIDROutsidePool" });
    // adopt-a goes: after the cooldown adopt-b takes its range, and the condition turns False.
    await deleteNodes(fx.api(), ["adopt-a"]);
    expect(await until("adopt-b adopted", async () => { const r = allocated(await recordsOf("adopt-b")); return r.length ? r : undefined; }, 30_000)).toHaveLength(1);
    expect(await until("adopt-b's condition cleared", async () => { const c = await podCidrCondition("adopt-b"); return c?.status === "False" ? c : undefined; }))
      .toMatchObject({ reason: "NoConflict" });
    // A second allocator (kube-controller-manager) fills a joining Node's podCIDRs after podnet allocated it
    // another range (podnet's own fill off here, so the other one wins the race): reported, nothing rewritten.
    await controller.stop();
    controller = await startController(fx, { "cluster-cidr": "10.244.0.0/16", "default-pool": "adopt", "fill-node-podcidrs": "false" });
    await createNodes(fx.api(), [{ name: "adopt-d", ip: "192.168.51.4" }]);
    const [ours] = await until("allocated", async () => { const r = allocated(await recordsOf("adopt-d")); return r.length ? r : undefined; });
    const theirs = ours!.spec.cidr === "10.244.99.0/24" ? "10.244.98.0/24" : "10.244.99.0/24";
    await fx.api().core.patchNode({ name: "adopt-d", body: { spec: { podCIDR: theirs, podCIDRs: [theirs] } } }, mergePatch());
    const mismatch = await until("mismatch event", async () => (await eventsFor(fx.api(), "Node", "adopt-d")).find((e) => e.reason === "PodCIDRMismatch"));
    expect(mismatch.message).toContain(`has spec.podCIDRs ${theirs}, but podnet allocated it ${ours!.spec.cidr}`);
    expect(mismatch.type).toBe("Warning");
    expect(allocated(await recordsOf("adopt-d")).map((r) => r.spec.cidr)).toEqual([ours!.spec.cidr]);
    await deleteNodes(fx.api(), ["adopt-b", "adopt-c", "adopt-d"]);
  });

  it("reports exhaustion, then allocates when the pool grows at runtime; a labelled pool serves its nodes", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.200.0.0/22", "default-pool": "small" });
    await createNodes(fx.api(), Array.from({ length: 6 }, (_, i) => ({ name: `ex-${i}`, ip: `192.168.52.${i + 1}` })));
    await until("4 allocated", async () => (allocated(await listNodeCidrs(fx.api())).filter((r) => r.spec.pool === "small").length === 4 ? true : undefined));
    const exhausted = await until("2 exhaustion events", async () => {
      const e = (await eventsFor(fx.api(), "Node")).filter((x) => x.reason === "PodCIDRNotAvailable");
      return e.length >= 2 ? e : undefined;
    });
    expect(exhausted).toHaveLength(2);
    const pool = await until("Exhausted condition", async () => {
      const p = (await fx.api().custom.getClusterCustomObject({ ...pools, name: "small" })) as { status?: { conditions?: Array<{ type: string; status: string }>; ipv4?: { free: string } } };
      return p.status?.conditions?.some((c) => c.type === "Exhausted" && c.status === "True") ? p : undefined;
    });
    expect(pool.status!.ipv4!.free).toBe("0");
    await fx.api().custom.patchClusterCustomObject({ ...pools, name: "small", body: { spec: { ipv4: { cidrs: ["10.200.0.0/22", "10.200.8.0/23"], nodeMaskSize: 24 } } } }, mergePatch());
    await until("all 6 allocated after growth", async () => (allocated(await listNodeCidrs(fx.api())).filter((r) => r.spec.pool === "small").length === 6 ? true : undefined));
    await fx.api().custom.createClusterCustomObject({ ...pools, body: {
      apiVersion: "podnet.io/v1alpha1", kind: "PodCIDRPool", metadata: { name: "edge" },
      spec: { ipv4: { cidrs: ["10.201.0.0/24"], nodeMaskSize: 26 }, nodeSelector: { "podnet.io/zone": "edge" } },
    } });
    await createNodes(fx.api(), [{ name: "edge-1", ip: "192.168.52.100", labels: { "podnet.io/zone": "edge" } }]);
    const [edge] = await until("edge allocated", async () => { const r = allocated(await recordsOf("edge-1")); return r.length ? r : undefined; });
    expect(edge!.spec).toMatchObject({ pool: "edge", cidr: "10.201.0.0/26" });
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
  });

  it("kubelet's status heartbeats neither fill the cache nor trigger plans; an address change still does", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.211.0.0/16", "default-pool": "hb", "resync-period": "1h" });
    await createNodes(fx.api(), [{ name: "hb-1", ip: "192.168.54.1", kubeletStatus: true }]);
    await until("allocated", async () => (allocated(await recordsOf("hb-1")).length === 1 ? true : undefined));
    // Idle: no plan for a whole second. The allocation's own echoes (the record's status, the Node's podCIDRs,
    // the pool's counts) can arrive late on a loaded machine, and a 100 ms lull once let one through (CI).
    let plans = -1;
    let quietSince = 0;
    await until("controller idle for 1 s", async () => {
      if (controller!.plans !== plans) { plans = controller!.plans; quietSince = Date.now(); return undefined; }
      return Date.now() - quietSince >= 1_000 ? true : undefined;
    }, 20_000);
    expect(controller!.nodes.cache.get("hb-1")?.status?.images).toBeUndefined();
    let rv = "";
    for (let beat = 1; beat <= 10; beat++) {
      const status = kubeletReportedStatus("hb-1")!; // fresh heartbeat times, as kubelet sends them
      const patched = await fx.api().core.patchNodeStatus({ name: "hb-1", body: { status: { conditions: status.conditions } } }, mergePatch());
      rv = patched.metadata!.resourceVersion!;
    }
    await until("controller saw the last heartbeat", async () => (controller!.nodes.cache.get("hb-1")?.metadata?.resourceVersion === rv ? true : undefined));
    await new Promise((r) => setTimeout(r, 300)); // longer than the loop's coalescing pause
    expect(controller!.plans).toBe(plans);
    await fx.api().core.patchNodeStatus({ name: "hb-1", body: { status: { addresses: [{ type: "InternalIP", address: "192.168.54.99" }] } } }, mergePatch());
    await until("new address mirrored", async () => ((await recordsOf("hb-1"))[0]?.spec.nodeIPs?.[0] === "192.168.54.99" ? true : undefined));
    expect(controller!.plans).toBeGreaterThan(plans);
    await deleteNodes(fx.api(), ["hb-1"]);
  });

  it("a Node with an InternalIP the NodeCIDR schema refuses (link-local) is still allocated, with the usable address, and warned", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.244.0.0/16", "default-pool": "ips" });
    await fx.api().core.createNode({ body: { metadata: { name: "ll-1" } } });
    await fx.api().core.patchNodeStatus({ name: "ll-1", body: { status: { addresses: [
      { type: "InternalIP", address: "169.254.3.3" }, { type: "InternalIP", address: "192.168.53.1" }] } } }, mergePatch());
    // The Node exists before its addresses (as kubelet registers): it may be allocated first, its IPs mirrored next.
    const [rec] = await until("allocated, its IPs mirrored", async () => { const r = allocated(await recordsOf("ll-1")); return r[0]?.spec.nodeIPs?.length ? r : undefined; });
    expect(rec!.spec.nodeIPs).toEqual(["192.168.53.1"]);
    expect((await until("warning", async () => (await eventsFor(fx.api(), "Node", "ll-1")).find((e) => e.reason === "UnusableNodeIP"))).message).toContain("169.254.3.3");
  });

  it("a Node with ExternalIPs only is routed via them; a Node whose addresses are all cleared keeps its mirrored ones", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.244.0.0/16", "default-pool": "ext" });
    await fx.api().core.createNode({ body: { metadata: { name: "ext-1" } } });
    const addresses = (list: Array<[string, string]>) => fx.api().core.patchNodeStatus({ name: "ext-1", body: { status: { addresses: list.map(([type, address]) => ({ type, address })) } } }, mergePatch());
    const nodeIPs = async () => allocated(await recordsOf("ext-1"))[0]?.spec.nodeIPs?.join(",");
    await addresses([["Hostname", "ext-1"], ["ExternalIP", "203.0.113.7"]]);
    await until("ExternalIP mirrored", async () => ((await nodeIPs()) === "203.0.113.7" || undefined));
    await addresses([["ExternalIP", "203.0.113.7"], ["InternalIP", "192.168.52.1"], ["ExternalIP", "2001:db8::7"]]);
    await until("InternalIPs once it has one", async () => ((await nodeIPs()) === "192.168.52.1" || undefined));
    const plans = controller.plans;
    await addresses([]);
    await until("a plan after the addresses went", async () => (controller!.plans > plans || undefined));
    await new Promise((r) => setTimeout(r, 300));
    expect(await nodeIPs()).toBe("192.168.52.1");
  });

  it("a Node held by a finalizer while it drains keeps its CIDR Allocated past the cooldown; released once the object is gone", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.244.0.0/16", "default-pool": "drain" }); // cooldown 2 s
    await fx.api().core.createNode({ body: { metadata: { name: "drain-1", finalizers: ["podnet.test/drain"] } } });
    const letGo = () => fx.api().core.patchNode({ name: "drain-1", body: { metadata: { finalizers: null } } }, mergePatch());
    try {
      const [rec] = await until("allocated", async () => { const r = allocated(await recordsOf("drain-1")); return r.length ? r : undefined; });
      await fx.api().core.deleteNode({ name: "drain-1" }); // deletionTimestamp set; the finalizer keeps the object
      await new Promise((r) => setTimeout(r, 4_000)); // twice the cooldown, and resyncs of the controller
      expect((await recordsOf("drain-1")).map((r) => [r.spec.cidr, r.status?.phase])).toEqual([[rec!.spec.cidr, "Allocated"]]);
      await createNodes(fx.api(), [{ name: "drain-2", ip: "192.168.52.2" }]);
      const [other] = await until("newcomer allocated", async () => { const r = allocated(await recordsOf("drain-2")); return r.length ? r : undefined; });
      expect(other!.spec.cidr).not.toBe(rec!.spec.cidr);
    } finally {
      await letGo();
    }
    await until("released", async () => ((await recordsOf("drain-1")).some((r) => r.status?.phase === "Released") ? true : undefined));
  }, 40_000);

  it("a Node deleted and registered again under its name while the controller was down gets another CIDR; the old one waits out its cooldown", async () => {
    const flags = { "cluster-cidr": "10.215.0.0/16", "default-pool": "again", "release-cooldown": "30s" };
    controller = await startController(fx, flags);
    await createNodes(fx.api(), [{ name: "again-1", ip: "192.168.57.1" }]);
    const [first] = await until("allocated", async () => { const r = allocated(await recordsOf("again-1")); return r.length ? r : undefined; });
    expect(first!.spec.nodeUID).toBe((await fx.api().core.readNode({ name: "again-1" })).metadata!.uid);
    await controller.stop();
    controller = undefined;
    await deleteNodes(fx.api(), ["again-1"]);
    await createNodes(fx.api(), [{ name: "again-1", ip: "192.168.57.9" }]); // a new machine under the old name
    const uid = (await fx.api().core.readNode({ name: "again-1" })).metadata!.uid;
    controller = await startController(fx, flags);
    const fresh = await until("old released, another allocated", async () => {
      const r = await recordsOf("again-1");
      const released = r.some((x) => x.spec.cidr === first!.spec.cidr && x.status?.phase === "Released");
      const other = allocated(r).find((x) => x.spec.cidr !== first!.spec.cidr);
      return released && other ? other : undefined;
    });
    expect(fresh.spec.nodeUID).toBe(uid);
    expect(await until("podCIDRs", async () => (await fx.api().core.readNode({ name: "again-1" })).spec?.podCIDRs)).toEqual([fresh.spec.cidr]);
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
    await deleteNodes(fx.api(), ["again-1"]);
  });

  it("quarantines bad hand-made records, keeps serving others, and releases a deleted node's CIDR only after the cooldown", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.210.0.0/16", "default-pool": "q", "release-cooldown": "3s" });
    const handMade = (cidr: string, node: string) => ({
      apiVersion: "podnet.io/v1alpha1", kind: "NodeCIDR", metadata: { name: cidr.replaceAll(".", "-").replaceAll("/", "-") },
      spec: { nodeName: node, cidr, family: "IPv4", pool: "q" },
    });
    await createNodes(fx.api(), [{ name: "q-1", ip: "192.168.53.1" }]);
    await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: handMade("172.31.0.0/24", "q-1") }); // outside every pool
    await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: handMade("10.210.128.0/23", "q-1") }); // wrong size
    const quarantined = await until("2 quarantined", async () => {
      const q = (await recordsOf("q-1")).filter((r) => r.status?.phase === "Quarantined");
      return q.length === 2 ? q : undefined;
    });
    expect(quarantined.every((r) => r.status!.conditions!.some((c) => c.type === "Allocated" && c.status === "False"))).toBe(true);
    await until("q-1 still gets a real CIDR", async () => (allocated(await recordsOf("q-1")).length === 1 ? true : undefined));
    const ev = await eventsFor(fx.api(), "NodeCIDR", "172-31-0-0-24");
    expect(ev.length).toBeGreaterThan(0);

    const [held] = allocated(await recordsOf("q-1"));
    await deleteNodes(fx.api(), ["q-1"]);
    await until("released", async () => ((await recordsOf("q-1")).some((r) => r.spec.cidr === held!.spec.cidr && r.status?.phase === "Released") ? true : undefined));
    const releasedAt = Date.now();
    await createNodes(fx.api(), [{ name: "q-2", ip: "192.168.53.2" }]);
    const [fresh] = await until("q-2 allocated", async () => { const r = allocated(await recordsOf("q-2")); return r.length ? r : undefined; });
    expect(fresh!.spec.cidr).not.toBe(held!.spec.cidr); // never handed out during the cooldown
    await until("deleted after cooldown", async () => ((await listNodeCidrs(fx.api())).some((r) => r.spec.cidr === held!.spec.cidr) ? undefined : true));
    expect(Date.now() - releasedAt).toBeGreaterThanOrEqual(2_000);
  });
  it("warns both Nodes that share an InternalIP and still allocates to both; the log says it once, not on every plan", async () => {
    const lines: string[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => { lines.push(line); } });
    controller = await startController(fx, { "cluster-cidr": "10.215.0.0/16", "default-pool": "dup" }, log);
    await createNodes(fx.api(), [{ name: "dup-old", ip: "192.168.56.9" }, { name: "dup-new", ip: "192.168.56.9" }]);
    for (const [node, other] of [["dup-old", "dup-new"], ["dup-new", "dup-old"]] as const) {
      const [warning] = await until(`DuplicateNodeIP on ${node}`, async () => {
        const e = (await eventsFor(fx.api(), "Node", node)).filter((x) => x.reason === "DuplicateNodeIP");
        return e.length ? e : undefined;
      });
      expect(warning!.message).toContain(`shares node IP 192.168.56.9 with node ${other}`);
      expect(allocated(await recordsOf(node))).toHaveLength(1);
    }
    // More plans, each finding the shared address again.
    const plansBefore = controller.plans;
    await createNodes(fx.api(), Array.from({ length: 5 }, (_, i) => ({ name: `dup-more-${i}`, ip: `192.168.57.${i + 1}` })));
    await until("the newcomers allocated", async () => (allocated(await listNodeCidrs(fx.api())).length === 7 ? true : undefined));
    expect(controller.plans).toBeGreaterThan(plansBefore);
    expect(lines.filter((l) => l.includes("shares node IP 192.168.56.9"))).toHaveLength(2);
  });
});
