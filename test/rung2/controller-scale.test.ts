import { afterAll, describe, expect, it } from "vitest";
import type { KubernetesObject } from "@kubernetes/client-node";
import { Informer, type ListPage } from "../../src/lib/informer.js";
import { podnetResource } from "../../src/lib/k8s.js";
import { silentLogger } from "../../src/log.js";
import type { AllocationController } from "../../src/controllers/controller.js";
import type { NodeCidrObject } from "../../src/controllers/observe.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, createNodes, deleteNodes, eventsFor, invariantViolations, listNodeCidrs, nodePodCidrViolations } from "../harness/cluster-objects.js";
import { startController } from "../harness/controller-fixture.js";
import { waitFor } from "../../src/localcluster/processes.js";

const fx = useControlPlane();
let controller: AllocationController | undefined;
let watcher: Informer<NodeCidrObject & KubernetesObject> | undefined;
afterAll(async () => { watcher?.stop(); await controller?.stop(); });

/** Watches NodeCIDRs independently of the controller and checks the invariants after every event. */
function invariantWatcher(violations: string[]) {
  const api = fx.api();
  const w: Informer<NodeCidrObject & KubernetesObject> = new Informer({
    api, path: "/apis/podnet.io/v1alpha1/nodecidrs", log: silentLogger(),
    list: (t) => api.custom.listClusterCustomObject({ ...podnetResource("nodecidrs"), limit: 500, _continue: t }) as Promise<ListPage<NodeCidrObject & KubernetesObject>>,
    onEvent: () => violations.push(...invariantViolations([...w.cache.values()])),
  });
  w.start();
  return w;
}

describe("controller at scale on the real API server", () => {
  it("300 nodes on a /16 with /24: 256 allocated, 44 exhaustion events; 20 deleted → their CIDRs go to 20 waiting nodes after the cooldown", async () => {
    const violations: string[] = [];
    watcher = invariantWatcher(violations);
    controller = await startController(fx, { "cluster-cidr": "10.244.0.0/16", "release-cooldown": "3s" });
    const names = Array.from({ length: 300 }, (_, i) => `scale-${String(i).padStart(3, "0")}`);
    await createNodes(fx.api(), names.map((name, i) => ({ name, ip: `192.168.${100 + Math.floor(i / 250)}.${(i % 250) + 1}` })));
    await waitFor("256 allocated", async () => (allocated(await listNodeCidrs(fx.api())).length === 256 ? true : undefined), 120_000, 500);
    const exhausted = await waitFor("44 exhaustion events", async () => {
      const nodes = new Set((await eventsFor(fx.api(), "Node")).filter((e) => e.reason === "PodCIDRNotAvailable").map((e) => e.involvedObject.name));
      return nodes.size === 44 ? nodes : undefined;
    }, 60_000, 500);
    const holders = new Set(allocated(await listNodeCidrs(fx.api())).map((r) => r.spec.nodeName));
    expect([...exhausted].every((n) => !holders.has(n!))).toBe(true);

    const victims = [...holders].slice(0, 20);
    const freedCidrs = new Set(allocated(await listNodeCidrs(fx.api())).filter((r) => victims.includes(r.spec.nodeName)).map((r) => r.spec.cidr));
    const deletedAt = Date.now();
    await deleteNodes(fx.api(), victims);
    const final = await waitFor("20 waiting nodes allocated", async () => {
      const live = allocated(await listNodeCidrs(fx.api()));
      return live.length === 256 && live.every((r) => !victims.includes(r.spec.nodeName)) ? live : undefined;
    }, 120_000, 500);
    expect(Date.now() - deletedAt).toBeGreaterThanOrEqual(3_000);
    const newcomers = final.filter((r) => exhausted.has(r.spec.nodeName));
    expect(newcomers).toHaveLength(20);
    expect(newcomers.every((r) => freedCidrs.has(r.spec.cidr))).toBe(true);
    expect(violations).toEqual([]);
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
    expect(await nodePodCidrViolations(fx.api())).toEqual([]);
  }, 300_000);
});
