import type { KubernetesObject } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { controllerConfigSchema } from "../../src/config.js";
import { applyActions } from "../../src/controllers/act.js";
import { AllocationController } from "../../src/controllers/controller.js";
import type { NodeCidrObject } from "../../src/controllers/observe.js";
import type { AllocationAction } from "../../src/controllers/plan.js";
import { RetryGate } from "../../src/lib/backoff.js";
import { EventRecorder } from "../../src/lib/events.js";
import { mergePatch, podnetResource } from "../../src/lib/k8s.js";
import { silentLogger } from "../../src/log.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { createNodes } from "../harness/cluster-objects.js";

// The act shell on its own, given a plan's actions: what it sends, in which order, and what it retries.
const fx = useControlPlane();
const nodecidrs = podnetResource("nodecidrs");
type Rec = NodeCidrObject & KubernetesObject;

function shell(planned: Rec[] = []) {
  const api = fx.api("podnet-controller");
  const controller = new AllocationController(api, controllerConfigSchema.parse({ "metrics-address": "127.0.0.1:0", "leader-elect": "false" }), silentLogger());
  const retry = new RetryGate();
  const ctx = { api, nodes: controller.nodes, records: controller.records, recorder: new EventRecorder(api, "test", silentLogger()), metrics: controller.metrics,
    log: silentLogger(), planned: new Map(planned.map((r) => [r.metadata!.name!, r])), leading: () => true, retry };
  const count = async (metric: typeof controller.metrics.errors) => (await metric.get()).values.reduce((n, v) => n + v.value, 0);
  return { ctx, retry, errors: () => count(controller.metrics.errors), writes: () => count(controller.metrics.apiWrites) };
}

const create = (node: string, cidr: string, pool = "p"): AllocationAction => ({ kind: "create", node, nodeUID: "", cidr, family: 4, pool, nodeIPs: [], adopted: false });
const read = async (name: string) => fx.api().custom.getClusterCustomObject({ ...nodecidrs, name }) as Promise<Rec>;
const makeRecord = async (name: string, cidr: string) => fx.api("podnet-controller").custom.createClusterCustomObject({ ...nodecidrs, body: {
  apiVersion: "podnet.io/v1alpha1", kind: "NodeCIDR", metadata: { name }, spec: { nodeName: "n", cidr, family: "IPv4", pool: "p", nodeIPs: ["192.168.90.1"] },
} }) as Promise<Rec>;
/** A pool name over the schema's 253 characters: the API server refuses the create (422), every time. */
const refusedPool = "p".repeat(300);

describe("applyActions on the real API server", () => {
  it("writes to one record in one plan go one after the other, each on the version the one before produced", async () => {
    const planned = await makeRecord("10-233-0-0-24", "10.233.0.0/24");
    const { ctx, errors } = shell([planned]);
    // Both planned on the version read: sent side by side, the second would meet a 409 and wait for another plan.
    await applyActions(ctx, [{ kind: "stampNodeUID", name: "10-233-0-0-24", nodeUID: "uid-n" }, { kind: "updateNodeIPs", name: "10-233-0-0-24", nodeIPs: ["192.168.90.2"] }]);
    expect((await read("10-233-0-0-24")).spec).toMatchObject({ nodeUID: "uid-n", nodeIPs: ["192.168.90.2"] });
    expect(await errors()).toBe(0);
  });

  it("hands out CIDRs first when writes queue: a create goes before the follow-up writes listed ahead of it", async () => {
    await createNodes(fx.api(), [{ name: "first-1", ip: "192.168.91.1" }]);
    const planned = await makeRecord("10-233-1-0-24", "10.233.1.0/24");
    const { ctx } = shell([planned]);
    await applyActions(ctx, [
      { kind: "setNodePodCIDRs", node: "first-1", nodeUID: "", cidrs: ["10.233.9.0/24"] },
      { kind: "updateNodeIPs", name: "10-233-1-0-24", nodeIPs: ["192.168.91.9"] },
      create("first-2", "10.233.2.0/24"),
    ], 1);
    // resourceVersions are etcd's revisions: their order is the order the writes landed in.
    const node = Number((await fx.api().core.readNode({ name: "first-1" })).metadata!.resourceVersion);
    const spec = Number((await read("10-233-1-0-24")).metadata!.resourceVersion);
    const created = (await fx.api().custom.listClusterCustomObject({ ...nodecidrs, fieldSelector: "spec.nodeName=first-2" }) as { items: Rec[] }).items[0]!;
    // Its status write comes with the create (the record's version is the status write's): both before the rest.
    expect(Number(created.metadata!.resourceVersion)).toBeLessThan(spec);
    expect(spec).toBeLessThan(node);
  });

  it("a write the server refuses waits its backoff while others go ahead; dropped from the plan, it is forgotten and sent at once when planned again", async () => {
    const { ctx, retry, errors } = shell();
    const refused = create("retry-1", "10.233.3.0/24", refusedPool);
    // Creates that went through: they may free more work at once, so the caller plans again without waiting.
    expect(await applyActions(ctx, [refused, create("retry-2", "10.233.4.0/24")])).toBe(1);
    expect(await errors()).toBe(1);
    expect(await applyActions(ctx, [refused])).toBe(0); // the next plan, a moment later: not sent again
    expect(await errors()).toBe(1);
    // The node went (or its plan changed): nothing of it is kept, no wake-up is due for it.
    await applyActions(ctx, []);
    expect(retry.nextRetryAt()).toBeUndefined();
    // Back in a plan: tried at once (refused again), not after a backoff left from before.
    await applyActions(ctx, [refused]);
    expect(await errors()).toBe(2);
  });

  it("a write that meets a record changed since the plan read it (409) is neither failed nor backed off", async () => {
    const planned = await makeRecord("10-233-5-0-24", "10.233.5.0/24");
    // Someone's write since (a successor's, a person's): the plan's version is stale.
    await fx.api().custom.patchClusterCustomObject({ ...nodecidrs, name: "10-233-5-0-24", body: { spec: { nodeIPs: ["192.168.92.1"] } } }, mergePatch());
    const { ctx, retry, errors } = shell([planned]);
    const action: AllocationAction = { kind: "stampNodeUID", name: "10-233-5-0-24", nodeUID: "u5" };
    expect(await applyActions(ctx, [action])).toBe(0);
    expect(await errors()).toBe(0);
    expect(retry.nextRetryAt()).toBeUndefined();
    expect((await read("10-233-5-0-24")).spec.nodeUID).toBeUndefined();
  });

  it("a Node deleted since the plan is neither failed nor backed off: podCIDRs fill and node condition alike", async () => {
    const { ctx, retry, errors, writes } = shell();
    expect(await applyActions(ctx, [
      { kind: "setNodePodCIDRs", node: "gone-1", nodeUID: "", cidrs: ["10.233.11.0/24"] },
      { kind: "nodeCondition", node: "gone-2", status: "False", reason: "PodCIDRConflict", message: "m", lastTransitionTime: new Date().toISOString() },
    ])).toBe(0);
    expect(await writes()).toBe(2); // both were sent, and the API server answered 404
    expect(await errors()).toBe(0);
    expect(retry.nextRetryAt()).toBeUndefined();
  });

  it("counts only the creates and deletes that went through as unblocking", async () => {
    const doomed = await makeRecord("10-233-6-0-24", "10.233.6.0/24");
    const kept = await makeRecord("10-233-7-0-24", "10.233.7.0/24");
    const { ctx } = shell([doomed, kept]);
    expect(await applyActions(ctx, [
      { kind: "delete", name: "10-233-6-0-24" }, create("count-1", "10.233.8.0/24"), create("count-2", "10.233.10.0/24", refusedPool),
      { kind: "stampNodeUID", name: "10-233-7-0-24", nodeUID: "u7" },
    ])).toBe(2);
  });
});
