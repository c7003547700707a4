import { KubeConfig } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { apiMessage, apiStatus, KubeApi, logLevelFor, retryAfterMs } from "../../src/lib/k8s.js";
import { useControlPlane } from "../harness/api-fixture.js";

const fx = useControlPlane();
const flowcontrol = { group: "flowcontrol.apiserver.k8s.io", version: "v1" };
const THROTTLED = "podnet-test-throttled";

/**
 * A client the API server throttles hard: a service account (outside system:masters, which APF exempts) whose
 * requests a FlowSchema puts in a priority level of one share, no borrowing, and Reject for what does not fit:
 * a burst meets real 429s from API Priority and Fairness.
 */
async function throttledClient(): Promise<KubeApi> {
  const admin = fx.api();
  await admin.core.createNamespacedServiceAccount({ namespace: "default", body: { metadata: { name: THROTTLED } } });
  await admin.custom.createClusterCustomObject({ ...flowcontrol, plural: "prioritylevelconfigurations", body: {
    apiVersion: "flowcontrol.apiserver.k8s.io/v1", kind: "PriorityLevelConfiguration", metadata: { name: THROTTLED },
    spec: { type: "Limited", limited: { nominalConcurrencyShares: 1, lendablePercent: 0, borrowingLimitPercent: 0, limitResponse: { type: "Reject" } } },
  } });
  await admin.custom.createClusterCustomObject({ ...flowcontrol, plural: "flowschemas", body: {
    apiVersion: "flowcontrol.apiserver.k8s.io/v1", kind: "FlowSchema", metadata: { name: THROTTLED },
    spec: { priorityLevelConfiguration: { name: THROTTLED }, matchingPrecedence: 2, distinguisherMethod: { type: "ByUser" },
      rules: [{ subjects: [{ kind: "ServiceAccount", serviceAccount: { name: THROTTLED, namespace: "default" } }],
        resourceRules: [{ verbs: ["*"], apiGroups: ["*"], resources: ["*"], clusterScope: true, namespaces: ["*"] }] }] },
  } });
  const { status } = await admin.core.createNamespacedServiceAccountToken({ name: THROTTLED, namespace: "default", body: { spec: { audiences: [] } } });
  const kc = new KubeConfig();
  kc.loadFromOptions({ clusters: [{ name: "c", server: fx.cp.url, caFile: fx.cp.pki.caCert, skipTLSVerify: false }],
    users: [{ name: THROTTLED, token: status!.token }], contexts: [{ name: "x", cluster: "c", user: THROTTLED }], currentContext: "x" });
  return new KubeApi(kc, "podnet-cli");
}

describe("API calls throttled by the real API server (API Priority and Fairness)", () => {
  it("a 429 in text/plain reads as one line with the server's words and its Retry-After, logged as a warning", async () => {
    const api = await throttledClient();
    let throttled: unknown;
    const deadline = performance.now() + 30_000;
    // The new priority level takes effect within moments; bursts until one call is refused.
    while (throttled === undefined && performance.now() < deadline) {
      const results = await Promise.allSettled(Array.from({ length: 60 }, () => api.core.listNamespace({ limit: 1 })));
      throttled = results.flatMap((r) => (r.status === "rejected" && apiStatus(r.reason) === 429 ? [r.reason as unknown] : []))[0];
    }
    expect(apiStatus(throttled)).toBe(429);
    // Before: client-node's dump, "HTTP-Code: 429\nMessage: Unknown API Status Code!\nBody: …\nHeaders: {…}".
    expect(apiMessage(throttled)).toMatch(/^HTTP 429: Too many requests, please try again later\.; retry after \d+s$/);
    expect(retryAfterMs(throttled)).toBeGreaterThanOrEqual(1_000);
    expect(logLevelFor(throttled)).toBe("warn");
  }, 60_000);
});
