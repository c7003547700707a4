import { parse, stringify } from "yaml";
import { describe, expect, it } from "vitest";
import type { AllocationController } from "../../src/controllers/controller.js";
import { crdSources, renderCrdYaml } from "../../src/crds/generate.js";
import { apiMessage, installCrds, KubeApi } from "../../src/lib/k8s.js";
import { SchemaDrops } from "../../src/controllers/schema-drops.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, createNodes, listNodeCidrs } from "../harness/cluster-objects.js";
import { startController, stopAndEmptyAfterEach, until } from "../harness/controller-fixture.js";

// An upgrade that ran `helm upgrade` but not the CRD step: the API server still serves the NodeCIDR schema from
// before spec.nodeUID and spec.nodeIPsFrom, and prunes both from every write without an error.
const fx = useControlPlane();
let controller: AllocationController | undefined;
stopAndEmptyAfterEach(fx, () => controller, () => { controller = undefined; });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const counted = async (c: AllocationController, metric: "apiWrites" | "errors" | "crdFieldsDropped", label: string, value: string) =>
  (await c.metrics[metric].get()).values.filter((v) => (v.labels as Record<string, unknown>)[label] === value).reduce((n, v) => n + v.value, 0);

/** The NodeCIDR CRD as an older podnet shipped it: without the two later spec fields. */
function olderNodeCidrCrd(): string {
  const crd = parse(renderCrdYaml(crdSources.find((s) => s.plural === "nodecidrs")!));
  const spec = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties;
  delete spec.nodeUID;
  delete spec.nodeIPsFrom;
  return stringify(crd);
}

describe("controller on the real API server: a NodeCIDR CRD older than the controller", () => {
  it("writes each dropped field no more than once per pause, says so once as an error naming the remedy, and raises podnet_crd_fields_dropped", async () => {
    const admin = KubeApi.fromKubeconfig(fx.cp.kubeconfig, "podnet-cli");
    await installCrds(admin, [olderNodeCidrCrd()]);
    try {
      const lines: string[] = [];
      const log = { stream: { write: (line: string) => { lines.push(line); } } };
      controller = await startController(fx, { "cluster-cidr": "10.244.0.0/16", "resync-period": "1s" }, (await import("pino")).pino({ level: "info" }, log.stream));
      const c = controller;
      await createNodes(fx.api(), Array.from({ length: 10 }, (_, i) => ({ name: `old-crd-${i}`, ip: `192.168.60.${i + 1}` })));
      await until("10 NodeCIDRs allocated", async () => (allocated(await listNodeCidrs(fx.api())).length === 10 ? true : undefined));
      expect(allocated(await listNodeCidrs(fx.api())).filter((r) => r.spec.nodeUID !== undefined)).toEqual([]); // pruned, as the review saw
      await sleep(4_000); // four resyncs: each planned a uid stamp and a node-IP source write for every record before
      expect(await counted(c, "apiWrites", "action", "stampNodeUID")).toBe(0);
      expect(await counted(c, "apiWrites", "action", "updateNodeIPs")).toBe(0);
      expect(await counted(c, "errors", "action", "crdOutdated")).toBe(1);
      expect(await counted(c, "crdFieldsDropped", "field", "spec.nodeUID")).toBe(1);
      expect(await counted(c, "crdFieldsDropped", "field", "spec.nodeIPsFrom")).toBe(1);
      const said = lines.filter((l) => l.includes("NodeCIDR CRD dropped"));
      expect(said).toHaveLength(1);
      expect(said[0]).toContain("kubectl apply --server-side --force-conflicts -f charts/podnet/crds/");

      // Past a pause (2 s here, 10 minutes in production), or in a new leader, one write of each field tries
      // again, not one per record: before, every record was written again at once, each pause.
      (c as unknown as { schemaDrops: SchemaDrops }).schemaDrops = new SchemaDrops(2_000);
      const [stamps, sources] = [await counted(c, "apiWrites", "action", "stampNodeUID"), await counted(c, "apiWrites", "action", "updateNodeIPs")];
      await sleep(5_000); // the first try, then two pauses' ends
      expect(await counted(c, "apiWrites", "action", "stampNodeUID") - stamps).toBeLessThanOrEqual(3);
      expect(await counted(c, "apiWrites", "action", "updateNodeIPs") - sources).toBeLessThanOrEqual(3);

      // The lease lost and taken back within a pause: nothing is written of the fields then, and the gauge (reset
      // as a follower) must come back from what the replica learnt, or the alert clears while the CRD is old.
      (c as unknown as { schemaDrops: SchemaDrops }).schemaDrops = new SchemaDrops(60_000);
      await sleep(1_500); // the one try of each, dropped again: paused for the rest of the test
      const leading = (c as unknown as { setLeading(value: boolean): void }).setLeading.bind(c);
      leading(false);
      expect(await counted(c, "crdFieldsDropped", "field", "spec.nodeUID")).toBe(0);
      leading(true);
      await sleep(1_500);
      expect(await counted(c, "crdFieldsDropped", "field", "spec.nodeUID")).toBe(1);
      expect(await counted(c, "crdFieldsDropped", "field", "spec.nodeIPsFrom")).toBe(1);
    } finally {
      await controller?.stop();
      controller = undefined;
      await installCrds(admin, crdSources.map(renderCrdYaml));
    }
  });

  it("names the missing CRDs when the API server does not serve a podnet resource (its CRD deleted or never applied)", async () => {
    const err = await fx.api().custom.listClusterCustomObject({ group: "podnet.io", version: "v1alpha1", plural: "nosuchthings" }).then(() => undefined, (e: unknown) => e);
    expect(apiMessage(err)).toBe("HTTP 404: 404 page not found (the API server serves no such resource: are the podnet CRDs installed? apply charts/podnet/crds)");
  });
});
