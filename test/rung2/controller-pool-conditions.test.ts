import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import type { AllocationController } from "../../src/controllers/controller.js";
import type { PoolObject } from "../../src/controllers/observe.js";
import type { Condition } from "../../src/crds/common.js";
import { mergePatch, podnetResource } from "../../src/lib/k8s.js";
import { kubeBin } from "../../src/localcluster/kube-bins.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, createNodes, eventsFor, invariantViolations, listNodeCidrs } from "../harness/cluster-objects.js";
import { recordsOfNode, startController, stopAndEmptyAfterEach, until } from "../harness/controller-fixture.js";

// What a pool's status tells its author: which pool serves the Nodes no selector matches, and whether it is Ready.
const fx = useControlPlane();
const pools = podnetResource("podcidrpools");
let controller: AllocationController | undefined;
stopAndEmptyAfterEach(fx, () => controller, () => { controller = undefined; });

const readPool = async (name: string) => (await fx.api().custom.getClusterCustomObject({ ...pools, name })) as PoolObject & { metadata: { generation: number; creationTimestamp: string } };
const conditionOf = async (pool: string, type: string) => ((await readPool(pool)).status?.conditions as Condition[] | undefined)?.find((c) => c.type === type);
const createPool = (name: string, spec: object) => fx.api().custom.createClusterCustomObject({ ...pools, body: { apiVersion: "podnet.io/v1alpha1", kind: "PodCIDRPool", metadata: { name }, spec } });
const cidrsOf = async (node: string) => allocated(await recordsOfNode(fx, node)).map((r) => `${r.spec.pool} ${r.spec.cidr}`).sort();
const warnings = async (pool: string) => (await eventsFor(fx.api(), "PodCIDRPool", pool)).filter((e) => e.type === "Warning").map((e) => `${e.reason}: ${e.message}`);
// Not execFileSync: the controller runs in this process, and would stand still while kubectl waits on it.
const kubectl = async (...args: string[]) => (await promisify(execFile)(kubeBin("kubectl"), [`--kubeconfig=${fx.cp.kubeconfig}`, ...args], { encoding: "utf8" })).stdout;

describe("controller on the real API server: pools without a nodeSelector, and pool conditions", () => {
  it("the oldest pool without a nodeSelector that can serve takes the Nodes no selector matches; a newer one (sorting first) takes none and says why", async () => {
    // Applied before the controller came up, so older than its default pool: its only range is over the service
    // CIDR. By name it was the catch-all, and every Node waited on it (PodCIDRNotAvailable) although ca-main could serve.
    await createPool("ca-first", { ipv4: { cidrs: ["10.96.0.0/16"], nodeMaskSize: 24 } });
    controller = await startController(fx, { "cluster-cidr": "10.216.0.0/16,fd00:10:216::/56", "default-pool": "ca-main" });
    await createNodes(fx.api(), [{ name: "ca-1", ip: "192.168.81.1" }]);
    expect(await until("ca-1 dual-stack", async () => ((await cidrsOf("ca-1")).length === 2 ? cidrsOf("ca-1") : undefined)))
      .toEqual(["ca-main 10.216.0.0/24", expect.stringMatching(/^ca-main fd00:10:216:[0-9a-f:]*\/64$/)]);
    const first = await until("ca-first passed over", async () => ((await conditionOf("ca-first", "Valid"))?.message.includes("ca-main") ? conditionOf("ca-first", "Valid") : undefined));
    expect(first).toMatchObject({ status: "False", reason: "InvalidRanges",
      message: "10.96.0.0/16 overlaps the service CIDR 10.96.0.0/12; until each of its families has a valid range, pool ca-main serves the Nodes no pool's nodeSelector matches" });

    // An IPv4-only pool without a nodeSelector, applied later (creationTimestamp has whole seconds: one later), whose
    // name sorts before ca-main's: by name it took every new Node, IPv4-only for good, with ca-main still Valid.
    const mainCreated = Date.parse((await readPool("ca-main")).metadata.creationTimestamp);
    await until("a second past ca-main's creation", async () => (Date.now() >= mainCreated + 1_100 ? true : undefined));
    await createPool("ca-extra", { ipv4: { cidrs: ["10.217.0.0/16"], nodeMaskSize: 24 } });
    const extra = await until("ca-extra says it serves no Node", async () => ((await conditionOf("ca-extra", "Valid"))?.status === "False" ? conditionOf("ca-extra", "Valid") : undefined));
    expect(extra).toMatchObject({ reason: "AnotherCatchAllPool", message: "pool ca-main serves the Nodes no pool's nodeSelector matches, being the oldest pool without a nodeSelector that has "
      + "a valid range in each of its families; this pool has none either and serves no Node (those that hold a CIDR from it keep it): give it a nodeSelector, or delete it" });
    expect(await conditionOf("ca-extra", "Ready")).toMatchObject({ status: "False", reason: "AnotherCatchAllPool" });
    expect(await until("ca-extra's Warning", async () => { const w = await warnings("ca-extra"); return w.length ? w : undefined; }))
      .toEqual([`AnotherCatchAllPool: ${extra!.message}`]);
    await createNodes(fx.api(), [{ name: "ca-2", ip: "192.168.81.2" }]);
    expect(await until("ca-2 dual-stack", async () => ((await cidrsOf("ca-2")).length === 2 ? cidrsOf("ca-2") : undefined)))
      .toEqual(["ca-main 10.216.1.0/24", expect.stringMatching(/^ca-main fd00:10:216:[0-9a-f:]*\/64$/)]);
    expect(await conditionOf("ca-main", "Valid")).toMatchObject({ status: "True",
      message: "all ranges usable; serves the Nodes no pool's nodeSelector matches in place of older pool ca-first, which lacks a valid range in a family" });
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
  });

  it("Ready sums up Valid and Exhausted for `kubectl wait`, at the pool's generation; Valid turning False warns once", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.218.0.0/24", "default-pool": "rd" });
    await until("rd created", async () => readPool("rd").catch(() => undefined)); // kubectl wait fails on a pool not there yet
    await kubectl("wait", "--for=condition=Ready", "pcpool/rd", "--timeout=20s");
    expect(await kubectl("get", "pcpool", "rd")).toMatch(/^NAME\s+IPV4\s+V4-USED\s+V4-FREE\s+IPV6\s+V6-USED\s+V6-FREE\s+READY\s+VALID\s+EXHAUSTED\s+AGE\n/);
    // Room for one node's /24: the second waits, and the pool is not Ready until it grows.
    await createNodes(fx.api(), [{ name: "rd-1", ip: "192.168.82.1" }, { name: "rd-2", ip: "192.168.82.2" }]);
    const full = await until("rd not Ready", async () => ((await conditionOf("rd", "Ready"))?.status === "False" ? conditionOf("rd", "Ready") : undefined));
    expect(full).toMatchObject({ reason: "NoFreeCIDR", message: "Exhausted: 1 node(s) wait for a CIDR; add a range to spec to grow the pool", observedGeneration: 1 });
    await fx.api().custom.patchClusterCustomObject({ ...pools, name: "rd", body: { spec: { ipv4: { cidrs: ["10.218.0.0/24", "10.218.1.0/24"], nodeMaskSize: 24 } } } }, mergePatch());
    await kubectl("wait", "--for=condition=Ready", "pcpool/rd", "--timeout=20s");
    expect(await conditionOf("rd", "Ready")).toMatchObject({ status: "True", reason: "ValidAndNotExhausted", observedGeneration: 2 });

    // A pool with a range over the service CIDR: Valid and Ready False, and one Warning for it, not one per plan.
    await createPool("rd-bad", { ipv4: { cidrs: ["10.96.0.0/16"], nodeMaskSize: 24 }, nodeSelector: { "podnet.io/zone": "bad" } });
    const ready = await until("rd-bad not Ready", async () => conditionOf("rd-bad", "Ready"));
    expect(ready).toMatchObject({ status: "False", reason: "InvalidRanges", message: "Valid: 10.96.0.0/16 overlaps the service CIDR 10.96.0.0/12" });
    expect(await until("rd-bad's Warning", async () => { const w = await warnings("rd-bad"); return w.length ? w : undefined; }))
      .toEqual(["InvalidRanges: 10.96.0.0/16 overlaps the service CIDR 10.96.0.0/12"]);
    const plans = controller.plans;
    await createNodes(fx.api(), [{ name: "rd-3", ip: "192.168.82.3", labels: { "podnet.io/zone": "bad" } }]); // waits on rd-bad: its status is written again
    await until("rd-bad's status written again", async () => ((await conditionOf("rd-bad", "Exhausted"))?.status === "True" && controller!.plans > plans + 1 ? true : undefined));
    expect(await warnings("rd-bad")).toHaveLength(1);
  });
});
