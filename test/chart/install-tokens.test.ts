import { describe, expect, it } from "vitest";
import type { KubernetesObject } from "@kubernetes/client-node";
import { apiMessage, apiStatus, applyStatus, mergePatch, podnetResource, strategicMergePatch } from "../../src/lib/k8s.js";
import { LeaderElector } from "../../src/lib/leader.js";
import { AllocationController } from "../../src/controllers/controller.js";
import { applyActions } from "../../src/controllers/act.js";
import { controllerConfigSchema } from "../../src/config.js";
import { RetryGate } from "../../src/lib/backoff.js";
import { EventRecorder } from "../../src/lib/events.js";
import type { Informer } from "../../src/lib/informer.js";
import { kubeTime } from "../../src/lib/conditions.js";
import type { NodeCidrObject } from "../../src/controllers/observe.js";
import { reportStatus, StatusPacing } from "../../src/node-agent/agent-status.js";
import { silentLogger } from "../../src/log.js";
import { clearNetworkUnavailable } from "../../src/node-agent/node-network-condition.js";
import { putNodeCidr } from "../harness/agent-fixture.js";
import { kubeletReportedStatus } from "../harness/cluster-objects.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { chartTokens, useChartInstall } from "../harness/chart-install.js";

// The chart's service-account tokens against its RBAC and admission policies; the install itself, its objects
// and the RBAC table are in install.test.ts (a control plane of their own).
const fx = useControlPlane();

describe("helm install onto the real API server", () => {
  useChartInstall(fx);

  /** Node status fields past the ones a policy could list when it was written (1.30 and later). */
  const kubeletRuntimeStatus = {
    runtimeHandlers: [{ name: "runc", features: { recursiveReadOnlyMounts: true, userNamespaces: true } }],
    features: { supplementalGroupsPolicy: true },
  };
  /** Each status field other than conditions changed, added or taken away. */
  const statusForgeries = [
    { status: { runtimeHandlers: [{ name: "runc", features: { recursiveReadOnlyMounts: true, userNamespaces: true } }, { name: "forged", features: { userNamespaces: true } }] } },
    { status: { runtimeHandlers: null } },
    { status: { features: { supplementalGroupsPolicy: false } } },
    { status: { features: null } },
    // A nodes/status write keeps metadata (only spec is reset): labels kubelets may not set (NodeRestriction),
    // annotations, a finalizer that pins the Node, an owner the garbage collector would delete it for.
    { metadata: { labels: { "node-restriction.kubernetes.io/secure": "true" } } },
    { metadata: { annotations: { "example.com/x": "y" } } },
    { metadata: { finalizers: ["example.com/hold"] } },
    { metadata: { ownerReferences: [{ apiVersion: "v1", kind: "Namespace", name: "gone", uid: "00000000-0000-0000-0000-000000000001" }] } },
  ]; // (status.config, the old dynamic kubelet config's, the API server drops on every write)
  const { agentApi, controllerApi } = chartTokens(fx);

  it("an agent token bound to a pod on node-a may write node-a's NodeCIDR status and not node-b's", async () => {
    const admin = fx.api();
    const agent = await agentApi();
    await putNodeCidr(admin, "node-a", "10.244.1.0/24", ["192.168.1.1"]);
    await putNodeCidr(admin, "node-b", "10.244.2.0/24", ["192.168.1.2"]);
    const own = await applyStatus(agent, "nodecidrs", "10-244-1-0-24", "NodeCIDR", { agent: { routesInstalled: 1 } });
    expect((own as { status: { agent: { routesInstalled: number } } }).status.agent.routesInstalled).toBe(1);
    const denied = await applyStatus(agent, "nodecidrs", "10-244-2-0-24", "NodeCIDR", { agent: { routesInstalled: 1 } }).then(() => undefined, (e: unknown) => e);
    expect(apiStatus(denied)).toBe(403);
    expect(apiMessage(denied)).toContain("podnet-agent on node node-a may only write NodeCIDRs of its own node, not node-b");
  });
  it("the same token may clear node-a's NetworkUnavailable condition and change nothing else of any Node", async () => {
    const admin = fx.api();
    const agent = await agentApi();
    const marked = (status: string, reason: string) => ({ status: { conditions: [{ type: "NetworkUnavailable", status, reason, message: reason, lastTransitionTime: new Date() }] } });
    // All a kubelet reports, runtime handlers and features included: clearing the condition leaves each as it is.
    for (const name of ["node-a", "node-b"]) {
      await admin.core.patchNodeStatus({ name, body: { status: { ...kubeletReportedStatus(name), ...kubeletRuntimeStatus } } }, mergePatch());
      await admin.core.patchNodeStatus({ name, body: marked("True", "NoRouteCreated") }, strategicMergePatch());
    }
    const errorOf = (name: string, body: object) => agent.core.patchNodeStatus({ name, body }, strategicMergePatch()).then(() => undefined, (e: unknown) => e);

    expect(await clearNetworkUnavailable(agent, "node-a", silentLogger())).toBe("cleared");
    expect((await admin.core.readNode({ name: "node-a" })).status?.conditions?.find((c) => c.type === "NetworkUnavailable")).toMatchObject({ status: "False", reason: "PodnetIsUp" });

    const otherNode = await errorOf("node-b", marked("False", "PodnetIsUp"));
    expect(apiStatus(otherNode)).toBe(403);
    expect(apiMessage(otherNode)).toContain("podnet-agent on node node-a may only write the status of its own Node, not node-b");
    for (const body of [
      { status: { conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: "", lastTransitionTime: new Date() }] } },
      { status: { addresses: [{ type: "InternalIP", address: "10.0.0.66" }] } },
      { status: { capacity: { pods: "500" } } },
      { status: { nodeInfo: { kubeletVersion: "v0.0.0-forged" } } },
      ...statusForgeries,
    ]) {
      const err = await errorOf("node-a", body);
      expect(apiStatus(err), JSON.stringify(body)).toBe(403);
      expect(apiMessage(err)).toContain("podnet-agent may change only the NetworkUnavailable condition of its Node");
    }
    const spec = await agent.core.patchNode({ name: "node-a", body: { spec: { unschedulable: true } } }, mergePatch()).then(() => undefined, (e: unknown) => e);
    expect(apiStatus(spec)).toBe(403); // RBAC: nodes themselves are read-only for the agent
  });

  it("the controller's token may set a Node's PodCIDRConflict condition and change nothing else of its status", async () => {
    const admin = fx.api();
    for (const name of ["node-c", "node-probe"]) {
      await admin.core.createNode({ body: { metadata: { name } } });
      await admin.core.patchNodeStatus({ name, body: { status: kubeletRuntimeStatus } }, mergePatch());
    }
    const controller = await controllerApi();
    const condition = (type: string) => ({ status: { conditions: [{ type, status: "True", reason: "Test", message: "test", lastTransitionTime: new Date() }] } });
    const errorOf = (body: object, name = "node-c") => controller.core.patchNodeStatus({ name, body }, strategicMergePatch()).then(() => undefined, (e: unknown) => e);
    // The policy takes effect once the API server has loaded it: probe on a Node of its own, which an early
    // probe may change.
    await waitFor("the policy in force", async () => ((await errorOf(condition("Ready"), "node-probe")) ? true : undefined), 30_000, 200);
    const refused = await errorOf(condition("Ready"));
    expect(apiStatus(refused)).toBe(403);
    expect(apiMessage(refused)).toContain("podnet-controller may change only the PodCIDRConflict condition of a Node");
    expect(apiStatus(await errorOf({ status: { addresses: [{ type: "InternalIP", address: "10.0.0.66" }] } }))).toBe(403);
    expect(apiStatus(await errorOf({ status: { nodeInfo: { kubeletVersion: "v0.0.0-forged" } } }))).toBe(403);
    for (const body of statusForgeries) {
      const err = await errorOf(body);
      expect(apiStatus(err), JSON.stringify(body)).toBe(403);
      expect(apiMessage(err)).toContain("podnet-controller may change only the PodCIDRConflict condition of a Node");
    }
    expect(await errorOf(condition("PodCIDRConflict"))).toBeUndefined();
    expect((await admin.core.readNode({ name: "node-c" })).status?.conditions?.map((c) => c.type)).toEqual(["PodCIDRConflict"]);
  });

  it("the controller's token may take, renew and release its own Lease and write no other Lease of its namespace", async () => {
    const admin = fx.api();
    const controller = await controllerApi();
    const lease = (name: string) => admin.coordination.readNamespacedLease({ name, namespace: "kube-system" });
    // The leader code itself (create, then get and update each round, update on release).
    const elector = new LeaderElector({ api: controller, namespace: "kube-system", name: "podnet-controller", identity: "replica-1", log: silentLogger(),
      leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 100, onStartedLeading: () => undefined, onStoppedLeading: () => undefined });
    void elector.run();
    try {
      await waitFor("the controller leads", async () => (elector.isLeader ? true : undefined), 10_000, 50);
      const taken = (await lease("podnet-controller")).metadata!.resourceVersion;
      await waitFor("a renewal", async () => ((await lease("podnet-controller")).metadata!.resourceVersion !== taken ? true : undefined), 10_000, 50);
    } finally {
      await elector.stop();
    }
    expect((await lease("podnet-controller")).spec?.holderIdentity).toBe("");

    // kube-scheduler's Lease beside it: neither read nor rewritten with the controller's token.
    const scheduler = await admin.coordination.createNamespacedLease({ namespace: "kube-system", body: {
      metadata: { name: "kube-scheduler" }, spec: { holderIdentity: "scheduler-1", leaseDurationSeconds: 15 } } });
    const errorOf = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);
    expect(apiStatus(await errorOf(controller.coordination.readNamespacedLease({ name: "kube-scheduler", namespace: "kube-system" })))).toBe(403);
    const taken = { ...scheduler, spec: { ...scheduler.spec, holderIdentity: "podnet-controller" } };
    expect(apiStatus(await errorOf(controller.coordination.replaceNamespacedLease({ name: "kube-scheduler", namespace: "kube-system", body: taken })))).toBe(403);
    expect(apiStatus(await errorOf(controller.coordination.patchNamespacedLease({ name: "kube-scheduler", namespace: "kube-system",
      body: { spec: { holderIdentity: "podnet-controller" } } }, mergePatch())))).toBe(403);
    expect((await lease("kube-scheduler")).spec?.holderIdentity).toBe("scheduler-1");
    // Nor made before its component makes it (RBAC lets create through by any name; the policy does not).
    const squat = controller.coordination.createNamespacedLease({ namespace: "kube-system", body: { metadata: { name: "kube-controller-manager" }, spec: { holderIdentity: "podnet-controller" } } });
    const refused = await errorOf(squat);
    expect(apiStatus(refused)).toBe(403);
    expect(apiMessage(refused)).toContain("podnet-controller may create only its own Lease, podnet-controller");
  });

  it("the controller's token may fill a Node's podCIDRs (the act code's own write) and change nothing else of a Node", async () => {
    const admin = fx.api();
    const controller = await controllerApi();
    for (const name of ["node-fill", "node-spec-probe"]) await admin.core.createNode({ body: { metadata: { name, labels: { "kubernetes.io/os": "linux" } } } });
    const errorOf = (body: object, name = "node-fill") => controller.core.patchNode({ name, body }, mergePatch()).then(() => undefined, (e: unknown) => e);
    // A new label each time: a probe that went through before the policy took effect would make the next a no-op.
    let probe = 0;
    await waitFor("the policy in force", async () => ((await errorOf({ metadata: { labels: { probe: String(++probe) } } }, "node-spec-probe")) ? true : undefined), 30_000, 200);

    // act.ts's setNodePodCIDRs, as the leader runs it, with the controller's token.
    const shell = new AllocationController(controller, controllerConfigSchema.parse({ "metrics-address": "127.0.0.1:0", "leader-elect": "false" }), silentLogger());
    const ctx = { api: controller, nodes: shell.nodes, records: shell.records, recorder: new EventRecorder(controller, "test", silentLogger()), metrics: shell.metrics,
      log: silentLogger(), planned: new Map(), leading: () => true, retry: new RetryGate() };
    const uid = (await admin.core.readNode({ name: "node-fill" })).metadata!.uid!;
    await applyActions(ctx, [{ kind: "setNodePodCIDRs", node: "node-fill", nodeUID: uid, cidrs: ["10.244.7.0/24"] }]);
    expect((await shell.metrics.errors.get()).values.reduce((n, v) => n + v.value, 0)).toBe(0);
    const filled = await admin.core.readNode({ name: "node-fill" });
    expect(filled.spec?.podCIDRs).toEqual(["10.244.7.0/24"]);

    for (const body of [
      { metadata: { labels: { "node-role.kubernetes.io/control-plane": "" } } },
      { metadata: { labels: { "kubernetes.io/os": null } } },
      { metadata: { annotations: { "node.alpha.kubernetes.io/ttl": "0" } } },
      { metadata: { finalizers: ["example.com/hold"] } },
      { spec: { taints: [{ key: "example.com/evict", effect: "NoExecute" }] } },
      { spec: { unschedulable: true } },
      { spec: { providerID: "forged://node-fill" } },
    ]) {
      const err = await errorOf(body);
      expect(apiStatus(err), JSON.stringify(body)).toBe(403);
      expect(apiMessage(err)).toContain("podnet-controller may change only spec.podCIDR and spec.podCIDRs of a Node");
    }
    expect((await admin.core.readNode({ name: "node-fill" })).metadata?.resourceVersion).toBe(filled.metadata?.resourceVersion);
  });

  it("the agent's token writes its own conditions and report on its node's NodeCIDR (the agent's status code) and nothing the controller owns there", async () => {
    const asController = fx.api("podnet-controller");
    const agent = await agentApi();
    const nodecidrs = podnetResource("nodecidrs");
    const allocatedBy = (cidr: string) => ({ phase: "Allocated", observedGeneration: 1, conditions: [
      { type: "Allocated", status: "True", reason: "Allocated", message: `${cidr} from pool default`, observedGeneration: 1, lastTransitionTime: kubeTime(new Date()) }] });
    const name = await putNodeCidr(fx.api(), "node-a", "10.244.3.0/24", ["192.168.1.1"]);
    const probeName = await putNodeCidr(fx.api(), "node-a", "10.244.4.0/24", ["192.168.1.1"]);
    for (const [n, cidr] of [[name, "10.244.3.0/24"], [probeName, "10.244.4.0/24"]] as const) await applyStatus(asController, "nodecidrs", n, "NodeCIDR", allocatedBy(cidr));
    const errorOf = (status: object, target = name) => applyStatus(agent, "nodecidrs", target, "NodeCIDR", status).then(() => undefined, (e: unknown) => e);
    let probe = 0;
    await waitFor("the policy in force", async () => ((await errorOf({ releasedAt: new Date(Date.UTC(2020, 0, 1, 0, 0, ++probe)).toISOString() }, probeName)) ? true : undefined), 30_000, 200);

    // reportStatus as the agent runs it, on the record as the agent's informer holds it.
    type Obj = NodeCidrObject & KubernetesObject;
    const cache = new Map([[name, (await agent.custom.getClusterCustomObject({ ...nodecidrs, name })) as Obj]]);
    const records = { cache, assume: (o: Obj) => { cache.set(o.metadata!.name!, o); } } as unknown as Informer<Obj>;
    await reportStatus({ api: agent, records, recorder: new EventRecorder(agent, "podnet-agent", silentLogger()), log: silentLogger(), pacing: new StatusPacing() }, { [name]: cache.get(name)!.metadata!.resourceVersion! },
      [{ type: "RoutesProgrammed", status: "True", reason: "Programmed", message: "1 route" }, { type: "Ready", status: "True", reason: "NodeNetworkReady", message: "ready" }],
      { routesDesired: 1, routesInstalled: 1 }, 0);
    const written = (await fx.api().custom.getClusterCustomObject({ ...nodecidrs, name })) as Obj;
    expect(written.status?.agent?.routesInstalled).toBe(1);
    expect(written.status?.conditions?.map((c) => `${c.type}=${c.status}`)).toEqual(["Allocated=True", "RoutesProgrammed=True", "Ready=True"]);

    const conditions = written.status!.conditions!;
    for (const status of [
      { phase: "Released" },
      { releasedAt: new Date().toISOString() },
      { observedGeneration: 7 },
      { conditions: [{ ...conditions[0]!, status: "False", reason: "NodeDeleted" }] },
      { conditions: [{ ...conditions[0]!, message: "10.244.3.0/24 from pool forged" }] },
    ]) {
      const err = await errorOf(status);
      expect(apiStatus(err), JSON.stringify(status)).toBe(403);
      expect(apiMessage(err)).toContain("podnet-agent may not change a NodeCIDR's phase, releasedAt, observedGeneration or the controller's conditions (Allocated)");
    }
    // A merge patch replaces the whole list: the controller's condition dropped.
    const dropped = await agent.custom.patchClusterCustomObjectStatus({ ...nodecidrs, name, body: { status: { conditions: conditions.slice(1) } } }, mergePatch())
      .then(() => undefined, (e: unknown) => e);
    expect(apiStatus(dropped)).toBe(403);
    expect(((await fx.api().custom.getClusterCustomObject({ ...nodecidrs, name })) as Obj).metadata?.resourceVersion).toBe(written.metadata?.resourceVersion);
  });
});
