import { describe, expect, it } from "vitest";
import { EventSeries, newEventBody, repeatPatch, seriesKey } from "./event-series.js";

describe("event series (pure)", () => {
  const node = { kind: "Node" as const, name: "n1", uid: "u1" };
  const time = new Date(1_000);

  it.each([
    ["the agent: its node as instance and host (kubectl's FROM: podnet-agent, n1)", { component: "podnet-agent", instance: "n1", host: "n1" },
      { source: { component: "podnet-agent", host: "n1" }, reportingComponent: "podnet.io/podnet-agent", reportingInstance: "n1" }],
    ["the controller: its lease identity, no host", { component: "podnet-controller", instance: "ctl-7f9-12-abc" },
      { source: { component: "podnet-controller" }, reportingComponent: "podnet.io/podnet-controller", reportingInstance: "ctl-7f9-12-abc" }],
    ["no instance given: none written", { component: "test" }, { source: { component: "test" }, reportingComponent: "podnet.io/test" }],
  ])("writes who sent it: %s", (_case, source, expected) => {
    const body = newEventBody(node, "Warning", "X", "m", time, source, "default");
    expect(body).toMatchObject({ ...expected, count: 1, firstTimestamp: time, lastTimestamp: time, involvedObject: { kind: "Node", name: "n1", uid: "u1", apiVersion: "v1" } });
    if (!("reportingInstance" in expected)) expect(body).not.toHaveProperty("reportingInstance");
  });

  it("keeps reportingInstance within the API's 128 characters", () => {
    expect(newEventBody(node, "Normal", "X", "m", time, { component: "c", instance: "i".repeat(200) }, "default").reportingInstance).toHaveLength(128);
  });

  it("counts one more on a repeat, at its time", () => {
    expect(repeatPatch(3, new Date(2_000))).toEqual({ count: 3, lastTimestamp: "1970-01-01T00:00:02.000Z" });
  });

  it.each([
    ["another reason", { ...node }, "Y", "m"],
    ["another message", { ...node }, "X", "m2"],
    ["another uid (the Node registered again under its name)", { ...node, uid: "u2" }, "X", "m"],
    ["another kind of the same name", { ...node, kind: "NodeCIDR" as const }, "X", "m"],
  ])("tells series apart by %s", (_case, target, reason, message) => {
    expect(seriesKey(target, reason, message)).not.toBe(seriesKey(node, "X", "m"));
  });

  it("forgets the least recently written series past its limit", () => {
    const series = new EventSeries(2);
    series.remember("a", "ev-a", 1);
    series.remember("b", "ev-b", 1);
    series.remember("a", "ev-a", 2); // a written again: b is now the oldest
    series.remember("c", "ev-c", 1);
    expect([series.get("a"), series.get("b"), series.get("c"), series.size]).toEqual([{ name: "ev-a", count: 2 }, undefined, { name: "ev-c", count: 1 }, 2]);
    series.forget("a");
    expect(series.get("a")).toBeUndefined();
  });
});
