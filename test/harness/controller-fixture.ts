import { controllerConfigSchema, type ControllerConfig } from "../../src/config.js";
import { AllocationController } from "../../src/controllers/controller.js";
import { createLogger, silentLogger, type Logger } from "../../src/log.js";
import { AdmissionregistrationV1Api } from "@kubernetes/client-node";
import { afterEach } from "vitest";
import { apiMessage, podnetResource } from "../../src/lib/k8s.js";
import type { ApiFixture } from "./api-fixture.js";
import { emptyCluster, listNodeCidrs } from "./cluster-objects.js";
import { waitFor } from "../../src/localcluster/processes.js";

/** An in-process controller against the fixture's API server; flags as the CLI would take them. */
export async function startController(fx: ApiFixture, flags: Record<string, string> = {}, logger?: Logger): Promise<AllocationController> {
  const config: ControllerConfig = controllerConfigSchema.parse({
    "metrics-address": "127.0.0.1:0", "leader-elect": "false", "lease-namespace": "default", "release-cooldown": "2s",
    "resync-period": "10s", ...flags,
  });
  const log = logger ?? (process.env.PODNET_TEST_LOGS ? createLogger("controller", "debug") : silentLogger());
  const controller = new AllocationController(fx.api("podnet-controller"), config, log);
  await controller.start();
  return controller;
}

/**
 * After each test: its controller stopped, then the cluster emptied. Cleaning up inside a test raced its own
 * controller, which recreates its default pool as soon as it sees it deleted: a catch-all pool left behind then
 * served the next test's nodes (seen under load).
 */
export function stopAndEmptyAfterEach(fx: ApiFixture, running: () => AllocationController | undefined, forget: () => void): void {
  afterEach(async () => {
    await running()?.stop();
    forget();
    await emptyCluster(fx.api());
  });
}

/** A Node's NodeCIDRs, whatever their phase. */
export const recordsOfNode = async (fx: ApiFixture, node: string) => (await listNodeCidrs(fx.api())).filter((r) => r.spec.nodeName === node);

/** Poll every 100 ms, 20 s by default: long enough for a loaded 2-core CI machine. */
export const until = <T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000) => waitFor(what, probe, ms, 100);

/** The API server itself refuses NodeCIDRs for one node: a policy, as an admission rule of a hardened cluster would. */
export async function denyNodeCidrsFor(fx: ApiFixture, node: string): Promise<void> {
  const admission = fx.api().kc.makeApiClient(AdmissionregistrationV1Api);
  await admission.createValidatingAdmissionPolicy({ body: { metadata: { name: "deny-hot" }, spec: {
    failurePolicy: "Fail",
    matchConstraints: { resourceRules: [{ apiGroups: ["podnet.io"], apiVersions: ["*"], operations: ["CREATE"], resources: ["nodecidrs"] }] },
    validations: [{ expression: `object.spec.nodeName != '${node}'`, message: `no NodeCIDR for ${node} (test policy)` }],
  } } });
  await admission.createValidatingAdmissionPolicyBinding({ body: { metadata: { name: "deny-hot" }, spec: { policyName: "deny-hot", validationActions: ["Deny"] } } });
  // The policy takes effect once the API server has loaded it: wait until a probe create is refused by it. (The
  // probe must pass the CRD's own rules, its name included: a refusal by those proved nothing.)
  const probe = { apiVersion: "podnet.io/v1alpha1", kind: "NodeCIDR", metadata: { name: "10-99-0-0-24" }, spec: { nodeName: node, cidr: "10.99.0.0/24", family: "IPv4", pool: "x" } };
  await until("the policy in force", async () => {
    try {
      await fx.api().custom.createClusterCustomObject({ ...podnetResource("nodecidrs"), body: probe });
      await fx.api().custom.deleteClusterCustomObject({ ...podnetResource("nodecidrs"), name: probe.metadata.name });
      return undefined;
    } catch (err) { return apiMessage(err).includes("(test policy)") ? true : undefined; }
  }, 30_000);
}

/** The policy above gone (its binding first); creates for that node go through again once the server drops it. */
export async function allowNodeCidrs(fx: ApiFixture): Promise<void> {
  const admission = fx.api().kc.makeApiClient(AdmissionregistrationV1Api);
  await admission.deleteValidatingAdmissionPolicyBinding({ name: "deny-hot" }).catch(() => undefined);
  await admission.deleteValidatingAdmissionPolicy({ name: "deny-hot" }).catch(() => undefined);
}
