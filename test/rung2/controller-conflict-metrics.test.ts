import { describe, expect, it } from "vitest";
import type { AllocationController } from "../../src/controllers/controller.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, createNodes, deleteNodes } from "../harness/cluster-objects.js";
import { recordsOfNode, startController, stopAndEmptyAfterEach, until } from "../harness/controller-fixture.js";

const fx = useControlPlane();
let controller: AllocationController | undefined;
stopAndEmptyAfterEach(fx, () => controller, () => { controller = undefined; });

/** The controller's /metrics as Prometheus scrapes it: series (name and labels) → value. */
async function scrape(c: AllocationController): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${c.metricsPort}/metrics`)).text();
  return new Map(text.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => { const i = l.lastIndexOf(" "); return [l.slice(0, i), Number(l.slice(i + 1))]; }));
}
const inConflict = async (c: AllocationController, reason: string) => (await scrape(c)).get(`podnet_nodes_in_conflict{reason="${reason}"}`);

describe("controller on the real API server: a Node podnet cannot serve shows in podnet_nodes_in_conflict", () => {
  it("a Node whose preset podCIDR another Node holds: 1 for PodCIDRConflict over many plans, 0 once the holder is gone and it is adopted", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.244.0.0/16", "default-pool": "cm", "release-cooldown": "2s", "resync-period": "1s" });
    const c = controller;
    await createNodes(fx.api(), [{ name: "cm-a", ip: "192.168.71.1", podCIDRs: ["10.244.77.0/24"] }]);
    await until("cm-a adopted", async () => (allocated(await recordsOfNode(fx, "cm-a")).length ? true : undefined));
    await createNodes(fx.api(), [{ name: "cm-b", ip: "192.168.71.2", podCIDRs: ["10.244.77.0/24"] }]);
    await until("PodCIDRConflict 1", async () => ((await inConflict(c, "PodCIDRConflict")) === 1 ? true : undefined));
    // A level, not a count of plans: it stays 1 while the plans go on (the 1 s resync).
    const plansBefore = c.plans;
    await until("three more plans", async () => (c.plans >= plansBefore + 3 ? true : undefined));
    const during = await scrape(c);
    expect(during.get('podnet_nodes_in_conflict{reason="PodCIDRConflict"}')).toBe(1);
    for (const other of ["PodCIDROutsidePool", "PodCIDRInvalid", "NoPodCIDRPool", "PodCIDRMismatch", "PodCIDRFamilyMissing", "DuplicateNodeIP", "UnusableNodeIP"]) {
      expect(during.get(`podnet_nodes_in_conflict{reason="${other}"}`)).toBe(0);
    }
    expect(await recordsOfNode(fx, "cm-b")).toEqual([]);
    // The holder goes: after the 2 s cooldown cm-b adopts its range, and the gauge says so.
    await deleteNodes(fx.api(), ["cm-a"]);
    await until("cm-b adopted", async () => (allocated(await recordsOfNode(fx, "cm-b")).length ? true : undefined), 30_000);
    expect(await until("PodCIDRConflict 0", async () => ((await inConflict(c, "PodCIDRConflict")) === 0 ? true : undefined))).toBe(true);
  });
});
