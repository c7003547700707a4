import { afterEach, describe, expect, it } from "vitest";
import { controllerConfigSchema } from "../../src/config.js";
import { AllocationController } from "../../src/controllers/controller.js";
import { KubeApi } from "../../src/lib/k8s.js";
import { createLogger, silentLogger } from "../../src/log.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, createNodes, deleteNodes, emptyCluster, invariantViolations, listNodeCidrs } from "../harness/cluster-objects.js";
import { allowNodeCidrs, denyNodeCidrsFor, until } from "../harness/controller-fixture.js";
import { proxiedKubeconfig, type TcpProxy } from "../harness/tcp-proxy.js";

/**
 * A replica that becomes leader while its watches lag its predecessor's last writes: it lists afresh before its
 * first plan (`Informer.catchUp`). Planned on its caches instead, it would hand a Node a second CIDR.
 */
const fx = useControlPlane();
const running: AllocationController[] = [];
let proxy: TcpProxy | undefined;
afterEach(async () => {
  for (const c of running.splice(0)) await c.stop();
  await proxy?.close();
  await allowNodeCidrs(fx);
  await emptyCluster(fx.api());
});

async function replica(api: KubeApi, cooldown: string): Promise<AllocationController> {
  const config = controllerConfigSchema.parse({
    "metrics-address": "127.0.0.1:0", "lease-namespace": "default", "lease-name": "takeover", "release-cooldown": cooldown, "resync-period": "60s",
    "cluster-cidr": "10.240.0.0/16", "default-pool": "takeover", "lease-duration": "3s", "renew-deadline": "2s", "retry-period": "200ms",
  });
  const c = new AllocationController(api, config, process.env.PODNET_TEST_LOGS ? createLogger(`ctl-${running.length}`, "debug") : silentLogger());
  running.push(c);
  await c.start();
  return c;
}
const recordsOf = async (node: string) => (await listNodeCidrs(fx.api())).filter((r) => r.spec.nodeName === node);

describe("controller on the real API server: takeover with lagging watches", () => {
  it("a successor whose watches missed its predecessor's last writes gives a waiting Node no second CIDR", async () => {
    // A rollout that raises --release-cooldown: the old leader a frees CIDRs after 2 s, its successor b after 30 s.
    const a = await replica(fx.api("podnet-controller"), "2s");
    await until("a leads", async () => (a.isLeader ? true : undefined));
    // b reaches the API server through a proxy that can stall its open connections (its watches) while new
    // requests go through; an idle pooled connection it stalls is closed after 1 s and opened again.
    const proxied = await proxiedKubeconfig(fx, "takeover");
    proxy = proxied.proxy;
    const b = await replica(KubeApi.fromKubeconfig(proxied.kubeconfig, "podnet-controller", { silenceTimeoutMs: 1_000 }), "30s");
    await until("b synced", async () => (b.synced ? true : undefined));

    await createNodes(fx.api(), [{ name: "y-1", ip: "192.168.90.1" }, { name: "z-1", ip: "192.168.90.2" }]);
    const [zCidr] = await until("z-1 allocated", async () => { const r = allocated(await recordsOf("z-1")); return r.length ? r.map((x) => x.spec.cidr) : undefined; });
    // x-1 joins but its NodeCIDR is refused for now; z-1 leaves, its CIDR in cooldown. b sees all of that.
    await denyNodeCidrsFor(fx, "x-1");
    await createNodes(fx.api(), [{ name: "x-1", ip: "192.168.90.3" }]);
    await deleteNodes(fx.api(), ["z-1"]);
    await until("b saw x-1 and z-1's release", async () => (b.nodes.cache.has("x-1")
      && [...b.records.cache.values()].some((r) => r.spec.cidr === zCidr && r.status?.phase === "Released") ? true : undefined));
    // From here b's watches hear nothing: the cooldown ends and a deletes z-1's record, then x-1 gets that CIDR.
    proxy.stallOpen();
    await until("z-1's record deleted", async () => ((await listNodeCidrs(fx.api())).some((r) => r.spec.cidr === zCidr) ? undefined : true));
    await allowNodeCidrs(fx);
    const [xCidr] = await until("x-1 allocated by a", async () => { const r = allocated(await recordsOf("x-1")); return r.length ? r.map((x) => x.spec.cidr) : undefined; });
    expect(xCidr).toBe(zCidr); // the lowest free range again
    // b is behind: for it z-1's CIDR is still Released and, by its 30 s, in cooldown; x-1 has none.
    expect([...b.records.cache.values()].find((r) => r.spec.cidr === zCidr)?.status?.phase).toBe("Released");

    await a.stop(); // graceful: the lease goes to b at once
    await until("b leads", async () => (b.isLeader ? true : undefined), 15_000);
    await until("b planned", async () => (b.plans > 0 ? true : undefined));
    await new Promise((r) => setTimeout(r, 2_000)); // its first plans and their writes
    // Planned on its caches, b gave x-1 the next range as well (a second record, then quarantined).
    expect((await recordsOf("x-1")).map((r) => `${r.spec.cidr} ${r.status?.phase}`)).toEqual([`${xCidr} Allocated`]);
    expect(invariantViolations(await listNodeCidrs(fx.api()))).toEqual([]);
  });
});
