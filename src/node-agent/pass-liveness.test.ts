import { describe, expect, it } from "vitest";
import { livenessLimits, PassLiveness } from "./pass-liveness.js";

const limits = livenessLimits(30_000); // the agent's default resync: 120 s between passes, 10 minutes in one

describe("PassLiveness: whether the agent's pass loop is alive (its /healthz)", () => {
  it("limits: three resyncs and a margin between passes, ten minutes for one pass whatever the resync", () => {
    expect(limits).toEqual({ idleMs: 120_000, passMs: 600_000 });
    expect(livenessLimits(3_600_000)).toEqual({ idleMs: 10_830_000, passMs: 600_000 });
    expect(livenessLimits(1_000, 5_000)).toEqual({ idleMs: 33_000, passMs: 5_000 });
  });

  it.each<[string, (l: PassLiveness) => void, number, boolean]>([
    ["no pass yet, however long (the caches wait for an API server that is down)", () => {}, 10_000_000, false],
    ["a pass under way for 9 minutes (slow tools)", (l) => l.started(0), 540_000, false],
    ["a pass under way for over 10 minutes", (l) => l.started(0), 600_001, true],
    ["idle for one resync after a pass", (l) => { l.started(0); l.ended(1_000); }, 31_000, false],
    ["idle for just under the limit", (l) => { l.started(0); l.ended(1_000); }, 121_000, false],
    ["idle past three resyncs and the margin: the loop stopped scheduling", (l) => { l.started(0); l.ended(1_000); }, 121_001, true],
    ["a new pass started after a long idle spell", (l) => { l.started(0); l.ended(1_000); l.started(200_000); }, 201_000, false],
  ])("%s: stuck %s", (_what, record, now, stuck) => {
    const l = new PassLiveness(limits);
    record(l);
    expect(l.stuck(now) !== undefined).toBe(stuck);
  });

  it("says what it found, for the log line", () => {
    const l = new PassLiveness(limits);
    l.started(0);
    expect(l.stuck(700_000)).toBe("a sync pass has been running for 700 s (limit 600 s)");
    l.ended(700_000);
    expect(l.stuck(900_000)).toBe("no sync pass started for 200 s since the last one ended (limit 120 s)");
  });

  it("reports why once each time it turns stuck", () => {
    const l = new PassLiveness(limits);
    const said: string[] = [];
    l.started(0);
    expect([l.alive(1_000, (w) => said.push(w)), l.alive(700_000, (w) => said.push(w)), l.alive(701_000, (w) => said.push(w))]).toEqual([true, false, false]);
    l.ended(702_000);
    l.started(703_000);
    expect([l.alive(704_000, (w) => said.push(w)), l.alive(1_400_000, (w) => said.push(w))]).toEqual([true, false]);
    expect(said).toHaveLength(2);
  });
});
