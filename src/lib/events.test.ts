import { ApiException } from "@kubernetes/client-node";
import { afterEach, describe, expect, it, vi } from "vitest";
import { silentLogger } from "../log.js";
import { EventRecorder } from "./events.js";
import type { KubeApi } from "./k8s.js";

// What is under test is the recorder's memory, not the API: the write itself is a stand-in that counts.
const sink = () => { const sent: string[] = []; return { sent, api: { core: { createNamespacedEvent: async ({ body }: { body: { reason: string } }) => { sent.push(body.reason); return body; } } } as unknown as KubeApi }; };

describe("EventRecorder", () => {
  afterEach(() => vi.useRealTimers());

  it("writes one complaint at most once per interval, and forgets complaints older than that (node churn must not grow it for good)", async () => {
    vi.useFakeTimers({ now: 0, toFake: ["Date", "performance"] });
    const { sent, api } = sink();
    const recorder = new EventRecorder(api, "test", silentLogger(), { intervalMs: 60_000 });
    expect(await recorder.emit({ kind: "Node", name: "a" }, "Warning", "X", "m")).toBe("sent");
    expect(await recorder.emit({ kind: "Node", name: "a" }, "Warning", "X", "m")).toBe("duplicate");
    for (let i = 0; i < 100; i++) await recorder.emit({ kind: "Node", name: `churn-${i}` }, "Warning", "PodCIDRNotAvailable", "wait");
    expect(recorder.remembered).toBe(101);
    vi.advanceTimersByTime(61_000);
    expect(await recorder.emit({ kind: "Node", name: "a" }, "Warning", "X", "m")).toBe("sent"); // due again
    expect(recorder.remembered).toBe(1); // the 100 churned nodes' complaints are gone
    expect(sent).toHaveLength(102);
  });

  it("times its interval on the monotonic clock: a wall clock stepped back an hour does not silence a complaint for that hour", async () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1, 12), toFake: ["Date", "performance"] });
    const stamps: unknown[] = [];
    const api = { core: { createNamespacedEvent: async ({ body }: { body: { lastTimestamp: unknown } }) => { stamps.push(body.lastTimestamp); return body; } } } as unknown as KubeApi;
    const recorder = new EventRecorder(api, "test", silentLogger(), { intervalMs: 60_000 });
    expect(await recorder.emit({ kind: "Node", name: "a" }, "Warning", "X", "m")).toBe("sent");
    vi.setSystemTime(Date.UTC(2026, 0, 1, 11)); // the wall clock alone steps back
    vi.advanceTimersByTime(61_000);
    expect(await recorder.emit({ kind: "Node", name: "a" }, "Warning", "X", "m")).toBe("sent");
    expect(stamps[1]).toEqual(new Date(Date.UTC(2026, 0, 1, 11, 1, 1))); // the Event itself carries the wall clock
  });

  it("tells a failed write apart; it counts as sent for the interval unless the caller keeps the complaint to send again", async () => {
    let failing = true;
    const api = { core: { createNamespacedEvent: async ({ body }: { body: object }) => { if (failing) throw new Error("unavailable"); return body; } } } as unknown as KubeApi;
    const recorder = new EventRecorder(api, "test", silentLogger(), { intervalMs: 60_000 });
    expect(await recorder.emit({ kind: "Node", name: "a" }, "Warning", "X", "m")).toBe("failed");
    expect(await recorder.emit({ kind: "Node", name: "a" }, "Warning", "X", "m")).toBe("duplicate");
    expect(await recorder.emit({ kind: "Node", name: "b" }, "Warning", "X", "m", undefined, { forgetIfFailed: true })).toBe("failed");
    failing = false;
    expect(await recorder.emit({ kind: "Node", name: "b" }, "Warning", "X", "m", undefined, { forgetIfFailed: true })).toBe("sent");
    expect(recorder.written).toBe(1);
  });

  it("keeps a throttled complaint (429) to send again once the server's Retry-After has passed, not after the interval", async () => {
    vi.useFakeTimers({ now: 0, toFake: ["Date", "performance"] });
    let throttling = true;
    const api = { core: { createNamespacedEvent: async ({ body }: { body: object }) => {
      if (throttling) throw new ApiException(429, "Unknown API Status Code!", "Too many requests, please try again later.\n", { "retry-after": "2" });
      return body;
    } } } as unknown as KubeApi;
    const recorder = new EventRecorder(api, "test", silentLogger(), { intervalMs: 600_000 });
    const warn = () => recorder.emit({ kind: "Node", name: "a" }, "Warning", "PodCIDRNotAvailable", "pool exhausted");
    expect(await warn()).toBe("failed");
    throttling = false;
    vi.advanceTimersByTime(1_000);
    expect(await warn()).toBe("duplicate"); // within Retry-After: not asked again yet
    vi.advanceTimersByTime(1_000);
    expect(await warn()).toBe("sent"); // before: "duplicate" for the whole 10 min interval, the Warning lost
    expect(await warn()).toBe("duplicate"); // written: the interval holds as for any complaint
    expect(recorder.written).toBe(1);
  });

  it("counts a complaint written again after the interval on the Event written before; a new Event once that one is gone", async () => {
    vi.useFakeTimers({ now: 0, toFake: ["Date", "performance"] });
    const events = new Map<string, { count: number; lastTimestamp: unknown }>();
    const calls: string[] = [];
    let made = 0;
    const api = { core: {
      createNamespacedEvent: async ({ body }: { body: { count: number; lastTimestamp: unknown } }) => {
        const name = `a.${++made}`;
        calls.push(`create ${name}`);
        events.set(name, { count: body.count, lastTimestamp: body.lastTimestamp });
        return { ...body, metadata: { name } };
      },
      patchNamespacedEvent: async ({ name, body }: { name: string; body: { count: number; lastTimestamp: string } }) => {
        calls.push(`patch ${name} ${body.count}`);
        if (!events.has(name)) throw Object.assign(new Error("not found"), { code: 404 });
        events.set(name, body);
        return body;
      },
    } } as unknown as KubeApi;
    const recorder = new EventRecorder(api, "test", silentLogger(), { intervalMs: 60_000 });
    const target = { kind: "Node" as const, name: "a", uid: "u" };
    expect(await recorder.emit(target, "Warning", "X", "m")).toBe("sent");
    vi.advanceTimersByTime(61_000);
    expect(await recorder.emit(target, "Warning", "X", "m")).toBe("sent");
    vi.advanceTimersByTime(61_000);
    expect(await recorder.emit(target, "Warning", "X", "m")).toBe("sent");
    expect(events.get("a.1")).toEqual({ count: 3, lastTimestamp: new Date(122_000).toISOString() });
    events.delete("a.1"); // deleted, or expired past the API server's --event-ttl
    vi.advanceTimersByTime(61_000);
    expect(await recorder.emit(target, "Warning", "X", "m")).toBe("sent");
    expect(calls).toEqual(["create a.1", "patch a.1 2", "patch a.1 3", "patch a.1 4", "create a.2"]);
    expect(events.get("a.2")?.count).toBe(1);
    expect(recorder.written).toBe(4);
  });

  it("a repeat whose patch fails otherwise than 404 is failed, and counts on the same Event next time", async () => {
    vi.useFakeTimers({ now: 0, toFake: ["Date", "performance"] });
    let failing = false;
    const patched: Array<[string, number]> = [];
    const api = { core: {
      createNamespacedEvent: async ({ body }: { body: object }) => ({ ...body, metadata: { name: "a.1" } }),
      patchNamespacedEvent: async ({ name, body }: { name: string; body: { count: number } }) => {
        if (failing) throw Object.assign(new Error("unavailable"), { code: 503 });
        patched.push([name, body.count]);
        return body;
      },
    } } as unknown as KubeApi;
    const recorder = new EventRecorder(api, "test", silentLogger(), { intervalMs: 1_000 });
    await recorder.emit({ kind: "Node", name: "a" }, "Warning", "X", "m");
    failing = true;
    vi.advanceTimersByTime(2_000);
    expect(await recorder.emit({ kind: "Node", name: "a" }, "Warning", "X", "m", undefined, { forgetIfFailed: true })).toBe("failed");
    failing = false;
    expect(await recorder.emit({ kind: "Node", name: "a" }, "Warning", "X", "m")).toBe("sent");
    expect(patched).toEqual([["a.1", 2]]);
  });
});
