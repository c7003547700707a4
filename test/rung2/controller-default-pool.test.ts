import { afterEach, describe, expect, it } from "vitest";
import type { AllocationController } from "../../src/controllers/controller.js";
import { CONFIGURED_CIDRS_ANNOTATION } from "../../src/controllers/default-pool.js";
import type { PoolObject } from "../../src/controllers/observe.js";
import { mergePatch, podnetResource } from "../../src/lib/k8s.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, createNodes, emptyCluster, eventsFor, invariantViolations, listNodeCidrs } from "../harness/cluster-objects.js";
import { startController } from "../harness/controller-fixture.js";

// The default pool across configuration changes: what a `helm upgrade` with other pool values does to it.
const fx = useControlPlane();
const pools = podnetResource("podcidrpools");
afterEach(async () => { await emptyCluster(fx.api()); });

const until = <T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000) => waitFor(what, probe, ms, 100);
const readPool = async () => (await fx.api().custom.getClusterCustomObject({ ...pools, name: "upg" })) as PoolObject;
const poolEvents = async (reason: string) => (await eventsFor(fx.api(), "PodCIDRPool", "upg")).filter((e) => e.reason === reason).map((e) => e.message);
const cidrsOf = async (node: string) => allocated(await listNodeCidrs(fx.api())).filter((r) => r.spec.nodeName === node).map((r) => r.spec.cidr).sort();

/** Runs `body` against a controller started with these pool flags, stopped afterwards (as a rollout replaces it). */
async function withController<T>(flags: Record<string, string>, body: (c: AllocationController) => Promise<T>): Promise<T> {
  const controller = await startController(fx, { "default-pool": "upg", ...flags });
  try { return await body(controller); } finally { await controller.stop(); }
}

describe("controller on the real API server: the default pool follows its configuration", () => {
  it("grows by ranges and a family added to the configuration, keeps what cannot change and says so, and leaves ranges added by hand alone", async () => {
    await createNodes(fx.api(), [{ name: "u-1", ip: "192.168.71.1" }, { name: "u-2", ip: "192.168.71.2" }]);
    // Installed with room for one node: the second is exhausted.
    await withController({ "cluster-cidr": "10.220.0.0/24" }, async () => {
      await until("u-1 allocated", async () => ((await cidrsOf("u-1")).length ? true : undefined));
      await until("u-2 exhausted", async () => ((await eventsFor(fx.api(), "Node", "u-2")).some((e) => e.reason === "PodCIDRNotAvailable") ? true : undefined));
      // Filled in the pass after u-1's record exists: stopped before it (seen on a loaded CI machine), the next
      // controller filled both families at once and there was no missing family to say.
      await until("u-1's podCIDRs filled", async () => ((await fx.api().core.readNode({ name: "u-1" })).spec?.podCIDRs?.length ? true : undefined));
    });
    expect((await readPool()).metadata?.annotations?.[CONFIGURED_CIDRS_ANNOTATION]).toBe("10.220.0.0/24");

    // Upgraded with a second IPv4 range and an IPv6 range: the pool grows, u-2 gets the new range, both get IPv6.
    const dualStack = await withController({ "cluster-cidr": "10.220.0.0/24,10.221.0.0/24,fd00:10:220::/56" }, async () => ({
      u2: await until("u-2 allocated from the added range", async () => ((await cidrsOf("u-2")).length === 2 ? cidrsOf("u-2") : undefined)),
      u1: await until("u-1 dual-stack", async () => ((await cidrsOf("u-1")).length === 2 ? cidrsOf("u-1") : undefined)),
    }));
    expect(dualStack.u1).toEqual(["10.220.0.0/24", expect.stringMatching(/^fd00:10:220:[0-9a-f:]*\/64$/)]);
    expect(dualStack.u2).toEqual(["10.221.0.0/24", expect.stringMatching(/^fd00:10:220:[0-9a-f:]*\/64$/)]);
    const grown = await readPool();
    expect(grown.spec).toEqual({ ipv4: { cidrs: ["10.220.0.0/24", "10.221.0.0/24"], nodeMaskSize: 24 }, ipv6: { cidrs: ["fd00:10:220::/56"], nodeMaskSize: 64 } });
    expect(await poolEvents("RangesAdded")).toEqual(["pool upg grew by 10.221.0.0/24, fd00:10:220::/56 from --cluster-cidr"]);

    // A range added by hand, then values that drop a range and change the mask: nothing is removed or resized,
    // both are reported, the hand-made range is not, and no node's CIDR changes.
    await fx.api().custom.patchClusterCustomObject({ ...pools, name: "upg", body: { spec: { ipv4: { cidrs: ["10.220.0.0/24", "10.221.0.0/24", "10.222.0.0/24"], nodeMaskSize: 24 } } } }, mergePatch());
    await withController({ "cluster-cidr": "10.221.0.0/24,fd00:10:220::/56", "node-mask-v4": "25" }, async (controller) => {
      const kept = await until("RangeNotConfigured", async () => { const e = await poolEvents("RangeNotConfigured"); return e.length ? e : undefined; });
      expect(kept).toEqual(["pool upg keeps 10.220.0.0/24, no longer in --cluster-cidr: a pool's ranges cannot be removed while nodes may hold CIDRs from them"]);
      expect(await poolEvents("NodeMaskSizeKept")).toHaveLength(1);
      await until("a plan after the check", async () => (controller.plans > 1 ? true : undefined));
      // u-1's podCIDRs were filled with IPv4 alone before the pool grew, and cannot be set again: said on the
      // Node. u-2 got both families at once, and its field names both.
      const condition = async (node: string) => (await fx.api().core.readNode({ name: node })).status?.conditions?.find((c) => c.type === "PodCIDRConflict");
      const u1 = await until("u-1's missing family said", async () => { const c = await condition("u-1"); return c?.status === "True" ? c : undefined; });
      expect([u1.reason, u1.message]).toEqual(["PodCIDRFamilyMissing", expect.stringMatching(/^node u-1 holds fd00:10:220:[0-9a-f:]*\/64, but its spec\.podCIDRs \(10\.220\.0\.0\/24\) was set before/)]);
      await until("u-2's podCIDRs filled", async () => ((await fx.api().core.readNode({ name: "u-2" })).spec?.podCIDRs?.length === 2 ? true : undefined));
      expect((await condition("u-2"))?.status ?? "False").toBe("False");
    });
    const after = await readPool();
    expect(after.spec.ipv4).toEqual({ cidrs: ["10.220.0.0/24", "10.221.0.0/24", "10.222.0.0/24"], nodeMaskSize: 24 });
    // Values that drop a range do not describe this pool's growth: the annotation keeps the last that did.
    expect(after.metadata?.annotations?.[CONFIGURED_CIDRS_ANNOTATION]).toBe("10.220.0.0/24,10.221.0.0/24,fd00:10:220::/56");
    expect({ u1: await cidrsOf("u-1"), u2: await cidrsOf("u-2") }).toEqual(dualStack);
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
  });

  it("does not take a range another pool holds, nor grow a pool by values that replace its ranges", async () => {
    await fx.api().custom.createClusterCustomObject({ ...pools, body: { apiVersion: "podnet.io/v1alpha1", kind: "PodCIDRPool", metadata: { name: "rack-b" },
      spec: { ipv4: { cidrs: ["10.226.0.0/23"], nodeMaskSize: 24 }, nodeSelector: { rack: "b" } } } });
    await createNodes(fx.api(), [{ name: "a-1", ip: "192.168.74.1" }, { name: "b-1", ip: "192.168.74.2", labels: { rack: "b" } }]);
    await withController({ "cluster-cidr": "10.225.0.0/24" }, async () => {
      await until("both allocated", async () => ((await cidrsOf("a-1")).length && (await cidrsOf("b-1")).length ? true : undefined));
    });
    // Values naming the whole pod network, rack-b's range included: that range is not appended (it would make
    // both pools' copies invalid for good), and rack-b goes on serving its nodes.
    await withController({ "cluster-cidr": "10.225.0.0/24,10.226.0.0/23" }, async () => {
      const overlap = await until("ConfiguredRangeOverlaps", async () => { const e = await poolEvents("ConfiguredRangeOverlaps"); return e.length ? e : undefined; });
      expect(overlap).toEqual(["--cluster-cidr 10.226.0.0/23 overlaps 10.226.0.0/23 of pool rack-b and is not added to pool upg: configure ranges no pool or service uses"]);
      await createNodes(fx.api(), [{ name: "b-2", ip: "192.168.74.3", labels: { rack: "b" } }]);
      await until("b-2 allocated by rack-b", async () => ((await cidrsOf("b-2")).length ? true : undefined));
    });
    expect((await readPool()).spec.ipv4?.cidrs).toEqual(["10.225.0.0/24"]);

    // An upgrade that lost its `--set` falls back to another range: nothing is appended, and it says why. The
    // annotation stays, so the next start does not take the fallback for growth either.
    for (let start = 0; start < 2; start++) {
      await withController({ "cluster-cidr": "10.227.0.0/24" }, async (controller) => {
        // Said by this start: one Event more than the starts before made.
        await until("ConfiguredRangeNotAdded", async () => ((await poolEvents("ConfiguredRangeNotAdded")).length > start ? true : undefined));
        await until("the pass that checked, done", async () => (controller.plans > 0 ? true : undefined));
      });
      const pool = await readPool();
      expect(pool.spec.ipv4?.cidrs).toEqual(["10.225.0.0/24"]);
      expect(pool.metadata?.annotations?.[CONFIGURED_CIDRS_ANNOTATION]).toBe("10.225.0.0/24,10.226.0.0/23");
    }
    expect([...new Set(await poolEvents("ConfiguredRangeNotAdded"))]).toEqual([ // said again by each start
      "--cluster-cidr 10.227.0.0/24 is not added to pool upg: the configuration no longer names 10.225.0.0/24, 10.226.0.0/23, so it replaces the pool's ranges rather than adding to them; name those too to grow the pool",
    ]);
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
  });

  it("is not created over a pool that exists before the controller's first start; with a range of its own, it is, without the other's", async () => {
    // A pool applied from Git before podnet's controller first came up, on the range the flags also name.
    await fx.api().custom.createClusterCustomObject({ ...pools, body: { apiVersion: "podnet.io/v1alpha1", kind: "PodCIDRPool", metadata: { name: "team" },
      spec: { ipv4: { cidrs: ["10.228.0.0/16"], nodeMaskSize: 24 }, nodeSelector: { team: "a" } } } });
    await createNodes(fx.api(), [{ name: "t-1", ip: "192.168.75.1", labels: { team: "a" } }, { name: "t-2", ip: "192.168.75.2" }]);
    await withController({ "cluster-cidr": "10.228.0.0/16" }, async (controller) => {
      expect(await until("t-1 allocated by team", async () => { const c = await cidrsOf("t-1"); return c.length ? c : undefined; })).toEqual(["10.228.0.0/24"]);
      const said = await until("DefaultPoolNotCreated", async () => {
        const e = (await eventsFor(fx.api(), "PodCIDRPool", "team")).filter((x) => x.reason === "DefaultPoolNotCreated");
        return e.length ? e.map((x) => x.message) : undefined;
      });
      expect(said).toEqual(["default pool upg not created: no IPv4 range is left for it, so none of its ranges is used until team gives it up (--cluster-cidr 10.228.0.0/16 overlaps 10.228.0.0/16 of pool team and is left out of pool upg: configure ranges no other pool uses)"]);
      // Later passes (another team Node joining) do not say it again.
      const plans = controller.plans;
      await createNodes(fx.api(), [{ name: "t-3", ip: "192.168.75.3", labels: { team: "a" } }]);
      await until("t-3 allocated by team", async () => ((await cidrsOf("t-3")).length ? true : undefined));
      expect(controller.plans).toBeGreaterThan(plans);
      expect((await eventsFor(fx.api(), "PodCIDRPool", "team")).filter((x) => x.reason === "DefaultPoolNotCreated").map((x) => x.count ?? 1)).toEqual([1]);
      const team = (await fx.api().custom.getClusterCustomObject({ ...pools, name: "team" })) as { status?: { conditions?: Array<{ type: string; status: string }> } };
      expect(team.status?.conditions?.find((c) => c.type === "Valid")?.status).toBe("True");
    });
    await fx.api().custom.getClusterCustomObject({ ...pools, name: "upg" }).then(() => { throw new Error("upg was created"); }, () => undefined);

    // Values with a range of the default pool's own as well: created with it alone, and the clash said on it.
    await withController({ "cluster-cidr": "10.228.0.0/16,10.229.0.0/24" }, async () => {
      expect(await until("t-2 allocated by upg", async () => { const c = await cidrsOf("t-2"); return c.length ? c : undefined; })).toEqual(["10.229.0.0/24"]);
      // (The file's earlier test left Events of its own on a pool of this name.)
      expect(await until("ConfiguredRangeOverlaps", async () => { const e = (await poolEvents("ConfiguredRangeOverlaps")).filter((m) => m?.includes("team")); return e.length ? e : undefined; }))
        .toEqual(["--cluster-cidr 10.228.0.0/16 overlaps 10.228.0.0/16 of pool team and is left out of pool upg: configure ranges no other pool uses"]);
    });
    const upg = await readPool();
    expect(upg.spec.ipv4?.cidrs).toEqual(["10.229.0.0/24"]);
    expect(upg.metadata?.annotations?.[CONFIGURED_CIDRS_ANNOTATION]).toBe("10.228.0.0/16,10.229.0.0/24");
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
  });
});
