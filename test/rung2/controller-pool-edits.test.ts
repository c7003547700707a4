import { execFileSync } from "node:child_process";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { kubeBin } from "../../src/localcluster/kube-bins.js";
import { mergePatch, podnetResource } from "../../src/lib/k8s.js";
import type { AllocationController } from "../../src/controllers/controller.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, createNodes, eventsFor, invariantViolations, listNodeCidrs } from "../harness/cluster-objects.js";
import { recordsOfNode, startController, stopAndEmptyAfterEach, until } from "../harness/controller-fixture.js";

// Pools edited under live allocations: a typo over a range in use, a pool deleted, one replaced under a new name.
const fx = useControlPlane();
const pools = podnetResource("podcidrpools");
let controller: AllocationController | undefined;
stopAndEmptyAfterEach(fx, () => controller, () => { controller = undefined; });

const recordsOf = (node: string) => recordsOfNode(fx, node);

describe("controller on the real API server: pool edits under live allocations", () => {
  it("a bad pool edit (a new pool overlapping a used range, a pool deleted) never takes a node's CIDR away; undoing it clears the warning", async () => {
    const logs: Array<{ msg: string; action?: string; target?: string }> = [];
    controller = await startController(fx, { "cluster-cidr": "10.212.0.0/16", "default-pool": "pe" },
      pino({ level: "info" }, { write: (line: string) => { logs.push(JSON.parse(line) as (typeof logs)[number]); } }));
    const zone = { apiVersion: "podnet.io/v1alpha1", kind: "PodCIDRPool", metadata: { name: "pe-zone" },
      spec: { ipv4: { cidrs: ["10.213.0.0/24"], nodeMaskSize: 26 }, nodeSelector: { "podnet.io/zone": "pe" } } };
    await fx.api().custom.createClusterCustomObject({ ...pools, body: zone });
    await createNodes(fx.api(), [{ name: "pe-1", ip: "192.168.55.1" }, { name: "pe-2", ip: "192.168.55.2", labels: { "podnet.io/zone": "pe" } }]);
    const before = await until("both allocated", async () => {
      const r = allocated((await listNodeCidrs(fx.api())).filter((x) => x.spec.nodeName.startsWith("pe-")));
      return r.length === 2 ? r : undefined;
    });
    const reasonOf = async (node: string) => {
      const [r] = await recordsOf(node);
      return r && `${r.spec.cidr} ${r.status?.phase} ${r.status?.conditions?.find((c) => c.type === "Allocated")?.reason}`;
    };
    const cidrOf = (node: string) => before.find((r) => r.spec.nodeName === node)!.spec.cidr;
    expect(cidrOf("pe-1")).toMatch(/^10\.212\./); // from pe: no pool of an earlier test is left to select it
    const poolsExported = async () => new Set((await controller!.metrics.poolFree.get()).values.map((v) => v.labels.pool));
    await until("pe-zone's gauges exported", async () => ((await poolsExported()).has("pe-zone") ? true : undefined));
    const allocationPools = async () => new Set((await controller!.metrics.allocations.get()).values.map((v) => v.labels.pool));
    expect(await allocationPools()).toContain("pe-zone");

    // A typo: a new pool over the range pe-1's CIDR came from. The range in use keeps serving; the new one is
    // refused (before, both were, and no new node of the cluster got a CIDR). Then pe-2's pool is deleted.
    await fx.api().custom.createClusterCustomObject({ ...pools, body: {
      apiVersion: "podnet.io/v1alpha1", kind: "PodCIDRPool", metadata: { name: "pe-typo" }, spec: { ipv4: { cidrs: ["10.212.0.0/17"], nodeMaskSize: 24 }, nodeSelector: { "podnet.io/zone": "typo" } },
    } });
    await fx.api().custom.deleteClusterCustomObject({ ...pools, name: "pe-zone" });
    await until("pe-2 retained", async () => ((await reasonOf("pe-2")) === `${cidrOf("pe-2")} Allocated PoolNotFound` || undefined));
    const valid = await until("pe-typo refused", async () => {
      const typo = (await fx.api().custom.getClusterCustomObject({ ...pools, name: "pe-typo" })) as { status?: { conditions?: { type: string; status: string; message: string }[] } };
      return typo.status?.conditions?.find((c) => c.type === "Valid" && c.status === "False");
    });
    expect(valid.message).toBe("10.212.0.0/17 overlaps 10.212.0.0/16 of pool pe, which has nodes allocated from it");
    expect(await reasonOf("pe-1")).toBe(`${cidrOf("pe-1")} Allocated Allocated`);
    const wide = execFileSync(kubeBin("kubectl"), [`--kubeconfig=${fx.cp.kubeconfig}`, "get", "nodecidrs", "-o", "wide"], { encoding: "utf8" });
    expect(wide.split("\n").find((l) => l.includes(" pe-2 "))).toMatch(/ PoolNotFound /); // the ALLOCATION column
    const [warning] = await eventsFor(fx.api(), "NodeCIDR", before.find((r) => r.spec.nodeName === "pe-2")!.metadata!.name);
    expect(warning).toMatchObject({ type: "Warning", reason: "PoolNotFound" });
    expect(warning!.message).toContain("kept for node pe-2");
    expect(warning!.involvedObject.uid).toBe(before.find((r) => r.spec.nodeName === "pe-2")!.metadata!.uid); // what kubectl describe matches on
    // The deleted pool's figures are no longer exported (an alert on them would fire for a pool that is gone).
    expect(await until("pe-zone's gauges gone", async () => { const p = await poolsExported(); return p.has("pe-zone") ? undefined : p; })).toContain("pe");
    expect(await allocationPools()).toEqual(new Set(["pe"])); // podnet_allocations_total: a series per pool that exists
    expect((await controller!.metrics.retained.get()).values[0]?.value).toBe(1); // podnet_nodecidrs_retained, for alerting
    // Nodes keep exactly their one CIDR each; a new node still gets one from pe's range in use.
    await createNodes(fx.api(), [{ name: "pe-3", ip: "192.168.55.3" }]);
    const [third] = await until("pe-3 allocated", async () => { const r = allocated(await recordsOf("pe-3")); return r.length ? r : undefined; });
    expect(third!.spec.cidr).toMatch(/^10\.212\./);
    for (const node of ["pe-1", "pe-2"]) expect(await recordsOf(node)).toHaveLength(1);
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);

    await fx.api().custom.deleteClusterCustomObject({ ...pools, name: "pe-typo" });
    await fx.api().custom.createClusterCustomObject({ ...pools, body: zone });
    let lastSeen: string | undefined;
    await until("pe-2 confirmed again", async () => { lastSeen = await reasonOf("pe-2"); return lastSeen === `${cidrOf("pe-2")} Allocated Allocated` || undefined; }).catch((err: Error) => {
      throw new Error(`${err.message}; pe-2's record: ${lastSeen}; pools the controller sees: ${[...controller!.pools.cache.keys()].join(", ")}`);
    });

    // The zone replaced by a pool of another name, the only way to restructure one: pe-2's CIDR becomes the new
    // pool's, rather than retained outside every pool (and alerted on) for as long as pe-2 lives.
    const logsBefore = logs.length;
    await fx.api().custom.deleteClusterCustomObject({ ...pools, name: "pe-zone" });
    await fx.api().custom.createClusterCustomObject({ ...pools, body: { ...zone, metadata: { name: "pe-zone-b" } } });
    const rehomed = await until("pe-2 re-homed", async () => { const [r] = await recordsOf("pe-2"); return r?.spec.pool === "pe-zone-b" ? r : undefined; });
    expect(rehomed.metadata?.labels?.["podnet.io/pool"]).toBe("pe-zone-b");
    expect(await until("confirmed from the new pool", async () => ((await reasonOf("pe-2")) === `${cidrOf("pe-2")} Allocated Allocated` ? true : undefined))).toBe(true);
    const events = await eventsFor(fx.api(), "NodeCIDR", rehomed.metadata!.name!);
    expect(events.find((e) => e.reason === "PoolChanged")?.message).toBe(`pool pe-zone is gone and ${cidrOf("pe-2")} is a slice of pool pe-zone-b: now counted as that pool's`);
    expect((await controller!.metrics.retained.get()).values[0]?.value ?? 0).toBe(0);
    // The re-home and the confirm of one plan go one after the other, the second on the first's version: neither
    // meets a 409 from the other (each did, and another plan followed for each).
    expect(logs.slice(logsBefore).filter((l) => l.msg.startsWith("not written")).map((l) => `${l.action} ${l.target}`)).toEqual([]);
  });

  it("a pool whose node slices hold fewer addresses than its Nodes admit pods says so (PodAddresses=False), and True once they fit", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.214.0.0/16", "default-pool": "pa", "node-mask-v4": "26" });
    await createNodes(fx.api(), [{ name: "pa-1", ip: "192.168.57.1", kubeletStatus: true }]); // capacity: 110 pods, as kubelet's default
    const condition = async (pool: string) => ((await fx.api().custom.getClusterCustomObject({ ...pools, name: pool })) as { status?: { conditions?: Array<{ type: string; status: string; message: string }> } })
      .status?.conditions?.find((c) => c.type === "PodAddresses");
    const short = await until("pa says its slices are short", async () => ((await condition("pa"))?.status === "False" ? condition("pa") : undefined));
    expect(short!.message).toContain("each node's IPv4 /26 holds 61 pod addresses, but node pa-1 admits 110 pods");
    await fx.api().custom.createClusterCustomObject({ ...pools, body: { apiVersion: "podnet.io/v1alpha1", kind: "PodCIDRPool", metadata: { name: "pa-wide" },
      spec: { ipv4: { cidrs: ["10.215.0.0/16"], nodeMaskSize: 24 }, nodeSelector: { "podnet.io/zone": "wide" } } } });
    // Unknown from its creation (no Node selected yet: no capacity to size against), then naming the Node's capacity once pa-1 moves over.
    const unknown = await until("pa-wide sized", async () => condition("pa-wide"));
    expect(unknown).toMatchObject({ status: "Unknown", reason: "NoNodeCapacityKnown" });
    await fx.api().core.patchNode({ name: "pa-1", body: { metadata: { labels: { "podnet.io/zone": "wide" } } } }, mergePatch());
    const fits = await until("pa-wide fits pa-1", async () => ((await condition("pa-wide"))?.message.includes("at most 110 pods") ? condition("pa-wide") : undefined));
    expect(fits).toMatchObject({ status: "True", message: "each node's /24 holds 253 pod addresses; its Nodes admit at most 110 pods" });
  });

  it("a pool grown by appending a superset of its range (/25 → [/25, /24]) keeps its Nodes' CIDRs and serves the /24 once", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.219.0.0/16", "default-pool": "pg" });
    const poolOf = async () => (await fx.api().custom.getClusterCustomObject({ ...pools, name: "grow" })) as {
      status?: { ipv4?: { size: string; allocated: number; free: string }; conditions?: Array<{ type: string; status: string; reason: string; message: string }> } };
    const conditionOf = async (type: string) => (await poolOf()).status?.conditions?.find((c) => c.type === type);
    await fx.api().custom.createClusterCustomObject({ ...pools, body: { apiVersion: "podnet.io/v1alpha1", kind: "PodCIDRPool", metadata: { name: "grow" },
      spec: { ipv4: { cidrs: ["10.122.0.0/25"], nodeMaskSize: 26 }, nodeSelector: { "podnet.io/zone": "grow" } } } });
    const labels = { "podnet.io/zone": "grow" };
    await createNodes(fx.api(), [{ name: "pg-1", ip: "192.168.58.1", labels }, { name: "pg-2", ip: "192.168.58.2", labels }]);
    const before = await until("pg-1 and pg-2 allocated", async () => {
      const r = allocated((await listNodeCidrs(fx.api())).filter((x) => x.spec.nodeName.startsWith("pg-")));
      return r.length === 2 ? r : undefined;
    });
    await createNodes(fx.api(), [{ name: "pg-3", ip: "192.168.58.3", labels }]);
    await until("grow exhausted", async () => ((await conditionOf("Exhausted"))?.status === "True" || undefined));

    // The natural way to grow a /25 into its /24 (the /25 cannot be removed): both were refused as overlapping.
    await fx.api().custom.patchClusterCustomObject({ ...pools, name: "grow", body: { spec: { ipv4: { cidrs: ["10.122.0.0/25", "10.122.0.0/24"], nodeMaskSize: 26 } } } }, mergePatch());
    const [third] = await until("pg-3 allocated", async () => { const r = allocated(await recordsOf("pg-3")); return r.length ? r : undefined; });
    expect(third!.spec.cidr).toBe("10.122.0.128/26");
    for (const record of before) {
      const [now] = await recordsOf(record.spec.nodeName);
      expect(`${now?.spec.cidr} ${now?.status?.phase} ${now?.status?.conditions?.find((c) => c.type === "Allocated")?.reason}`).toBe(`${record.spec.cidr} Allocated Allocated`);
    }
    const status = await until("grow counts the /24 once", async () => { const s = (await poolOf()).status; return s?.ipv4?.allocated === 3 ? s : undefined; });
    expect(status.ipv4).toEqual({ size: "4", allocated: 3, free: "1" });
    expect(status.conditions?.find((c) => c.type === "Valid")).toMatchObject({ status: "True", reason: "RangesValid",
      message: "all ranges usable; 10.122.0.0/25 within 10.122.0.0/24: overlapping ranges of this pool, served once as the wider" });
    expect(status.conditions?.find((c) => c.type === "Exhausted")).toMatchObject({ status: "False" });
    expect((await controller.metrics.retained.get()).values[0]?.value ?? 0).toBe(0);
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
  });
});
