import { afterEach, describe, expect, it } from "vitest";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, createNodes, deleteNodes, emptyCluster, eventsFor, listNodeCidrs } from "../harness/cluster-objects.js";
import { allowNodeCidrs, until } from "../harness/controller-fixture.js";
import { killControllerProcesses, spawnController, type ControllerProcess, type WallClock } from "../harness/controller-process.js";

/**
 * Controllers as real processes whose wall clocks are off or stepped (test/harness/wall-clock-offset.mjs), as on
 * hosts without NTP, or where NTP or an operator steps the clock. Every wait is on each process's monotonic clock.
 */
const fx = useControlPlane();
afterEach(async () => {
  killControllerProcesses();
  await allowNodeCidrs(fx);
  await emptyCluster(fx.api());
});

const COOLDOWN_MS = 8_000;
const DAYS_30 = 30 * 86_400_000;

/** A controller process on the test's API server; `name` names its lease and its default pool. */
function controller(name: string, clusterCidr: string, wallClock?: WallClock): ControllerProcess {
  const flags = {
    "leader-elect": "true", "lease-namespace": "default", "lease-name": name, "lease-duration": "3s", "renew-deadline": "2s", "retry-period": "200ms",
    "release-cooldown": `${COOLDOWN_MS}ms`, "resync-period": "60s", "metrics-address": "127.0.0.1:0", "cluster-cidr": clusterCidr, "default-pool": name,
    kubeconfig: fx.cp.kubeconfig,
  };
  return spawnController(Object.entries(flags).map(([k, v]) => `--${k}=${v}`), wallClock ? { wallClock } : {});
}
const started = (c: ControllerProcess) => until("controller started", async () => (c.log.some((l) => l.msg === "controller started") ? true : undefined), 30_000);
const leads = (c: ControllerProcess, lease: string) => until(`${lease} held`, async () =>
  (c.holds((await fx.api().coordination.readNamespacedLease({ name: lease, namespace: "default" }).catch(() => undefined))?.spec?.holderIdentity) ? true : undefined), 30_000);
const cidrOf = async (node: string) => allocated(await listNodeCidrs(fx.api())).find((r) => r.spec.nodeName === node)?.spec.cidr;
const releaseOf = (cidr: string) => until(`${cidr} released`, async () => (await listNodeCidrs(fx.api())).find((r) => r.spec.cidr === cidr && r.status?.phase === "Released"));
const waiting = (node: string) => until(`${node} waits`, async () => (await eventsFor(fx.api(), "Node", node)).find((e) => e.reason === "PodCIDRNotAvailable"));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/**
 * A pool of two node slices (a /23 of /24s), both taken, and a third Node waiting: it gets the first one freed,
 * so when it gets it tells when that CIDR went back into circulation.
 */
async function fullPoolWithOneWaiting(prefix: string, ipBase: number): Promise<{ freed: string; kept: string }> {
  await createNodes(fx.api(), [{ name: `${prefix}-1`, ip: `192.168.${ipBase}.1` }, { name: `${prefix}-2`, ip: `192.168.${ipBase}.2` }]);
  const freed = await until(`${prefix}-1 allocated`, () => cidrOf(`${prefix}-1`));
  const kept = await until(`${prefix}-2 allocated`, () => cidrOf(`${prefix}-2`));
  await createNodes(fx.api(), [{ name: `${prefix}-0`, ip: `192.168.${ipBase}.3` }]);
  await waiting(`${prefix}-0`);
  return { freed, kept };
}

describe("controller on the real API server: the loop's waits", () => {
  it("a successor whose wall clock is 30 days behind does not replan in a hot loop", async () => {
    const a = controller("behind", "10.233.0.0/23");
    await started(a); await leads(a, "behind");
    const b = controller("behind", "10.233.0.0/23", { offsetMs: -DAYS_30 });
    await started(b);
    const { freed } = await fullPoolWithOneWaiting("bh", 94);
    await deleteNodes(fx.api(), ["bh-1"]);
    await releaseOf(freed);
    a.child.kill("SIGTERM");
    await leads(b, "behind");
    const plans0 = await b.metric("podnet_plan_duration_seconds_count");
    await sleep(3_000);
    // Before: the wait until releasedAt + cooldown, 30 days on b's clock, overflowed setTimeout to 1 ms (≈800 plans in 5 s).
    expect(await b.metric("podnet_plan_duration_seconds_count") - plans0).toBeLessThan(10);
  }, 90_000);
});
