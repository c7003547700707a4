import type { KubernetesObject } from "@kubernetes/client-node";
import { describe, expect, it, vi } from "vitest";
import type { NodeCidrObject } from "../controllers/observe.js";
import { EventRecorder } from "../lib/events.js";
import type { Informer } from "../lib/informer.js";
import type { KubeApi } from "../lib/k8s.js";
import { pino } from "pino";
import { StatusPacing } from "./agent-status.js";
import { NetworkUnavailableClearer } from "./node-network-condition.js";
import { LatestOnly, StatusWriter, type PassEvent, type StatusJob } from "./status-writer.js";

/** A job that runs until the test lets it finish. */
function gatedRunner() {
  const ran: number[] = [];
  const gates: Array<() => void> = [];
  let inFlight = 0;
  let most = 0;
  const errors: unknown[] = [];
  const runner = new LatestOnly<number>(async (n) => {
    inFlight++;
    most = Math.max(most, inFlight);
    ran.push(n);
    await new Promise<void>((resolve) => gates.push(resolve));
    inFlight--;
    if (n < 0) throw new Error(`job ${n}`);
  }, (err) => errors.push(err));
  const release = async () => { gates.shift()!(); await new Promise((r) => setTimeout(r, 0)); };
  return { runner, ran, release, errors, most: () => most };
}

describe("LatestOnly: the newest job, one at a time", () => {
  it("runs an offer at once, and of those made meanwhile only the newest, after it", async () => {
    const { runner, ran, release, most } = gatedRunner();
    runner.offer(1);
    expect(runner.running).toBe(true);
    runner.offer(2);
    runner.offer(3);
    expect(ran).toEqual([1]);
    await release();
    expect(ran).toEqual([1, 3]);
    await release();
    expect(runner.running).toBe(false);
    runner.offer(4);
    await release();
    expect(ran).toEqual([1, 3, 4]);
    expect(most()).toBe(1);
  });

  it("a job that throws is reported and the next one still runs", async () => {
    const { runner, ran, release, errors } = gatedRunner();
    runner.offer(-1);
    runner.offer(5);
    await release();
    await release();
    expect(ran).toEqual([-1, 5]);
    expect(errors.map((e) => (e as Error).message)).toEqual(["job -1"]);
  });

  it("stop drops what waits, resolves when the running job ends, and takes no offer after", async () => {
    const { runner, ran, release } = gatedRunner();
    runner.offer(1);
    runner.offer(2);
    let stopped = false;
    const stopping = runner.stop().then(() => { stopped = true; });
    await new Promise((r) => setTimeout(r, 0));
    expect(stopped).toBe(false);
    await release();
    await stopping;
    runner.offer(3);
    expect(ran).toEqual([1]);
    expect(runner.running).toBe(false);
  });
});

type Obj = NodeCidrObject & KubernetesObject;
const apiError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });
/** The signal a call was given (client-node hands it to its fetch through the request context). */
type Middleware = { pre: (ctx: object) => unknown };
const signalOf = (opts?: { middleware?: Middleware[] }) => {
  let signal: AbortSignal | undefined;
  for (const m of opts?.middleware ?? []) m.pre({ setSignal: (s: AbortSignal) => { signal = s; }, setHeaderParam: () => undefined });
  return signal;
};

/**
 * A StatusWriter on a stand-in API server holding one record: status writes are conditional on its version (a
 * 409 otherwise), and the test makes the next writes fail. The writer's own logic is under test, not the API.
 */
function fakeWriter(callTimeoutMs?: number) {
  let rv = 1;
  const cache = new Map<string, Obj>([["r1", { metadata: { name: "r1", uid: "u1", resourceVersion: "1", generation: 1 },
    spec: { nodeName: "n1", cidr: "10.244.1.0/24", family: "IPv4", pool: "default" }, status: { phase: "Allocated" } } as Obj]]);
  const records = { cache, assume: (o: Obj) => { cache.set(o.metadata!.name!, o); } } as unknown as Informer<Obj>;
  const fail = { status: 0, events: 0, hang: false };
  const sent: string[] = [];
  const api = {
    fieldManager: "podnet-agent",
    custom: { patchClusterCustomObjectStatus: async ({ name, body }: { name: string; body: { metadata: { resourceVersion?: string }; status: object } }, opts?: { middleware?: Middleware[] }) => {
      if (fail.hang) await new Promise((_, reject) => signalOf(opts)!.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))));
      if (fail.status > 0) { fail.status--; throw apiError(503); }
      const current = cache.get(name)!;
      if (body.metadata.resourceVersion !== current.metadata!.resourceVersion) throw apiError(409);
      return { ...current, metadata: { ...current.metadata, resourceVersion: String(++rv) }, status: { ...current.status, ...body.status } };
    } },
    core: { createNamespacedEvent: async ({ body }: { body: { reason: string } }) => {
      if (fail.events > 0) { fail.events--; throw apiError(503); }
      sent.push(body.reason);
      return body;
    } },
  } as unknown as KubeApi;
  const logged: Array<{ level: number; msg: string }> = [];
  const log = pino({ level: "debug" }, { write: (line: string) => { logged.push(JSON.parse(line) as { level: number; msg: string }); } });
  const passesAsked: number[] = [];
  const counted = { errors: 0 };
  const writer = new StatusWriter({ api, records, recorder: new EventRecorder(api, "podnet-agent", log), log, pacing: new StatusPacing(() => 0), onError: () => counted.errors++ },
    new NetworkUnavailableClearer(api, "n1", log, 30_000, () => undefined), { requestPass: () => passesAsked.push(performance.now()), baseMs: 40, maxMs: 160 }, callTimeoutMs);
  /** A pass's outcome, read from the record as the cache holds it now. */
  const job = (ready: boolean): StatusJob => ({ own: { r1: cache.get("r1")!.metadata!.resourceVersion! }, countsIntervalMs: 0, clearNetworkUnavailable: false,
    conditions: [{ type: "Ready", status: ready ? "True" : "False", reason: ready ? "NodeNetworkReady" : "RoutesFailing", message: "m" }],
    report: { routesDesired: 1, routesInstalled: 1 } });
  const ready = () => cache.get("r1")!.status?.conditions?.find((c) => c.type === "Ready")?.status;
  const settled = () => vi.waitFor(() => { if (writer.writing) throw new Error("writing"); });
  /** Another manager's write (the controller's): the record's version moves on, as the watch brings it. */
  const foreignWrite = () => { const r = cache.get("r1")!; cache.set("r1", { ...r, metadata: { ...r.metadata, resourceVersion: String(++rv) } }); };
  const routesInstalled = () => cache.get("r1")!.status?.agent?.routesInstalled;
  const condition = (type: string) => cache.get("r1")!.status?.conditions?.find((c) => c.type === type);
  return { writer, job, ready, routesInstalled, settled, fail, sent, foreignWrite, passesAsked, logged, counted, cache, condition };
}

describe("StatusWriter: a pass's one-off Events", () => {
  const event: PassEvent = { target: { kind: "NodeCIDR", name: "r1" }, reason: "StaleBridgeAddressRemoved", message: "removed 10.244.9.1/24" };

  it("go out only after a status write that went through, and are kept through failed writes of their own", async () => {
    const { writer, job, ready, settled, fail, sent } = fakeWriter();
    fail.status = 1;
    writer.offer(job(true), [event]);
    await settled();
    expect(ready()).toBeUndefined();
    expect(sent).toEqual([]); // the status did not go through: nor does the Event
    expect(writer.eventsWaiting).toBe(1);

    fail.events = 1;
    writer.offer(job(true));
    await settled();
    expect(ready()).toBe("True");
    expect(sent).toEqual([]); // its own write failed: kept
    expect(writer.eventsWaiting).toBe(1);

    writer.offer(job(true));
    await settled();
    expect(sent).toEqual(["StaleBridgeAddressRemoved"]);
    expect(writer.eventsWaiting).toBe(0);
    await writer.stop();
  });

  it("are not sent after a write that met a changed record (409)", async () => {
    const { writer, job, settled, sent, foreignWrite } = fakeWriter();
    const stale = job(true);
    foreignWrite();
    writer.offer(stale, [event]);
    await settled();
    expect(sent).toEqual([]);
    expect(writer.eventsWaiting).toBe(1);
    await writer.stop();
  });
});

describe("StatusWriter: a count-only update held back by its interval", () => {
  it("is written when due although the wall clock stepped back an hour meanwhile", async () => {
    const { writer, job, routesInstalled, settled } = fakeWriter();
    writer.offer(job(true));
    await settled();
    writer.offer({ ...job(true), countsIntervalMs: 300, report: { routesDesired: 2, routesInstalled: 2 } });
    await settled();
    expect(routesInstalled()).toBe(1); // held: the record was written less than an interval ago
    const realNow = Date.now.bind(Date);
    const stepped = vi.spyOn(Date, "now").mockImplementation(() => realNow() - 3_600_000);
    try {
      await vi.waitFor(() => expect(routesInstalled()).toBe(2), { timeout: 2_000, interval: 50 });
    } finally {
      stepped.mockRestore();
      await writer.stop();
    }
  });
});

describe("StatusWriter: what is written at once", () => {
  const sysctls = (reason: string, message: string): StatusJob["conditions"][number] => ({ type: "SysctlsReady", status: "True", reason, message });

  it("a condition whose reason changed, its status not: `kubectl describe` must not show the old reason for a counts interval", async () => {
    const { writer, job, settled, condition } = fakeWriter();
    const base = job(true);
    writer.offer({ ...base, conditions: [...base.conditions, sysctls("Set", "forwarding enabled")] });
    await settled();
    expect(condition("SysctlsReady")?.reason).toBe("Set");
    // Counts changed too, with a long interval: only the counts may wait for it.
    writer.offer({ ...base, countsIntervalMs: 60_000, report: { routesDesired: 2, routesInstalled: 2 },
      conditions: [...base.conditions, sysctls("ForwardMayBeDropped", "forwarding enabled; another table's chain drops by default")] });
    await settled();
    expect(condition("SysctlsReady")).toMatchObject({ status: "True", reason: "ForwardMayBeDropped" });
    await writer.stop();
  });

  it("each condition carries the generation of the record it speaks for (observedGeneration)", async () => {
    const { writer, job, settled, cache, condition } = fakeWriter();
    const r1 = cache.get("r1")!;
    cache.set("r1", { ...r1, metadata: { ...r1.metadata, generation: 3 } }); // its spec patched twice (node IPs, a uid)
    writer.offer(job(true));
    await settled();
    expect(condition("Ready")).toMatchObject({ status: "True", observedGeneration: 3 });
    await writer.stop();
  });
});

describe("StatusWriter: a write that did not go through brings a fresh pass", () => {
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it("after a failure, sooner than the resync, backing off while the writes keep failing; a write that goes through ends it", async () => {
    const { writer, job, ready, settled, fail, passesAsked } = fakeWriter();
    fail.status = 3;
    const started = performance.now();
    writer.offer(job(true));
    // Each fresh pass offers a new outcome, as the agent's passes do.
    for (let i = 1; i <= 3; i++) {
      await vi.waitFor(() => expect(passesAsked).toHaveLength(i), { timeout: 2_000, interval: 5 });
      writer.offer(job(true));
      await settled();
    }
    expect(ready()).toBe("True");
    // Backoff with jitter from 40 ms, doubling: 20–40, then 40–80, then 80–160 ms after each failure.
    const gaps = passesAsked.map((at, i) => at - (passesAsked[i - 1] ?? started));
    expect(gaps[0]).toBeGreaterThanOrEqual(15);
    expect(gaps[2]).toBeGreaterThanOrEqual(75);
    await pause(400);
    expect(passesAsked).toHaveLength(3); // went through: no more
    await writer.stop();
  });

  it("after a 409: a fresh pass reads the record again", async () => {
    const { writer, job, ready, settled, foreignWrite, passesAsked } = fakeWriter();
    const stale = job(true);
    foreignWrite();
    writer.offer(stale);
    await vi.waitFor(() => expect(passesAsked).toHaveLength(1), { timeout: 2_000, interval: 5 });
    writer.offer(job(true));
    await settled();
    expect(ready()).toBe("True");
    await writer.stop();
  });

  it("no fresh pass after a stop", async () => {
    const { writer, job, fail, passesAsked } = fakeWriter();
    fail.status = 1;
    writer.offer(job(true));
    await vi.waitFor(() => expect(writer.writing).toBe(false), { interval: 1 }); // the retry waits 20–40 ms
    await writer.stop();
    await pause(200);
    expect(passesAsked).toEqual([]);
  });
});

describe("StatusWriter: a write cut off by a stop", () => {
  it("is no failure: not counted, logged at debug level only", async () => {
    const { writer, job, fail, logged, counted } = fakeWriter();
    fail.hang = true;
    writer.offer(job(true), [{ target: { kind: "NodeCIDR", name: "r1" }, reason: "StaleBridgeAddressRemoved", message: "m" }]);
    await vi.waitFor(() => expect(writer.writing).toBe(true));
    await writer.stop();
    expect(counted.errors).toBe(0);
    expect(logged.filter((l) => l.level > 20).map((l) => l.msg)).toEqual([]); // above debug (pino: 20)
    expect(logged.map((l) => l.msg)).toContain("NodeCIDR status write cut off by the agent's stop");
  });

  it("a write cut off at its deadline is a failure: counted and logged as an error", async () => {
    const { writer, job, fail, logged, counted } = fakeWriter(50);
    fail.hang = true;
    writer.offer(job(true));
    await vi.waitFor(() => expect(counted.errors).toBe(1));
    expect(logged.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual(["could not write NodeCIDR status"]);
    await writer.stop();
  });
});
