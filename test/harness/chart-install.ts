import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { beforeAll } from "vitest";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeApi } from "../../src/lib/k8s.js";
import { kubeBin } from "../../src/localcluster/kube-bins.js";
import type { ApiFixture } from "./api-fixture.js";

const chart = join(import.meta.dirname, "../../charts/podnet");

/**
 * `helm install podnet charts/podnet` into kube-system of the file's control plane, before the tests of the
 * describe it is called in; `output` is what helm printed (its notes) once it has run.
 */
export function useChartInstall(fx: ApiFixture): { readonly output: string } {
  let output = "";
  beforeAll(() => {
    output = execFileSync(kubeBin("helm"), ["install", "podnet", chart, "--namespace", "kube-system", "--create-namespace", `--kubeconfig=${fx.cp.kubeconfig}`], { encoding: "utf8" });
  }, 60_000);
  return { get output() { return output; } };
}

/** The API with a token of one of the chart's service accounts (bound to a Pod when given, as the DaemonSet's pods get). */
export async function tokenApi(fx: ApiFixture, sa: "podnet-agent" | "podnet-controller", pod?: { name: string; uid: string }): Promise<KubeApi> {
  const token = await fx.api().core.createNamespacedServiceAccountToken({ namespace: "kube-system", name: sa, body: {
    spec: { audiences: [], expirationSeconds: 600, ...(pod ? { boundObjectRef: { kind: "Pod", apiVersion: "v1", ...pod } } : {}) },
  } });
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: fx.cp.url, caFile: fx.cp.pki.caCert }],
    users: [{ name: sa, token: token.status!.token }],
    contexts: [{ name: "c", cluster: "c", user: sa }], currentContext: "c",
  });
  return new KubeApi(kc, sa);
}

/**
 * Each made once per file, on first use: the API as podnet-agent on node-a (a token bound to a Pod scheduled
 * there; Nodes node-a and node-b are created for it), and as podnet-controller.
 */
export function chartTokens(fx: ApiFixture): { agentApi: () => Promise<KubeApi>; controllerApi: () => Promise<KubeApi> } {
  let agentOnNodeA: Promise<KubeApi> | undefined;
  let controllerToken: Promise<KubeApi> | undefined;
  const agentApi = () => (agentOnNodeA ??= (async () => {
    const admin = fx.api();
    for (const name of ["node-a", "node-b"]) await admin.core.createNode({ body: { metadata: { name } } });
    const pod = await admin.core.createNamespacedPod({ namespace: "kube-system", body: {
      metadata: { name: "podnet-agent-node-a" },
      spec: { serviceAccountName: "podnet-agent", nodeName: "node-a", containers: [{ name: "agent", image: "podnet:test" }] },
    } });
    return tokenApi(fx, "podnet-agent", { name: pod.metadata!.name!, uid: pod.metadata!.uid! });
  })());
  return { agentApi, controllerApi: () => (controllerToken ??= tokenApi(fx, "podnet-controller")) };
}
