import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { sweepStaleRunDirs } from "./control-plane.js";
import { ownerToken } from "./run-owner.js";

let base = "";
afterEach(() => rmSync(base, { recursive: true, force: true }));

it("sweeps run dirs whose owner is gone, whose pid another process now has, or that never got one; spares a live owner's and one being made", () => {
  base = mkdtempSync(join(tmpdir(), "podnet-sweep-"));
  const dir = (name: string, owner?: string, ageS = 0) => {
    const path = join(base, `podnet-cp-${name}`);
    mkdirSync(path);
    if (owner !== undefined) writeFileSync(join(path, "owner.pid"), owner);
    const t = new Date(Date.now() - ageS * 1000);
    utimesSync(path, t, t);
    return path;
  };
  const deadPid = spawnSync("true").pid!; // exited: its pid names no process (reuse within this test is unlikely)
  const dead = dir("dead", ownerToken(deadPid));
  const live = dir("live", ownerToken(process.pid));
  const reused = dir("reused", `${process.pid}.1`); // this pid, started at another time: a recycled pid
  const oldStyle = dir("old-style", String(process.pid)); // written before owner tokens
  const halfWritten = dir("half-written", ""); // owner.pid created, its content not yet written
  const foreign = dir("foreign", "owner=1234", 3_600); // another checkout's format: maybe a live run's
  const foreignOld = dir("foreign-old", "owner=1234", 2 * 86_400);
  const beingMade = dir("new"); // mkdtemp done, owner.pid not written yet
  const abandoned = dir("old", undefined, 120);
  const other = join(base, "something-else");
  mkdirSync(other);
  expect(sweepStaleRunDirs(base).sort()).toEqual([dead, abandoned, reused, foreignOld].sort());
  expect([live, oldStyle, halfWritten, foreign, beingMade, other].map(existsSync)).toEqual([true, true, true, true, true, true]);
});
