import type { KubernetesObject } from "@kubernetes/client-node";
import { Informer, type InformerEvent, type ListPage } from "../../src/lib/informer.js";
import { podnetResource, type KubeApi } from "../../src/lib/k8s.js";
import { silentLogger } from "../../src/log.js";
import type { ApiFixture } from "./api-fixture.js";

/** Shared by the rung-2 informer and API client tests: NodeCIDRs named after their third octet, and an informer over them. */
export const nodecidrs = podnetResource("nodecidrs");
export const body = (third: number, node: string) => ({
  apiVersion: "podnet.io/v1alpha1", kind: "NodeCIDR", metadata: { name: `10-250-${third}-0-24` },
  spec: { nodeName: node, cidr: `10.250.${third}.0/24`, family: "IPv4", pool: "default" },
});

export function nodeCidrInformer(fx: ApiFixture, opts: { failFirstLists?: number; stallTimeoutMs?: number; project?: (o: KubernetesObject) => KubernetesObject; api?: KubeApi; listApi?: KubeApi } = {}) {
  const api = opts.api ?? fx.api();
  const listApi = opts.listApi ?? api;
  const events: Array<[InformerEvent, string]> = [];
  let failures = opts.failFirstLists ?? 0;
  const inf = new Informer<KubernetesObject>({
    api, path: "/apis/podnet.io/v1alpha1/nodecidrs", log: silentLogger(), stallTimeoutMs: opts.stallTimeoutMs, project: opts.project,
    list: async (token) => {
      // The one fake here: a 500 from the API server cannot be produced on demand by a healthy apiserver.
      if (failures-- > 0) throw Object.assign(new Error("HTTP 500 Internal Server Error"), { code: 500 });
      return (await listApi.custom.listClusterCustomObject({ ...nodecidrs, limit: 2, _continue: token })) as ListPage<KubernetesObject>;
    },
    onEvent: (event, obj) => events.push([event, obj.metadata!.name!]),
  });
  return { inf, events };
}
