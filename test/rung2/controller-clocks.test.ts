import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { cidrObjectName } from "../../src/lib/cidr.js";
import { mergePatch, podnetResource } from "../../src/lib/k8s.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, createNodes, deleteNodes, emptyCluster, eventsFor, listNodeCidrs } from "../harness/cluster-objects.js";
import { allowNodeCidrs, denyNodeCidrsFor, until } from "../harness/controller-fixture.js";
import { killControllerProcesses, spawnController, type ControllerProcess, type WallClock } from "../harness/controller-process.js";

/**
 * Controllers as real processes whose wall clocks are off or stepped (test/harness/wall-clock-offset.mjs), as on
 * hosts without NTP, or where NTP or an operator steps the clock. Every wait is on each process's monotonic clock.
 */
const fx = useControlPlane();
const clockDir = mkdtempSync(join(tmpdir(), "podnet-clocks-"));
afterEach(async () => {
  killControllerProcesses();
  await allowNodeCidrs(fx);
  await emptyCluster(fx.api());
});
afterAll(() => rmSync(clockDir, { recursive: true, force: true }));

const COOLDOWN_MS = 8_000;
const MINUTES_2 = 120_000;
const HOUR = 3_600_000;
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
/** A clock file for WallClock.file, stepped by `step`: the process reads it again on SIGUSR2. */
function steppableClock(name: string) {
  const file = join(clockDir, name);
  writeFileSync(file, "0");
  return { file, step: (c: ControllerProcess, offsetMs: number) => { writeFileSync(file, String(offsetMs)); c.child.kill("SIGUSR2"); } };
}

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

describe("controller on the real API server: a release cooldown is timed on the monotonic clock of the replica that ends it", () => {
  it("a successor whose wall clock is 2 min ahead holds a released CIDR a full cooldown from when it saw the release", async () => {
    const a = controller("ahead", "10.230.0.0/23");
    await started(a); await leads(a, "ahead");
    const b = controller("ahead", "10.230.0.0/23", { offsetMs: MINUTES_2 });
    await started(b);
    const { freed } = await fullPoolWithOneWaiting("ah", 91);
    await deleteNodes(fx.api(), ["ah-1"]);
    const releasedAt = Date.parse((await releaseOf(freed)).status!.releasedAt!); // a's clock is true
    await sleep(COOLDOWN_MS / 2);
    a.child.kill("SIGTERM"); // gives the lease up: b leads within a retry period
    await leads(b, "ahead");
    expect(await until("ah-0 gets the freed CIDR", () => cidrOf("ah-0"))).toBe(freed);
    const reusedAfterMs = Date.now() - releasedAt;
    // Before: b's first plan read releasedAt + cooldown as long past on its clock and freed the CIDR at once (5.2 s after the release, its takeover 4 s after it).
    expect(reusedAfterMs).toBeGreaterThanOrEqual(COOLDOWN_MS);
    // b saw the release as a follower: its count began then, not at its takeover (that would be 12 s and more).
    expect(reusedAfterMs).toBeLessThan(COOLDOWN_MS * 1.4);
  }, 90_000);

  it("a leader whose wall clock steps 2 min forward after a release holds the CIDR a full cooldown", async () => {
    const clock = steppableClock("step-forward");
    const a = controller("forward", "10.231.0.0/23", { file: clock.file });
    await started(a); await leads(a, "forward");
    const { freed } = await fullPoolWithOneWaiting("fw", 92);
    await deleteNodes(fx.api(), ["fw-1"]);
    const releasedAt = Date.parse((await releaseOf(freed)).status!.releasedAt!); // stamped before the step
    clock.step(a, MINUTES_2);
    await createNodes(fx.api(), [{ name: "fw-3", ip: "192.168.92.4" }]); // a plan after the step
    await waiting("fw-3");
    expect(await until("fw-0 gets the freed CIDR", () => cidrOf("fw-0"))).toBe(freed);
    expect(Date.now() - releasedAt).toBeGreaterThanOrEqual(COOLDOWN_MS);
  }, 90_000);

  it("a leader whose wall clock steps 2 min forward holds a hand-deleted NodeCIDR's CIDR a full cooldown from the deletion", async () => {
    const clock = steppableClock("hand-deleted");
    const a = controller("hand", "10.232.0.0/23", { file: clock.file });
    await started(a); await leads(a, "hand");
    const { kept } = await fullPoolWithOneWaiting("hd", 93);
    // hd-2 drains behind a finalizer; its record is deleted by hand meanwhile: its CIDR waits out the cooldown.
    await fx.api().core.patchNode({ name: "hd-2", body: { metadata: { finalizers: ["podnet.io/test-drain"] } } }, mergePatch());
    try {
      await deleteNodes(fx.api(), ["hd-2"]);
      await until("hd-2 marked for deletion", async () => ((await fx.api().core.readNode({ name: "hd-2" })).metadata?.deletionTimestamp ? true : undefined));
      const deletedAt = Date.now();
      await fx.api().custom.deleteClusterCustomObject({ ...podnetResource("nodecidrs"), name: cidrObjectName(kept) });
      await until("the deletion seen", async () => (a.log.some((l) => l.msg.startsWith("allocated NodeCIDR deleted by someone else")) ? true : undefined));
      clock.step(a, MINUTES_2);
      await fx.api().core.patchNode({ name: "hd-2", body: { metadata: { finalizers: null } } }, mergePatch()); // hd-2 goes: a plan
      expect(await until("hd-0 gets the CIDR", () => cidrOf("hd-0"))).toBe(kept);
      expect(Date.now() - deletedAt).toBeGreaterThanOrEqual(COOLDOWN_MS);
    } finally {
      await fx.api().core.patchNode({ name: "hd-2", body: { metadata: { finalizers: null } } }, mergePatch()).catch(() => undefined);
    }
  }, 90_000);

  it("a successor whose wall clock is 30 days behind neither replans in a hot loop nor holds a released CIDR for 30 days", async () => {
    const a = controller("behind", "10.233.0.0/23");
    await started(a); await leads(a, "behind");
    const b = controller("behind", "10.233.0.0/23", { offsetMs: -DAYS_30 });
    await started(b);
    const { freed } = await fullPoolWithOneWaiting("bh", 94);
    await deleteNodes(fx.api(), ["bh-1"]);
    const releasedAt = Date.parse((await releaseOf(freed)).status!.releasedAt!);
    a.child.kill("SIGTERM");
    await leads(b, "behind");
    const plans0 = await b.metric("podnet_plan_duration_seconds_count");
    await sleep(3_000);
    // Before: the wait until releasedAt + cooldown, 30 days on b's clock, overflowed setTimeout to 1 ms (476 plans in 3 s).
    expect(await b.metric("podnet_plan_duration_seconds_count") - plans0).toBeLessThan(10);
    expect(await until("bh-0 gets the freed CIDR", () => cidrOf("bh-0"))).toBe(freed);
    expect(Date.now() - releasedAt).toBeGreaterThanOrEqual(COOLDOWN_MS);
  }, 90_000);
});

describe("controller on the real API server: retries are timed on the monotonic clock", () => {
  it("a wall clock stepped back 1 h does not hold a refused NodeCIDR create past its backoff", async () => {
    const clock = steppableClock("step-back");
    const a = controller("back", "10.234.0.0/16", { file: clock.file });
    await started(a); await leads(a, "back");
    await denyNodeCidrsFor(fx, "x1");
    await createNodes(fx.api(), [{ name: "x1", ip: "192.168.95.1" }]);
    await until("x1's create refused", async () => (a.log.some((l) => l.msg === "action failed; will retry with backoff") ? true : undefined));
    clock.step(a, -HOUR);
    await allowNodeCidrs(fx);
    await createNodes(fx.api(), [{ name: "y1", ip: "192.168.95.2" }]); // plans go on meanwhile: y1 is served
    await until("y1 allocated", () => cidrOf("y1"));
    // Before: its retry time, wall clock + 1 s before the step, lay an hour ahead after it.
    expect(await until("x1 allocated", () => cidrOf("x1"), 15_000)).toBeDefined();
  }, 90_000);
});

describe("controller on the real API server: allocation latency", () => {
  it("counts from when the controller first saw the Node, not from its creationTimestamp on the API server's clock", async () => {
    const a = controller("latency", "10.235.0.0/16", { offsetMs: MINUTES_2 });
    await started(a); await leads(a, "latency");
    await createNodes(fx.api(), [{ name: "l1", ip: "192.168.96.1" }]);
    await until("l1 allocated", () => cidrOf("l1"));
    expect(await until("latency observed", async () => ((await a.metric("podnet_allocation_latency_seconds_count")) > 0 ? true : undefined))).toBe(true);
    // Before: 122.5 s, mostly the two clocks' skew.
    expect(await a.metric("podnet_allocation_latency_seconds_sum")).toBeLessThan(10);
  }, 60_000);
});
