import { afterEach, describe, expect, it, vi } from "vitest";
import type { KubernetesObject } from "@kubernetes/client-node";
import { mergePatch } from "../../src/lib/k8s.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { body, nodeCidrInformer, nodecidrs } from "../harness/nodecidr-informer.js";

const fx = useControlPlane();

describe("Informer on the real API server", () => {
  it("lists in pages, then sees adds, updates and deletes through the watch", async () => {
    for (const i of [1, 2, 3]) await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: body(i, "n") });
    const { inf, events } = nodeCidrInformer(fx);
    inf.start();
    await inf.synced;
    expect([...inf.cache.keys()].sort()).toEqual(["10-250-1-0-24", "10-250-2-0-24", "10-250-3-0-24"]);
    await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: body(4, "n") });
    await fx.api().custom.patchClusterCustomObject({ ...nodecidrs, name: "10-250-4-0-24", body: { spec: { nodeIPs: ["192.168.1.4"] } } },
      mergePatch());
    await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: "10-250-1-0-24" });
    await waitFor("delete event", async () => (events.some(([e, n]) => e === "delete" && n === "10-250-1-0-24") ? true : undefined), 10_000);
    expect(events).toContainEqual(["add", "10-250-4-0-24"]);
    expect(events).toContainEqual(["update", "10-250-4-0-24"]);
    expect(inf.cache.has("10-250-1-0-24")).toBe(false);
    inf.stop();
  });

  it("keeps going after the list fails with HTTP 500 (client-node's own informer stops for good)", async () => {
    const { inf } = nodeCidrInformer(fx, { failFirstLists: 2 });
    inf.start();
    await waitFor("sync after failures", async () => (inf.isSynced ? true : undefined), 15_000);
    expect(inf.cache.size).toBeGreaterThan(0);
    inf.stop();
  });

  it("restarts a silent watch (from where it was, no relist) and still delivers later events", async () => {
    const { inf, events } = nodeCidrInformer(fx, { stallTimeoutMs: 1_000 });
    inf.start();
    await inf.synced;
    await waitFor("watchdog restarts", async () => (inf.watches >= 3 ? true : undefined), 15_000);
    expect(inf.relists).toBe(1);
    await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: body(9, "late") });
    await waitFor("event after restarts", async () => (events.some(([e, n]) => e === "add" && n === "10-250-9-0-24") ? true : undefined), 10_000);
    inf.stop();
  });
});

describe("Informer on the real API server: its timers run on the monotonic clock", () => {
  afterEach(() => { vi.restoreAllMocks(); });
  /** This process's wall clock (Date.now) off by `offsetMs` from here on, its monotonic clock untouched, as when NTP steps it. */
  const stepWallClock = (offsetMs: number) => { const realNow = Date.now.bind(Date); vi.spyOn(Date, "now").mockImplementation(() => realNow() + offsetMs); };

  it("restarts a silent watch also after the wall clock stepped back an hour", async () => {
    const { inf } = nodeCidrInformer(fx, { stallTimeoutMs: 1_000 });
    inf.start();
    await waitFor("the watch begun", async () => (inf.watches > 0 ? true : undefined), 10_000);
    const watches = inf.watches;
    stepWallClock(-3_600_000);
    // Before: the silence was measured on the wall clock, negative for the next hour: not one restart.
    await waitFor("watchdog restarts", async () => (inf.watches >= watches + 2 ? true : undefined), 15_000);
    inf.stop();
  });

  it("still refuses a late response for an object it saw deleted after the wall clock stepped 10 minutes forward", async () => {
    const api = fx.api();
    const { inf } = nodeCidrInformer(fx);
    inf.start();
    await inf.synced;
    const name = "10-250-42-0-24";
    const created = (await api.custom.createClusterCustomObject({ ...nodecidrs, body: body(42, "node-gone") })) as KubernetesObject;
    await waitFor("watch delivers the create", async () => inf.cache.has(name) || undefined, 10_000);
    await api.custom.deleteClusterCustomObject({ ...nodecidrs, name });
    await waitFor("watch delivers the delete", async () => (inf.cache.has(name) ? undefined : true), 10_000);
    stepWallClock(10 * 60_000);
    // Before: the tombstone's 5 minutes were on the wall clock, over at once: the deleted object came back.
    inf.assume(created);
    expect(inf.cache.has(name)).toBe(false);
    inf.stop();
  });
});

describe("Informer with a projection on the real API server", () => {
  it("caches only the projection and stays quiet about changes outside it", async () => {
    const api = fx.api();
    type Rec = KubernetesObject & { spec?: { nodeIPs?: string[] } };
    const project = (o: Rec): Rec => ({ metadata: { name: o.metadata?.name, resourceVersion: o.metadata?.resourceVersion }, spec: { nodeIPs: o.spec?.nodeIPs } });
    const { inf, events } = nodeCidrInformer(fx, { project });
    inf.start();
    await inf.synced;
    await api.custom.createClusterCustomObject({ ...nodecidrs, body: body(50, "node-projection") });
    const name = "10-250-50-0-24";
    await waitFor("add", async () => (inf.cache.has(name) ? true : undefined), 10_000);
    const labelled = (await api.custom.patchClusterCustomObject({ ...nodecidrs, name, body: { metadata: { labels: { outside: "projection" } } } }, mergePatch())) as KubernetesObject;
    await waitFor("watch delivers the label change", async () => (inf.cache.get(name)?.metadata?.resourceVersion === labelled.metadata?.resourceVersion ? true : undefined), 10_000);
    expect(events.filter(([, n]) => n === name)).toEqual([["add", name]]); // cache refreshed, no event
    expect(inf.cache.get(name)).toEqual({ metadata: { name, resourceVersion: labelled.metadata?.resourceVersion }, spec: { nodeIPs: undefined } });
    await api.custom.patchClusterCustomObject({ ...nodecidrs, name, body: { spec: { nodeIPs: ["192.168.1.50"] } } }, mergePatch());
    await waitFor("update inside the projection", async () => (events.some(([e, n]) => e === "update" && n === name) ? true : undefined), 10_000);
    expect((inf.cache.get(name) as Rec).spec?.nodeIPs).toEqual(["192.168.1.50"]);
    inf.stop();
  });
});

describe("Informer.assume on the real API server", () => {
  it("keeps a newer object the watch delivered when the response to an earlier write of ours arrives late", async () => {
    const api = fx.api();
    const { inf } = nodeCidrInformer(fx);
    inf.start();
    await inf.synced;
    await api.custom.createClusterCustomObject({ ...nodecidrs, body: body(40, "node-assume") });
    const patch = (labels: Record<string, string>) => api.custom.patchClusterCustomObject(
      { ...nodecidrs, name: "10-250-40-0-24", body: { metadata: { labels } } }, mergePatch()) as Promise<KubernetesObject>;
    const early = await patch({ step: "early" });
    const later = await patch({ step: "later" });
    await waitFor("watch delivers the later write", async () => (inf.cache.get("10-250-40-0-24")?.metadata?.resourceVersion === later.metadata?.resourceVersion ? true : undefined), 10_000);
    inf.assume(early); // the late response must not roll the cache back
    expect(inf.cache.get("10-250-40-0-24")?.metadata?.labels?.step).toBe("later");
    const latest = await patch({ step: "latest" });
    inf.assume(latest); // a newer response is taken at once, before its watch event
    expect(inf.cache.get("10-250-40-0-24")?.metadata?.labels?.step).toBe("latest");
    inf.stop();
  });

  it("never brings back an object the watch saw deleted when a response to an earlier write arrives late", async () => {
    const api = fx.api();
    const { inf } = nodeCidrInformer(fx);
    inf.start();
    await inf.synced;
    const name = "10-250-41-0-24";
    const created = (await api.custom.createClusterCustomObject({ ...nodecidrs, body: body(41, "node-gone") })) as KubernetesObject;
    await waitFor("watch delivers the create", async () => inf.cache.has(name) || undefined, 10_000);
    await api.custom.deleteClusterCustomObject({ ...nodecidrs, name });
    await waitFor("watch delivers the delete", async () => (inf.cache.has(name) ? undefined : true), 10_000);
    inf.assume(created);
    expect(inf.cache.has(name)).toBe(false);
    // The same name created again is a new object: its response is taken, as any newer one.
    const again = (await api.custom.createClusterCustomObject({ ...nodecidrs, body: body(41, "node-back") })) as KubernetesObject;
    inf.assume(again);
    expect(inf.cache.get(name)?.metadata?.resourceVersion).toBe(again.metadata?.resourceVersion);
    inf.stop();
  });
});

