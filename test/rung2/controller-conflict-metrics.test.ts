import { describe, expect, it } from "vitest";
import type { AllocationController } from "../../src/controllers/controller.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, createNodes, deleteNodes } from "../harness/cluster-objects.js";
import { recordsOfNode, startController, stopAndEmptyAfterEach, until } from "../harness/controller-fixture.js";
import { microTime } from "../../src/lib/leader.js";

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

  it("a replica that loses the lease while its new term's catch-up lists run sets no figures as a follower", async () => {
    const lease = "cm-gauge";
    controller = await startController(fx, { "leader-elect": "true", "lease-name": lease, "lease-duration": "3s", "renew-deadline": "2s", "retry-period": "200ms",
      "cluster-cidr": "10.246.0.0/16", "default-pool": "cm-gauge", "resync-period": "60s" });
    const c = controller;
    const steal = async (holder: string) => {
      const ref = { group: "coordination.k8s.io", version: "v1", plural: "leases", namespace: "default", name: lease };
      for (let attempt = 0; ; attempt++) {
        const body = await fx.api().custom.getNamespacedCustomObject(ref) as { spec: Record<string, unknown> };
        body.spec = { ...body.spec, holderIdentity: holder, renewTime: microTime(Date.now()), leaseDurationSeconds: 3 };
        try { await fx.api().custom.replaceNamespacedCustomObject({ ...ref, body }); return; } catch (err) {
          if (attempt > 20) throw err; // the replica's renewal raced this write (409): read again
        }
      }
    };
    await until("leads", async () => (c.isLeader ? true : undefined));
    await createNodes(fx.api(), [{ name: "cm-out", ip: "192.168.72.1", podCIDRs: ["10.99.0.0/24"] }]);
    await until("PodCIDROutsidePool 1", async () => ((await inConflict(c, "PodCIDROutsidePool")) === 1 ? true : undefined));
    // The next term's catch-up waits on a gate: a list slow enough for the lease to go meanwhile (an API server
    // under load, when leases flap), which a test cannot make the real one do on cue.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => { open = resolve; });
    const records = (c as unknown as { records: { catchUp: () => Promise<void> } }).records;
    const catchUp = records.catchUp.bind(records);
    let catchUps = 0;
    records.catchUp = async () => { catchUps++; await gate; return catchUp(); };
    await steal("intruder-1");
    await until("stepped down", async () => (!c.isLeader ? true : undefined));
    await until("leads again", async () => (c.isLeader ? true : undefined), 20_000);
    await until("its catch-up under way", async () => (catchUps > 0 ? true : undefined));
    await steal("intruder-2");
    await until("stepped down again", async () => (!c.isLeader ? true : undefined));
    const keep = setInterval(() => { void steal("intruder-2").catch(() => undefined); }, 500);
    try {
      open();
      const plans = c.plans;
      await until("the pass planned after its catch-up", async () => (c.plans > plans ? true : undefined));
      const m = await scrape(c);
      expect(m.get("podnet_controller_is_leader")).toBe(0);
      expect(m.get('podnet_nodes_in_conflict{reason="PodCIDROutsidePool"}')).toBeUndefined();
      expect(m.get("podnet_nodecidrs_retained")).toBe(0); // a gauge without labels reads 0 once reset
    } finally {
      clearInterval(keep);
    }
  });
});
