import { describe, expect, it } from "vitest";
import type { CoreV1Event } from "@kubernetes/client-node";
import { apiMessage, apiStatus, applyStatus, type KubeApi, mergePatch, podnetResource } from "../../src/lib/k8s.js";
import { AllocationController } from "../../src/controllers/controller.js";
import { DefaultPoolKeeper } from "../../src/controllers/default-pool-keeper.js";
import { controllerConfigSchema } from "../../src/config.js";
import { newEventBody } from "../../src/lib/event-series.js";
import { EventRecorder } from "../../src/lib/events.js";
import type { PoolObject } from "../../src/controllers/observe.js";
import { silentLogger } from "../../src/log.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { chartTokens, tokenApi, useChartInstall } from "../harness/chart-install.js";

// The chart's Events rules (RBAC in namespace default, podnet-events-count-only, podnet-events-own-name) and the
// default pool's, with the service accounts' own tokens (install-tokens.test.ts: Nodes, NodeCIDRs, Leases).
const fx = useControlPlane();

describe("helm install onto the real API server: Events and pools", () => {
  useChartInstall(fx);

  const { agentApi, controllerApi } = chartTokens(fx);

  it("both tokens write Events in namespace default only; the controller's edits the default pool's spec and no other pool's, and every pool's status", async () => {
    const admin = fx.api();
    const controller = await controllerApi();
    const agent = await agentApi();
    const target = { kind: "Node" as const, name: "node-a" };
    const recorders: EventRecorder[] = [];
    for (const [api, component] of [[controller, "podnet-controller"], [agent, "podnet-agent"]] as const) {
      const inDefault = new EventRecorder(api, component, silentLogger(), { intervalMs: 0, instance: "node-a" });
      recorders.push(inDefault);
      expect(await inDefault.emit(target, "Normal", "Test", "in default")).toBe("sent");
      // Written again: counted on the same Event (RBAC patch, held by podnet-events-count-only).
      expect(await inDefault.emit(target, "Normal", "Test", "in default")).toBe("sent");
      expect(inDefault.written, component).toBe(2);
      expect((await admin.core.listNamespacedEvent({ namespace: "default", fieldSelector: "involvedObject.name=node-a,reason=Test" })).items
        .filter((e) => e.reportingComponent === `podnet.io/${component}`).map((e) => e.count), component).toEqual([2]);
      // Events of cluster-scoped objects (all podnet writes) go to default; one about a Pod may go to its namespace.
      const elsewhere = await api.core.createNamespacedEvent({ namespace: "kube-system", body: { metadata: { generateName: "forged." },
        involvedObject: { kind: "Pod", apiVersion: "v1", namespace: "kube-system", name: "kube-apiserver-node-a" }, reason: "Forged", message: "forged", type: "Warning" } })
        .then(() => undefined, (e: unknown) => e);
      expect(apiStatus(elsewhere), component).toBe(403);
    }
    // A patch may count, not rewrite: neither token changes an Event's message, and the agent's touches no Event it did not report.
    const [ofController, ofAgent] = await Promise.all(["podnet-controller", "podnet-agent"].map(async (component) =>
      (await admin.core.listNamespacedEvent({ namespace: "default", fieldSelector: "involvedObject.name=node-a,reason=Test" })).items.find((e) => e.reportingComponent === `podnet.io/${component}`)!.metadata!.name!));
    const patchEvent = (api: KubeApi, name: string, body: object) => api.core.patchNamespacedEvent({ name, namespace: "default", body }, mergePatch()).then(() => undefined, (e: unknown) => e);
    let attempt = 0; // each a new message: the API server loads the policy a moment after the install
    await waitFor("the Event policy in force", () => patchEvent(controller, ofController!, { message: `rewritten ${++attempt}` }), 20_000, 100);
    for (const recorder of recorders) expect(await recorder.emit(target, "Normal", "Test", "in default")).toBe("sent"); // counted under the policy
    const counts = (await admin.core.listNamespacedEvent({ namespace: "default", fieldSelector: "involvedObject.name=node-a,reason=Test" })).items.map((e) => e.count);
    expect(counts.sort()).toEqual([3, 3]);
    for (const [api, name] of [[controller, ofController!], [agent, ofAgent!]] as const) {
      const rewritten = await patchEvent(api, name, { message: "rewritten" });
      expect([apiStatus(rewritten), apiMessage(rewritten)]).toEqual([403, expect.stringContaining("may change only the count and lastTimestamp")]);
    }
    const others = await patchEvent(agent, ofController!, { count: 9 });
    expect([apiStatus(others), apiMessage(others)]).toEqual([403, expect.stringContaining("podnet-agent on node node-a may change only Events it reported")]);
    const fromAnotherNode = await admin.core.createNamespacedEvent({ namespace: "default", body: { ...(await admin.core.readNamespacedEvent({ name: ofAgent!, namespace: "default" })),
      metadata: { generateName: "node-b." }, reportingInstance: "node-b" } });
    expect(apiStatus(await patchEvent(agent, fromAnotherNode.metadata!.name!, { count: 9 }))).toBe(403);

    // A node name past 128 characters (253 are legal): the agent's reportingInstance holds its first 128, and the
    // policy compares with the same cut of the token's node; compared whole, every repeat met 403 and never counted.
    const longName = `${"a".repeat(60)}.${"b".repeat(60)}.${"c".repeat(20)}`;
    await admin.core.createNode({ body: { metadata: { name: longName } } });
    const longPod = await admin.core.createNamespacedPod({ namespace: "kube-system", body: {
      metadata: { name: "podnet-agent-long" }, spec: { serviceAccountName: "podnet-agent", nodeName: longName, containers: [{ name: "agent", image: "podnet:test" }] } } });
    const longAgent = new EventRecorder(await tokenApi(fx, "podnet-agent", { name: longPod.metadata!.name!, uid: longPod.metadata!.uid! }), "podnet-agent", silentLogger(),
      { intervalMs: 0, instance: longName, host: longName });
    for (let i = 0; i < 3; i++) expect(await longAgent.emit({ kind: "Node", name: longName }, "Warning", "Test", "long name")).toBe("sent");
    expect((await admin.core.listNamespacedEvent({ namespace: "default", fieldSelector: "reason=Test" })).items
      .filter((e) => e.involvedObject.name === longName).map((e) => e.count)).toEqual([3]);

    // The default pool's keeper with the controller's token: created from the flags, then grown by an upgrade's range.
    const shell = new AllocationController(controller, controllerConfigSchema.parse({ "metrics-address": "127.0.0.1:0", "leader-elect": "false" }), silentLogger());
    const keeper = (clusterCidr: string, recorder = new EventRecorder(controller, "podnet-controller", silentLogger())) => new DefaultPoolKeeper({ api: controller, pools: shell.pools,
      config: controllerConfigSchema.parse({ "cluster-cidr": clusterCidr, "leader-elect": "false" }), log: silentLogger(), recorder, metrics: shell.metrics, mayWrite: () => true });
    await keeper("10.244.0.0/16").ensure();
    const recorder = new EventRecorder(controller, "podnet-controller", silentLogger());
    await keeper("10.244.0.0/16,10.245.0.0/16", recorder).ensure();
    expect((await shell.metrics.errors.get()).values.reduce((n, v) => n + v.value, 0)).toBe(0);
    const pools = podnetResource("podcidrpools");
    expect(((await admin.custom.getClusterCustomObject({ ...pools, name: "default" })) as PoolObject).spec?.ipv4?.cidrs).toEqual(["10.244.0.0/16", "10.245.0.0/16"]);
    expect(recorder.written).toBe(1); // RangesAdded

    await admin.custom.createClusterCustomObject({ ...pools, body: { apiVersion: "podnet.io/v1alpha1", kind: "PodCIDRPool", metadata: { name: "team-a" },
      spec: { ipv4: { cidrs: ["10.246.0.0/16"], nodeMaskSize: 24 } } } });
    const grow = await controller.custom.patchClusterCustomObject({ ...pools, name: "team-a", body: { spec: { ipv4: { cidrs: ["10.246.0.0/16", "10.247.0.0/16"] } } } }, mergePatch())
      .then(() => undefined, (e: unknown) => e);
    expect(apiStatus(grow)).toBe(403);
    await applyStatus(controller, "podcidrpools", "team-a", "PodCIDRPool", { observedGeneration: 1 }); // pool-status.ts's write
  });

  it("each token creates Events only under its own name, and an agent's only from its own node about NodeCIDRs or its own Node", async () => {
    const agent = await agentApi();
    const controller = await controllerApi();
    const create = (api: KubeApi, body: CoreV1Event) => api.core.createNamespacedEvent({ namespace: "default", body }).then(() => undefined, (e: unknown) => e);
    const asAgent = newEventBody({ kind: "NodeCIDR", name: "10-244-1-0-24" }, "Warning", "Forged", "forged", new Date(), { component: "podnet-agent", instance: "node-a", host: "node-a" }, "default");
    const asController = newEventBody({ kind: "Node", name: "node-b" }, "Warning", "Forged", "forged", new Date(), { component: "podnet-controller", instance: "replica-1" }, "default");
    const inControllersName = { ...asAgent, reportingComponent: "podnet.io/podnet-controller", source: { component: "podnet-controller" } };
    // The API server loads the policy a moment after the install: each attempt that goes through is one more Event.
    await waitFor("the Event create policy in force", async () => ((await create(agent, inControllersName)) ? true : undefined), 20_000, 100);
    const refused = await create(agent, inControllersName);
    expect([apiStatus(refused), apiMessage(refused)]).toEqual([403, expect.stringContaining("podnet-agent may report Events only as podnet.io/podnet-agent")]);
    for (const forged of [
      { ...asAgent, involvedObject: { kind: "Node", apiVersion: "v1", name: "node-b" } },
      { ...asAgent, involvedObject: { kind: "Pod", apiVersion: "v1", namespace: "default", name: "web" } },
      { ...asAgent, reportingInstance: "node-b" },
      { ...asAgent, source: { component: "podnet-agent", host: "node-b" } },
    ]) {
      const err = await create(agent, forged);
      expect([apiStatus(err), apiMessage(err)], JSON.stringify(forged.involvedObject)).toEqual([403, expect.stringContaining("podnet-agent on node node-a may report Events only from its own node")]);
    }
    const controllerAsAgent = await create(controller, { ...asController, reportingComponent: "podnet.io/podnet-agent", source: { component: "podnet-agent" } });
    expect(apiStatus(controllerAsAgent)).toBe(403);
    // What each sends: through.
    expect(await create(agent, asAgent)).toBeUndefined();
    expect(await create(agent, { ...asAgent, involvedObject: { kind: "Node", apiVersion: "v1", name: "node-a" } })).toBeUndefined();
    expect(await create(controller, asController)).toBeUndefined();
    // A patch of its own Event may count, not pin it with a finalizer or label it.
    const own = (await fx.api().core.listNamespacedEvent({ namespace: "default", fieldSelector: "reason=Forged" })).items
      .find((e) => e.reportingComponent === "podnet.io/podnet-agent" && e.involvedObject.kind === "NodeCIDR")!;
    for (const metadata of [{ finalizers: ["example.com/keep"] }, { labels: { x: "y" } }]) {
      const pinned = await agent.core.patchNamespacedEvent({ name: own.metadata!.name!, namespace: "default", body: { metadata } }, mergePatch()).then(() => undefined, (e: unknown) => e);
      expect([apiStatus(pinned), apiMessage(pinned)], JSON.stringify(metadata)).toEqual([403, expect.stringContaining("may change only the count and lastTimestamp")]);
    }
  });
});
