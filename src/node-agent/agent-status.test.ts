import { describe, expect, it } from "vitest";
import { afterOwnWrite, countsOnlyDueAt, StatusPacing, writeVersion, type OwnWrite } from "./agent-status.js";

describe("writeVersion: a pass's outcome is written at the version it read, or at this agent's own writes over it", () => {
  it.each<[string, string, OwnWrite | undefined, string]>([
    ["no write of its own yet", "5", undefined, "5"],
    ["read before its own last write: written over that write", "5", { version: "6", over: ["5"] }, "6"],
    ["read after its own last write", "6", { version: "6", over: ["5"] }, "6"],
    ["read before two of its own writes in a row", "5", { version: "8", over: ["5", "6"] }, "8"],
    // 5 → 6 by this agent, then 7 by the controller (a release), then read at 5: a 409 is what it must meet.
    ["read before another's write: its own version, to meet a 409", "5", { version: "9", over: ["7"] }, "5"],
  ])("%s", (_, read, own, expected) => {
    expect(writeVersion(read, own)).toBe(expected);
  });

  it("afterOwnWrite chains only writes made one on the other", () => {
    const first = afterOwnWrite(undefined, "5", "6");
    expect(first).toEqual({ version: "6", over: ["5"] });
    const second = afterOwnWrite(first, "6", "8"); // written at its own last version: nobody wrote in between
    expect(second).toEqual({ version: "8", over: ["5", "6"] });
    // Written at 10 (another wrote 9 over 8, and a pass read it): 5, 6 and 8 no longer stand for the record.
    expect(afterOwnWrite(second, "10", "11")).toEqual({ version: "11", over: ["10"] });
    let chain: OwnWrite | undefined;
    for (let v = 1; v < 20; v++) chain = afterOwnWrite(chain, String(v), String(v + 1));
    expect(chain!.over.length).toBeLessThanOrEqual(4);
  });
});

describe("countsOnlyDueAt: a count-only change waits an interval after the record's last write, and a random part of one", () => {
  it.each<[string, number | undefined, number, number, number]>([
    // Times are performance.now()'s, which starts near 0 with the process: no write is not a write at 0.
    ["never written by this agent, just after its start: only the random part", undefined, 500, 0.25, 1_000],
    ["never written, a draw of 0: at once", undefined, 500, 0, 500],
    ["written long ago: only the random part", 1_000, 60_000, 0.5, 61_000],
    ["written just now: the interval after the write", 59_000, 60_000, 0, 61_000],
    ["written just now, a large draw: the random part is later", 59_000, 60_000, 0.9, 61_800],
  ])("%s", (_, lastWriteAt, now, draw, expected) => {
    expect(countsOnlyDueAt(lastWriteAt, now, 2_000, draw)).toBe(expected);
  });
});

describe("StatusPacing", () => {
  it("forgets the records that are gone, and keeps the others' pacing", () => {
    const pacing = new StatusPacing();
    for (const name of ["10-244-1-0-24", "10-244-9-0-24"]) {
      pacing.lastWrite.set(name, 1);
      pacing.ownWrites.set(name, { version: "2", over: ["1"] });
      pacing.countsDue.set(name, 3);
    }
    pacing.forgetGone((name) => name === "10-244-9-0-24");
    for (const map of [pacing.lastWrite, pacing.ownWrites, pacing.countsDue]) expect([...map.keys()]).toEqual(["10-244-9-0-24"]);
  });
});
