import { afterAll, afterEach, beforeAll } from "vitest";
import { crdSources, renderCrdYaml } from "../../src/crds/generate.js";
import { installCrds, KubeApi, type FieldManager } from "../../src/lib/k8s.js";
import { startControlPlane, type ControlPlane } from "../../src/localcluster/control-plane.js";

export interface ApiFixture {
  readonly cp: ControlPlane;
  /** Admin client with the given field manager. */
  api(fieldManager?: FieldManager): KubeApi;
}

/**
 * One real etcd + kube-apiserver per test file (≈4–6 s to start here), with podnet's CRDs installed.
 * Files are isolated from each other because cluster-scoped objects (Nodes, NodeCIDRs) would collide.
 * Server logs are printed when a test fails.
 */
export function useControlPlane(): ApiFixture {
  let cp: ControlPlane | undefined;
  beforeAll(async () => {
    cp = await startControlPlane();
    await installCrds(KubeApi.fromKubeconfig(cp.kubeconfig, "podnet-cli"), crdSources.map(renderCrdYaml));
  }, 120_000);
  afterEach((ctx) => {
    if (ctx.task.result?.state === "fail" && cp) console.error(`control plane logs (${cp.dir}):\n${cp.logs()}`);
  });
  afterAll(async () => { await cp?.stop(); });
  return {
    get cp() {
      if (!cp) throw new Error("control plane not started");
      return cp;
    },
    api(fieldManager: FieldManager = "podnet-cli") {
      if (!cp) throw new Error("control plane not started");
      return KubeApi.fromKubeconfig(cp.kubeconfig, fieldManager);
    },
  };
}
