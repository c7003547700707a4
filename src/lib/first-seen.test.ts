import { describe, expect, it } from "vitest";
import { FirstSeen } from "./first-seen.js";

describe("FirstSeen: when each object was first seen in a state, on the clock it is given", () => {
  it("keeps the first sighting of a state, starts again for a new state, and forgets objects in none", () => {
    let now = 100;
    const seen = new FirstSeen(() => now);
    seen.note("r", "uid-1@t1");
    now = 200;
    seen.note("r", "uid-1@t1"); // seen again (another event, a resync): still from 100
    expect(seen.at("r", "uid-1@t1")).toBe(100);
    expect(seen.at("r", "uid-1@t2")).toBeUndefined(); // asked about another state: not known in it
    seen.note("r", "uid-1@t2"); // released again: counted anew
    expect(seen.at("r", "uid-1@t2")).toBe(200);
    seen.note("r", undefined); // Allocated again: nothing to time
    expect(seen.size).toBe(0);
  });

  it("forgets names deleted, or missing from the cache", () => {
    const seen = new FirstSeen(() => 0);
    for (const name of ["a", "b", "c"]) seen.note(name, "s");
    seen.forget("a");
    seen.keepOnly(new Set(["b"]));
    expect([seen.at("a", "s"), seen.at("b", "s"), seen.at("c", "s")]).toEqual([undefined, 0, undefined]);
  });
});
