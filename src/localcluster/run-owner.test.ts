import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { ownerAlive, ownerToken, processStartTicks, startTicksOf } from "./run-owner.js";

it("reads a process's start time from /proc/<pid>/stat, also past a command name with spaces and parentheses", () => {
  const fields = readFileSync("/proc/self/stat", "utf8").split(") ")[1]!.split(" ");
  expect(processStartTicks(process.pid)).toBe(BigInt(fields[19]!).toString(36));
  const tail = "S 1 2 3 0 -1 4194560 10 0 0 0 1 2 0 0 20 0 1 0 5295126 1695744 33";
  expect(startTicksOf(`42 (a) b (c) ${tail}`)).toBe((5295126).toString(36));
  expect(startTicksOf(`42 (sleep) ${tail}`)).toBe((5295126).toString(36));
  expect(startTicksOf("42 (truncated) S 1")).toBeUndefined();
});

it("a token is alive only while its pid names the process that made it", () => {
  const child = spawn("sleep", ["30"], { stdio: "ignore" });
  try {
    const token = ownerToken(child.pid!);
    expect(ownerAlive(token)).toBe(true);
    // The same pid with another start time: what a reused pid looks like.
    const [pid, ticks] = token.split(".") as [string, string];
    expect(ownerAlive(`${pid}.${(BigInt(parseInt(ticks, 36)) + 1n).toString(36)}`)).toBe(false);
    expect(ownerAlive(pid)).toBe(true); // an older run's bare pid: existence is all there is to check
  } finally { child.kill("SIGKILL"); }
  const deadPid = spawnSync("true").pid!;
  expect(ownerAlive(ownerToken(deadPid))).toBe(false);
  expect(ownerAlive("not a token")).toBe(false);
});
