import { describe, expect, it } from "vitest";
import { LeaderElector, microTime } from "../../src/lib/leader.js";
import { KubeApi } from "../../src/lib/k8s.js";
import { pino } from "pino";
import { waitFor } from "../../src/localcluster/processes.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { proxiedKubeconfig } from "../harness/tcp-proxy.js";

const fx = useControlPlane();

function elector(id: string, leaseName: string, api = fx.api("podnet-controller"), timing = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 200 }) {
  const state = { leading: false, overlaps: 0, startedAt: 0, stoppedAt: 0, starts: 0 };
  const logs: Array<{ level: number; msg: string }> = [];
  const log = pino({ level: "info" }, { write: (line: string) => { logs.push(JSON.parse(line) as (typeof logs)[number]); } });
  const e = new LeaderElector({
    api, namespace: "default", name: leaseName, identity: id, log,
    ...timing,
    onStartedLeading: () => { state.leading = true; state.startedAt = performance.now(); state.starts++; },
    onStoppedLeading: () => { state.leading = false; state.stoppedAt = performance.now(); },
  });
  /** The step-down lines on-call reads: level and message. */
  const stepDowns = () => logs.filter((l) => l.msg.startsWith("stopped leading")).map((l) => [l.level, l.msg]);
  return { e, state, stepDowns };
}

describe("Lease leader election on the real API server", () => {
  it("elects exactly one of two replicas and hands over at once on graceful stop", async () => {
    const a = elector("replica-a", "podnet-test-graceful");
    const b = elector("replica-b", "podnet-test-graceful");
    void a.e.run();
    void b.e.run();
    const first = await waitFor("a leader", async () => (a.state.leading || b.state.leading ? (a.state.leading ? a : b) : undefined), 10_000);
    const second = first === a ? b : a;
    for (let i = 0; i < 10; i++) {
      expect(a.state.leading && b.state.leading).toBe(false);
      await new Promise((r) => setTimeout(r, 100));
    }
    await first.e.stop();
    // Released, not abandoned: no holder and a 1 s duration, so the follower need not wait out the 3 s lease.
    // (How fast the handover is: bench/controller-failover.bench.ts.)
    const released = await fx.api("podnet-controller").coordination.readNamespacedLease({ name: "podnet-test-graceful", namespace: "default" });
    const secondId = second === a ? "replica-a" : "replica-b";
    expect(["", secondId]).toContain(released.spec?.holderIdentity); // never still the stopped replica
    if (released.spec?.holderIdentity === "") expect(released.spec.leaseDurationSeconds).toBe(1);
    await waitFor("takeover", async () => (second.state.leading ? true : undefined), 10_000);
    await second.e.stop();
  });

  it("takes over from a leader that died without releasing, only after the lease duration", async () => {
    const a = elector("crashy", "podnet-test-crash");
    void a.e.run();
    await waitFor("a leads", async () => (a.state.leading ? true : undefined), 10_000);
    (a.e as unknown as { running: boolean }).running = false; // the process "dies": no more renewals, no release
    const diedAt = Date.now();
    const b = elector("survivor", "podnet-test-crash");
    void b.e.run();
    await waitFor("b takes over", async () => (b.state.leading ? true : undefined), 15_000);
    const waited = Date.now() - diedAt;
    expect(waited).toBeGreaterThanOrEqual(2_500);
    expect(b.e.transitions).toBe(1);
    await b.e.stop();
  });

  it("a leader whose API connection goes silent steps down within its renew deadline, before the lease can pass to another", async () => {
    const { proxy, kubeconfig } = await proxiedKubeconfig(fx, "leader");
    const a = elector("silenced", "podnet-test-blackhole", KubeApi.fromKubeconfig(kubeconfig, "podnet-controller"));
    void a.e.run();
    try {
      await waitFor("a leads", async () => (a.state.leading ? true : undefined), 10_000);
      proxy.blackhole(); // requests hang: no error, no answer
      // Another replica, on the real API server, takes the lease once it expires: a must have stepped down first.
      const b = elector("successor", "podnet-test-blackhole");
      void b.e.run();
      try {
        await waitFor("the successor leads", async () => (b.state.leading ? true : undefined), 15_000, 50);
        expect(a.state.leading).toBe(false);
        expect(a.state.stoppedAt).toBeGreaterThan(0);
        expect(a.state.stoppedAt).toBeLessThan(b.state.startedAt);
        expect(a.stepDowns()).toEqual([[40, "stopped leading: not renewed within the renew deadline (2000 ms; the API server did not answer or refused)"]]);
      } finally {
        await b.e.stop();
      }
    } finally {
      await a.e.stop().catch(() => undefined);
      await proxy.close();
    }
  });

  it("stop() while a renewal is under way releases the lease once it is over, and never leads again", async () => {
    const api = fx.api("podnet-controller");
    const a = elector("racer", "podnet-test-stop-race", api);
    let startedAfterStop = false;
    let stopped = false;
    const leadsAgain = a.state;
    void a.e.run();
    await waitFor("a leads", async () => (a.state.leading ? true : undefined), 10_000);
    // A loaded API server: each read answers 300 ms late. stop() comes while a renewal's read is out.
    const read = api.custom.getNamespacedCustomObject.bind(api.custom);
    let reading = 0;
    api.custom.getNamespacedCustomObject = (async (...args: Parameters<typeof read>) => {
      reading++;
      try { const lease = await read(...args); await new Promise((r) => setTimeout(r, 300)); return lease; } finally { reading--; }
    }) as typeof read;
    await waitFor("a renewal's read under way", async () => (reading > 0 ? true : undefined), 5_000, 2);
    const watch = setInterval(() => { if (stopped && leadsAgain.leading) startedAfterStop = true; }, 5);
    await a.e.stop();
    stopped = true;
    await new Promise((r) => setTimeout(r, 800)); // would-be rounds after stop
    clearInterval(watch);
    const lease = await fx.api().coordination.readNamespacedLease({ name: "podnet-test-stop-race", namespace: "default" });
    expect(lease.spec?.holderIdentity).toBe(""); // released: a successor takes over at once
    expect({ isLeader: a.e.isLeader, startedAfterStop }).toEqual({ isLeader: false, startedAfterStop: false });
  });

  it("a leader holds the lease for writing only within the renew deadline of its last renewal, by the clock now", async () => {
    const a = elector("clocked", "podnet-test-clock");
    void a.e.run();
    try {
      await waitFor("a leads", async () => (a.state.leading ? true : undefined), 10_000);
      expect(a.e.holdsLease()).toBe(true);
      // A process frozen for longer than the renew deadline resumes with its flag still set: not a writer.
      expect(a.e.holdsLease(performance.now() + 2_500)).toBe(false);
      expect(a.e.isLeader).toBe(true);
    } finally {
      await a.e.stop();
    }
  });

  it("a renewal counts from when its request went out: a late answer does not stretch the write window past a follower's takeover", async () => {
    const api = fx.api("podnet-controller");
    const a = elector("late", "podnet-test-late-answer", api);
    void a.e.run();
    try {
      await waitFor("a leads", async () => (a.state.leading ? true : undefined), 10_000);
      // One renewal's answer arrives 700 ms after the server took it; every later one never arrives.
      const replace = api.custom.replaceNamespacedCustomObject.bind(api.custom);
      let sentAt: number | undefined;
      let answered = false;
      api.custom.replaceNamespacedCustomObject = (async (...args: Parameters<typeof replace>) => {
        if (sentAt !== undefined) return new Promise(() => undefined);
        const t = performance.now();
        sentAt = t;
        const out = await replace(...args);
        await new Promise((r) => setTimeout(r, 700));
        answered = true;
        return out;
      }) as typeof replace;
      await waitFor("the late answer taken", async () => (answered ? true : undefined), 5_000, 10);
      await new Promise((r) => setTimeout(r, 50));
      // The server stamped the renewal after sentAt: a follower may take over from sentAt + the lease duration on.
      expect(a.e.holdsLease(sentAt! + 2_000 + 1)).toBe(false);
      expect(a.e.holdsLease(sentAt! + 2_000 - 50)).toBe(true);
    } finally {
      await a.e.stop().catch(() => undefined);
    }
  });

  it("a leader that reads the lease held by another replica steps down at once, not at its renew deadline", async () => {
    const api = fx.api("podnet-controller");
    // A long renew deadline: only seeing the other holder can end this leader's term within the test.
    const a = elector("overtaken", "podnet-test-overtaken", api, { leaseDurationMs: 40_000, renewDeadlineMs: 30_000, retryPeriodMs: 200 });
    void a.e.run();
    try {
      await waitFor("a leads", async () => (a.state.leading ? true : undefined), 10_000);
      // Another replica's write (an operator forcing a handover, or a replica whose clock judged the lease expired).
      for (let attempt = 0; ; attempt++) {
        const ref = { group: "coordination.k8s.io", version: "v1", plural: "leases", namespace: "default", name: "podnet-test-overtaken" };
        const lease = (await fx.api().custom.getNamespacedCustomObject(ref)) as { spec: Record<string, unknown> };
        lease.spec = { ...lease.spec, holderIdentity: "intruder", renewTime: microTime(Date.now()) };
        try { await fx.api().custom.replaceNamespacedCustomObject({ ...ref, body: lease }); break; } catch (err) {
          if (attempt > 20) throw err; // a's renewal raced this write (409): read again
        }
      }
      await waitFor("a steps down", async () => (!a.state.leading ? true : undefined), 5_000, 20);
      expect(a.e.holdsLease()).toBe(false);
      expect(a.stepDowns()).toEqual([[40, "stopped leading: the lease is held by intruder"]]);
    } finally {
      await a.e.stop().catch(() => undefined);
    }
  });

  it("a leader frozen past its renew deadline refuses writes on waking and plans again once it has renewed", async () => {
    const a = elector("frozen", "podnet-test-frozen");
    void a.e.run();
    try {
      await waitFor("a leads", async () => (a.state.leading ? true : undefined), 10_000);
      expect(a.state.starts).toBe(1);
      // The whole process stops for 2.3 s (a paused VM, CPU throttling): past the 2 s renew deadline, inside the
      // 3 s lease, so nobody else could have taken over; the plan it had is stale all the same.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2_300);
      expect(a.e.holdsLease()).toBe(false);
      // Planning again from what it sees now: either through the renewal that notices the lapse, or, when that
      // round misses its last 100 ms, by stepping down and taking the lease again.
      await waitFor("a plans again", async () => (a.state.starts >= 2 ? true : undefined), 5_000, 10);
      expect(a.e.holdsLease()).toBe(true);
    } finally {
      await a.e.stop().catch(() => undefined);
    }
  });
});
