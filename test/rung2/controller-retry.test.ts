import { afterEach, describe, expect, it } from "vitest";
import { controllerConfigSchema } from "../../src/config.js";
import { AllocationController } from "../../src/controllers/controller.js";
import type { PoolObject } from "../../src/controllers/observe.js";
import { AdmissionregistrationV1Api } from "@kubernetes/client-node";
import { apiMessage, mergePatch, podnetResource, type KubeApi } from "../../src/lib/k8s.js";
import { silentLogger } from "../../src/log.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, createNodes, deleteNodes, emptyCluster, eventsFor, listNodeCidrs } from "../harness/cluster-objects.js";
import { allowNodeCidrs, denyNodeCidrsFor, startController } from "../harness/controller-fixture.js";

// Failures the controller must ride out without hammering the API server or stalling other nodes.
const fx = useControlPlane();
const pools = podnetResource("podcidrpools");
let controller: AllocationController | undefined;
afterEach(async () => {
  await controller?.stop();
  controller = undefined;
  await allowNodeCidrs(fx);
  await allowPoolStatus();
  await emptyCluster(fx.api());
});

const until = <T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000) => waitFor(what, probe, ms, 50);
const cidrsOf = async (node: string) => allocated(await listNodeCidrs(fx.api())).filter((r) => r.spec.nodeName === node).map((r) => r.spec.cidr);
const counter = async (c: AllocationController, metric: "errors" | "apiWrites", action: string) =>
  (await c.metrics[metric].get()).values.filter((v) => v.labels.action === action).reduce((n, v) => n + v.value, 0);

describe("controller on the real API server: failures are retried with backoff", () => {
  it("a create the API server keeps refusing is retried with backoff, and other nodes are allocated meanwhile", async () => {
    await denyNodeCidrsFor(fx, "hot");
    controller = await startController(fx, { "cluster-cidr": "10.230.0.0/16", "resync-period": "60s" });
    await createNodes(fx.api(), [{ name: "hot", ip: "192.168.72.1" }]);
    await until("the first refusal", async () => ((await counter(controller!, "errors", "create")) > 0 ? true : undefined));
    const plansBefore = controller.plans;
    // Node events keep coming meanwhile (each new Node replans): none may resend the refused create early.
    for (let i = 1; i <= 4; i++) {
      await createNodes(fx.api(), [{ name: `cool-${i}`, ip: `192.168.72.${10 + i}` }]);
      expect(await until(`cool-${i} allocated`, async () => ((await cidrsOf(`cool-${i}`)).length ? cidrsOf(`cool-${i}`) : undefined), 5_000)).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 1_000));
    }
    // About 5 s since the first refusal: at 1, 2, 4 s backoff that is 3-4 attempts; a hot loop made hundreds.
    const attempts = await counter(controller, "errors", "create");
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(attempts).toBeLessThanOrEqual(5);
    expect(await cidrsOf("hot")).toEqual([]);
    // Nor may the create waiting for its retry make every plan call for another: that replanned every 5 ms
    // (≈180 plans a second). A few plans per Node event and per retry remain.
    expect(controller.plans - plansBefore).toBeLessThan(100);
  });

  it("a pool status write the API server keeps refusing is retried with backoff, not on every plan, and written once allowed", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.234.0.0/16", "resync-period": "60s" });
    await until("the default pool's status written", async () => (((await fx.api().custom.getClusterCustomObject({ ...pools, name: "default" })) as PoolObject).status ? true : undefined));
    await denyPoolStatus("default");
    // Each Node changes the pool's figures, so every plan has a status to write, and each new Node plans again.
    for (let i = 1; i <= 5; i++) {
      await createNodes(fx.api(), [{ name: `s-${i}`, ip: `192.168.74.${i}` }]);
      expect(await until(`s-${i} allocated`, async () => ((await cidrsOf(`s-${i}`)).length ? cidrsOf(`s-${i}`) : undefined), 5_000)).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 1_000));
    }
    // About 5 s of refusals: at 1, 2, 4 s backoff that is 3-4 writes; resent on every plan, it was one per plan.
    const attempts = await counter(controller, "errors", "poolStatus");
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(attempts).toBeLessThanOrEqual(5);
    // Allowed again, the write waiting out its backoff goes through at its retry time, with no event to wake it.
    await allowPoolStatus();
    const status = await until("the status counts the five Nodes", async () => {
      const pool = (await fx.api().custom.getClusterCustomObject({ ...pools, name: "default" })) as PoolObject & { status?: { ipv4?: { allocated: number } } };
      return pool.status?.ipv4?.allocated === 5 ? pool.status : undefined;
    }, 40_000);
    expect(status.ipv4).toMatchObject({ allocated: 5 });
  });

  it("a CIDR whose cooldown ends goes to the Node waiting for it without a failed create (three rounds)", async () => {
    // Planned in one pass, the delete of the released record and the create of its CIDR (one object name) went out
    // together: the create met the old object, counted an error and backed off (4 of 5 rounds in the review).
    controller = await startController(fx, { "cluster-cidr": "10.244.0.0/24", "release-cooldown": "1s" });
    for (let round = 0; round < 3; round++) {
      const [gone, waiting] = [`ra-${round}`, `rb-${round}`];
      await createNodes(fx.api(), [{ name: gone, ip: `192.168.50.${2 * round + 1}` }]);
      await until(`${gone} allocated`, async () => ((await cidrsOf(gone)).length ? true : undefined));
      await createNodes(fx.api(), [{ name: waiting, ip: `192.168.50.${2 * round + 2}` }]);
      await deleteNodes(fx.api(), [gone]);
      await until(`${waiting} allocated`, async () => ((await cidrsOf(waiting)).length ? true : undefined));
      await deleteNodes(fx.api(), [waiting]);
      await until("the pool empty again", async () => ((await listNodeCidrs(fx.api())).length ? undefined : true));
    }
    expect(await counter(controller, "errors", "create")).toBe(0);
  });

  it("stop() during a pass returns when the pass ends, not after the resync period", async () => {
    const api = fx.api("podnet-controller");
    const slow = withSlowPoolStatus(api, 1_500);
    const config = controllerConfigSchema.parse({ "metrics-address": "127.0.0.1:0", "leader-elect": "false", "cluster-cidr": "10.231.0.0/16", "resync-period": "120s", "release-cooldown": "2s" });
    controller = new AllocationController(api, config, silentLogger());
    await controller.start();
    // The second pass: the first one saw the default pool's creation arrive while it ran.
    await until("a second pool status write under way", async () => (slow.started > 1 ? true : undefined));
    const t0 = performance.now();
    await controller.stop();
    controller = undefined;
    expect(performance.now() - t0).toBeLessThan(20_000); // the bug waited the 120 s resync period
  });

  it("a default pool write that fails with 500 neither stops allocation nor is resent on every pass", async () => {
    await fx.api().custom.createClusterCustomObject({ ...pools, body: { apiVersion: "podnet.io/v1alpha1", kind: "PodCIDRPool", metadata: { name: "default", annotations: { "podnet.io/configured-cidrs": "10.232.0.0/24" } },
      spec: { ipv4: { cidrs: ["10.232.0.0/24"], nodeMaskSize: 24 } } } });
    const api = fx.api("podnet-controller");
    const failing = withFailingPoolPatch(api);
    const config = controllerConfigSchema.parse({ "metrics-address": "127.0.0.1:0", "leader-elect": "false", "cluster-cidr": "10.232.0.0/24,10.233.0.0/24", "resync-period": "60s" });
    controller = new AllocationController(api, config, silentLogger());
    await controller.start();
    await createNodes(fx.api(), [{ name: "d-1", ip: "192.168.73.1" }]);
    expect(await until("d-1 allocated from the pool as it is", async () => ((await cidrsOf("d-1")).length ? cidrsOf("d-1") : undefined))).toEqual(["10.232.0.0/24"]);
    for (let i = 2; i <= 4; i++) {
      await createNodes(fx.api(), [{ name: `d-${i}`, ip: `192.168.73.${i}` }]); // more passes, each a chance to resend
      await until(`d-${i} exhausted`, async () => ((await eventsFor(fx.api(), "Node", `d-${i}`)).some((e) => e.reason === "PodCIDRNotAvailable") ? true : undefined));
      await new Promise((r) => setTimeout(r, 700));
    }
    expect(failing.attempts).toBeGreaterThanOrEqual(2);
    expect(failing.attempts).toBeLessThanOrEqual(5); // ≈3 s at 0.5–1, 1–2 s backoff; no backoff resent it each pass
    failing.heal();
    // Healed, the retry grows the pool and the waiting nodes get the new range.
    await until("d-2..d-4 allocated from the added range", async () => {
      const got = (await Promise.all(["d-2", "d-3", "d-4"].map(cidrsOf))).flat();
      return got.length === 1 ? got : undefined; // the added /24 holds one more node
    }, 30_000);
    expect(((await fx.api().custom.getClusterCustomObject({ ...pools, name: "default" })) as PoolObject).spec.ipv4?.cidrs).toEqual(["10.232.0.0/24", "10.233.0.0/24"]);
  });
});

/**
 * The controller's status writes to pools answer after `ms` with a 503 (an overloaded API server): a pass is
 * busy then, and as nothing changes, no watch event marks the state dirty meanwhile. Counts writes begun.
 */
function withSlowPoolStatus(api: KubeApi, ms: number): { started: number } {
  const seen = { started: 0 };
  const original = api.custom.patchClusterCustomObjectStatus.bind(api.custom);
  api.custom.patchClusterCustomObjectStatus = (async (...args: Parameters<typeof original>) => {
    if (args[0].plural !== "podcidrpools") return original(...args);
    seen.started++;
    await new Promise((r) => setTimeout(r, ms));
    throw Object.assign(new Error("HTTP-Code: 503 Message: too busy"), { code: 503, body: "{\"message\":\"too busy\"}" });
  }) as typeof original;
  return seen;
}

/** A 500 for every patch of a pool until healed: the one failure a real API server cannot be made to give. */
function withFailingPoolPatch(api: KubeApi): { attempts: number; heal: () => void } {
  const state = { attempts: 0, healed: false, heal: () => { state.healed = true; } };
  const original = api.custom.patchClusterCustomObject.bind(api.custom);
  api.custom.patchClusterCustomObject = (async (...args: Parameters<typeof original>) => {
    if (args[0].plural === "podcidrpools" && !state.healed) {
      state.attempts++;
      throw Object.assign(new Error("HTTP-Code: 500 Message: etcd leader changed"), { code: 500, body: "{\"message\":\"etcd leader changed\"}" });
    }
    return original(...args);
  }) as typeof original;
  return state;
}

/**
 * The API server refuses the controller's status writes to one pool: a policy, as an admission rule of a
 * hardened cluster would. In force once a probe write of that status (changing nothing) is refused by it.
 */
async function denyPoolStatus(pool: string): Promise<void> {
  const admission = fx.api().kc.makeApiClient(AdmissionregistrationV1Api);
  await admission.createValidatingAdmissionPolicy({ body: { metadata: { name: "deny-pool-status" }, spec: {
    failurePolicy: "Fail",
    matchConstraints: { resourceRules: [{ apiGroups: ["podnet.io"], apiVersions: ["*"], operations: ["UPDATE"], resources: ["podcidrpools/status"] }] },
    validations: [{ expression: `object.metadata.name != '${pool}'`, message: `no status for pool ${pool} (test policy)` }],
  } } });
  await admission.createValidatingAdmissionPolicyBinding({ body: { metadata: { name: "deny-pool-status" }, spec: { policyName: "deny-pool-status", validationActions: ["Deny"] } } });
  await until("the policy in force", async () => {
    try {
      await fx.api().custom.patchClusterCustomObjectStatus({ ...pools, name: pool, body: { status: {} } }, mergePatch());
      return undefined;
    } catch (err) { return apiMessage(err).includes("(test policy)") ? true : undefined; }
  }, 30_000);
}

async function allowPoolStatus(): Promise<void> {
  const admission = fx.api().kc.makeApiClient(AdmissionregistrationV1Api);
  await admission.deleteValidatingAdmissionPolicyBinding({ name: "deny-pool-status" }).catch(() => undefined);
  await admission.deleteValidatingAdmissionPolicy({ name: "deny-pool-status" }).catch(() => undefined);
}
