import { describe, expect, it } from "vitest";
import type { AllocationController } from "../../src/controllers/controller.js";
import { EventRecorder } from "../../src/lib/events.js";
import { silentLogger } from "../../src/log.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { createNodes, eventsFor } from "../harness/cluster-objects.js";
import { startController, stopAndEmptyAfterEach, until } from "../harness/controller-fixture.js";

const fx = useControlPlane();
let controller: AllocationController | undefined;
stopAndEmptyAfterEach(fx, () => controller, () => { controller = undefined; });

describe("Events on the real API server", () => {
  it("a complaint written again counts on its Event (count, lastTimestamp) and names its node; once that Event is deleted, a new one", async () => {
    const recorder = new EventRecorder(fx.api(), "podnet-agent", silentLogger(), { intervalMs: 0, instance: "node-e", host: "node-e" });
    const target = { kind: "Node" as const, name: "node-e", uid: "uid-e" };
    expect(await recorder.emit(target, "Warning", "RouteConflict", "10.244.9.0/24 is already routed")).toBe("sent");
    await new Promise((r) => setTimeout(r, 1_100)); // Event times have whole seconds
    for (let i = 0; i < 2; i++) expect(await recorder.emit(target, "Warning", "RouteConflict", "10.244.9.0/24 is already routed")).toBe("sent");
    const [event, ...more] = await eventsFor(fx.api(), "Node", "node-e");
    expect(more).toEqual([]);
    expect(event).toMatchObject({ count: 3, reason: "RouteConflict", reportingComponent: "podnet.io/podnet-agent", reportingInstance: "node-e",
      source: { component: "podnet-agent", host: "node-e" } });
    expect(event!.lastTimestamp!.getTime()).toBeGreaterThan(event!.firstTimestamp!.getTime());

    await fx.api().core.deleteNamespacedEvent({ name: event!.metadata!.name!, namespace: "default" });
    expect(await recorder.emit(target, "Warning", "RouteConflict", "10.244.9.0/24 is already routed")).toBe("sent");
    const [fresh, ...others] = await eventsFor(fx.api(), "Node", "node-e");
    expect(others).toEqual([]);
    expect(fresh!.metadata!.name).not.toBe(event!.metadata!.name);
    expect(fresh!.count).toBe(1);
  });

  it("the controller's Events name the replica as its lease does", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.244.0.0/16", "leader-elect": "true", "lease-duration": "2s", "renew-deadline": "1s", "retry-period": "200ms" });
    await createNodes(fx.api(), [{ name: "ev-out", ip: "192.168.90.1", podCIDRs: ["172.16.5.0/24"] }]);
    const event = await until("outside-pool event", async () => (await eventsFor(fx.api(), "Node", "ev-out")).find((e) => e.reason === "PodCIDROutsidePool"));
    expect(event.reportingInstance).toBe(controller.elector!.identity);
    expect(event.reportingInstance).toMatch(/^\S+-\d+-[0-9a-z]+$/);
  });
});
