import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { sweepStaleRunDirs } from "./control-plane.js";

let base = "";
afterEach(() => rmSync(base, { recursive: true, force: true }));

it("sweeps run dirs whose owner is gone or that never got one, and spares a live owner's and one being made", () => {
  base = mkdtempSync(join(tmpdir(), "podnet-sweep-"));
  const dir = (name: string, owner?: number, ageS = 0) => {
    const path = join(base, `podnet-cp-${name}`);
    mkdirSync(path);
    if (owner !== undefined) writeFileSync(join(path, "owner.pid"), String(owner));
    const t = new Date(Date.now() - ageS * 1000);
    utimesSync(path, t, t);
    return path;
  };
  const deadPid = spawnSync("true").pid!; // exited: its pid names no process (reuse within this test is unlikely)
  const dead = dir("dead", deadPid);
  const live = dir("live", process.pid);
  const beingMade = dir("new"); // mkdtemp done, owner.pid not written yet
  const abandoned = dir("old", undefined, 120);
  const other = join(base, "something-else");
  mkdirSync(other);
  expect(sweepStaleRunDirs(base).sort()).toEqual([dead, abandoned].sort());
  expect([live, beingMade, other].map(existsSync)).toEqual([true, true, true]);
});
