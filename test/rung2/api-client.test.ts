import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { Agent as HttpsAgent, request } from "node:https";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import type { KubernetesObject } from "@kubernetes/client-node";
import { KubeApi, mergePatch, PooledAgent } from "../../src/lib/k8s.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { proxiedKubeconfig } from "../harness/tcp-proxy.js";
import { body, nodeCidrInformer, nodecidrs } from "../harness/nodecidr-informer.js";

const fx = useControlPlane();
describe("API client on the real API server", () => {
  it("reuses TLS connections across calls instead of a handshake per request (client-node 1.4.0 opens one per call)", async () => {
    const api = fx.api();
    for (let i = 0; i < 30; i++) await api.core.listNamespace({ limit: 1 });
    expect(api.connectionsOpened).toBe(1);
    await Promise.all(Array.from({ length: 40 }, () => api.core.listNamespace({ limit: 1 })));
    expect(api.connectionsOpened).toBeGreaterThan(1); // parallel calls open more connections…
    expect(api.connectionsOpened).toBeLessThanOrEqual(33); // …up to the pool's limit, never one per call
    const before = api.connectionsOpened;
    for (let i = 0; i < 10; i++) await api.core.listNamespace({ limit: 1 });
    expect(api.connectionsOpened).toBe(before);
  });

  it("lets go of the request that opened a pooled connection, with its response (Node's own agent keeps them)", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const { url, pki } = fx.cp;
    const tls = { ca: readFileSync(pki.caCert), cert: readFileSync(pki.adminCert), key: readFileSync(pki.adminKey) };
    /** One GET through `agent`; once its socket is back in the pool and after GC, is the request still reachable? */
    async function requestKept(agent: HttpsAgent): Promise<boolean> {
      const ref = await new Promise<WeakRef<object>>((resolve, reject) => {
        const req = request(`${url}/apis/podnet.io/v1alpha1/nodecidrs`, { agent, ...tls }, (res) => {
          res.resume();
          res.on("end", () => resolve(ref));
        });
        const ref = new WeakRef(req);
        req.on("error", reject).end();
      });
      for (let i = 0; i < 3; i++) { await new Promise((r) => setTimeout(r, 20)); gc(); }
      const kept = ref.deref() !== undefined;
      agent.destroy();
      return kept;
    }
    expect(await requestKept(new HttpsAgent({ keepAlive: true }))).toBe(true);
    expect(await requestKept(new PooledAgent({ keepAlive: true }))).toBe(false);
  });

  it("resumes its watch where it left off after its connection is cut: changes made meanwhile arrive, nothing is listed again", async () => {
    const { proxy, kubeconfig } = await proxiedKubeconfig(fx, "1");
    await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: body(3, "before") });
    const { inf, events } = nodeCidrInformer(fx, { api: KubeApi.fromKubeconfig(kubeconfig, "podnet-cli") });
    try {
      inf.start();
      await inf.synced;
      expect(inf.relists).toBe(1);
      await waitFor("watch open", async () => (proxy.accepted >= 2 ? true : undefined), 10_000); // list, then watch
      proxy.pause(); // what a load balancer's reset does; the apiserver stays up
      await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: body(7, "meanwhile") });
      await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: "10-250-3-0-24" });
      await new Promise((r) => setTimeout(r, 1_000));
      proxy.resume();
      await waitFor("the missed events", async () => (events.some(([e, n]) => e === "delete" && n === "10-250-3-0-24") ? true : undefined), 30_000);
      expect(events).toContainEqual(["add", "10-250-7-0-24"]);
      expect(inf.relists).toBe(1);
    } finally {
      inf.stop();
      await proxy.close();
    }
  }, 60_000);

  it("a late DELETED of an earlier incarnation does not drop the re-created object our own write already recorded", async () => {
    const { proxy, kubeconfig } = await proxiedKubeconfig(fx, "2");
    await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: body(20, "first") });
    const { inf, events } = nodeCidrInformer(fx, { api: KubeApi.fromKubeconfig(kubeconfig, "podnet-cli") });
    try {
      inf.start();
      await inf.synced;
      await waitFor("watch open", async () => (proxy.accepted >= 2 ? true : undefined), 10_000);
      proxy.pause(); // the watch falls behind: it will replay the deletion after our write's response
      await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: "10-250-20-0-24" });
      inf.assume(await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: body(20, "second") }) as KubernetesObject);
      events.length = 0;
      proxy.resume();
      // A sentinel made after both: events come in resourceVersion order, so once its add is seen the replayed
      // DELETED (and ADDED) of 10-250-20-0-24 have been handled.
      await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: body(21, "sentinel") });
      await waitFor("caught up to the sentinel", async () => (events.some(([e, n]) => e === "add" && n === "10-250-21-0-24") ? true : undefined), 15_000);
      expect(events.filter(([, n]) => n === "10-250-20-0-24")).not.toContainEqual(["delete", "10-250-20-0-24"]);
      expect((inf.cache.get("10-250-20-0-24") as { spec?: { nodeName?: string } } | undefined)?.spec?.nodeName).toBe("second");
    } finally {
      inf.stop();
      await proxy.close();
    }
  }, 60_000);

  it("catchUp() brings a cache whose watch lags up to the API server's state, and keeps what the watch brought since", async () => {
    const { proxy, kubeconfig } = await proxiedKubeconfig(fx, "3");
    await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: body(30, "before") });
    await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: body(31, "before") });
    // The watch goes through the proxy; catchUp's list goes straight to the API server.
    const { inf, events } = nodeCidrInformer(fx, { api: KubeApi.fromKubeconfig(kubeconfig, "podnet-cli"), listApi: fx.api() });
    try {
      inf.start();
      await inf.synced;
      await waitFor("watch open", async () => (proxy.accepted >= 1 ? true : undefined), 10_000);
      proxy.pause(); // a lagging watch: the predecessor's last writes have not arrived
      await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: body(32, "meanwhile") });
      await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: "10-250-30-0-24" });
      await fx.api().custom.patchClusterCustomObject({ ...nodecidrs, name: "10-250-31-0-24", body: { spec: { nodeIPs: ["192.168.1.31"] } } }, mergePatch());
      expect(inf.cache.has("10-250-32-0-24")).toBe(false);
      await inf.catchUp();
      expect(inf.cache.has("10-250-32-0-24")).toBe(true);
      expect(inf.cache.has("10-250-30-0-24")).toBe(false);
      expect((inf.cache.get("10-250-31-0-24") as { spec?: { nodeIPs?: string[] } }).spec?.nodeIPs).toEqual(["192.168.1.31"]);
      expect(events).toEqual(expect.arrayContaining([["add", "10-250-32-0-24"], ["delete", "10-250-30-0-24"], ["update", "10-250-31-0-24"]]));
      // The watch then replays the same changes: the deleted object does not come back, nothing is added or
      // deleted twice (a replayed version is announced as an update, as an assumed write's echo is).
      events.length = 0;
      proxy.resume();
      await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: body(33, "sentinel") });
      await waitFor("caught up to the sentinel", async () => (events.some(([e, n]) => e === "add" && n === "10-250-33-0-24") ? true : undefined), 15_000);
      expect(events.filter(([e]) => e !== "update")).toEqual([["add", "10-250-33-0-24"]]);
      expect(inf.cache.has("10-250-30-0-24")).toBe(false);
    } finally {
      inf.stop();
      await proxy.close();
    }
  }, 60_000);

  it("a call on a connection that went silent fails after the silence timeout instead of hanging until the kernel gives up", async () => {
    const { proxy, kubeconfig } = await proxiedKubeconfig(fx, "4");
    const api = KubeApi.fromKubeconfig(kubeconfig, "podnet-cli", { silenceTimeoutMs: 1_000 });
    try {
      await api.custom.listClusterCustomObject({ ...nodecidrs }); // a pooled connection, then an API server that dies without a reset
      proxy.blackhole();
      const outcome = await Promise.race([
        api.custom.listClusterCustomObject({ ...nodecidrs }).then(() => "answered", (err: Error) => err.message),
        new Promise<string>((r) => setTimeout(() => r("still waiting"), 10_000)),
      ]);
      expect(outcome).toContain("no answer from the API server for 1 s");
    } finally {
      await proxy.close();
    }
  }, 30_000);

  it("closes a watch the server accepted but never answered: while the peer hangs one socket stays open, after stop() none", async () => {
    const { proxy, kubeconfig } = await proxiedKubeconfig(fx, "5");
    // Only the watch goes through the proxy: the sockets counted are the watch's.
    const { inf } = nodeCidrInformer(fx, { api: KubeApi.fromKubeconfig(kubeconfig, "podnet-cli"), listApi: fx.api(), stallTimeoutMs: 1_000 });
    /** This process's established connections to the proxy (the client ends: destination port = the proxy's). */
    const watchSockets = () => execFileSync("ss", ["-Htn", "state", "established", `( dport = :${proxy.port} )`], { encoding: "utf8" }).split("\n").filter(Boolean).length;
    try {
      inf.start();
      await inf.synced;
      await waitFor("watch open", async () => (proxy.accepted >= 1 ? true : undefined), 10_000);
      proxy.blackhole(); // connections accepted, never a byte back: the watch never gets its headers
      const watches = inf.watches;
      await waitFor("four watches cut off by the watchdog", async () => (inf.watches >= watches + 4 ? true : undefined), 30_000);
      // Before: each watch cut off before its headers kept its socket (client-node's Watch gave no way to abort it): 4 or more.
      expect(watchSockets()).toBeLessThanOrEqual(1);
      inf.stop();
      await waitFor("no socket left after stop()", async () => (watchSockets() === 0 ? true : undefined), 5_000);
    } finally {
      inf.stop();
      await proxy.close();
    }
  }, 60_000);

  // Last in this file: it restarts the file's apiserver.
  it("after an apiserver restart (whose new watch cache answers 410 Gone for older versions) lists once more and catches up", async () => {
    const { inf, events } = nodeCidrInformer(fx);
    inf.start();
    await inf.synced;
    expect(inf.relists).toBe(1);
    await fx.cp.stopApiserver();
    await fx.cp.startApiserver();
    await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: body(10, "n") });
    await waitFor("event after the restart", async () => (events.some(([e, n]) => e === "add" && n === "10-250-10-0-24") ? true : undefined), 30_000);
    expect(inf.relists).toBe(2);
    inf.stop();
  }, 60_000);
});
