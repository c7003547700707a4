import { describe, expect, it } from "vitest";
import { afterOwnWrite, writeVersion, type OwnWrite } from "./agent-status.js";

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
