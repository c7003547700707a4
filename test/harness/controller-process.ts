import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

export interface LogLine { time: string; msg: string; [field: string]: unknown }

export interface ControllerProcess {
  child: ChildProcess;
  /** Its Lease identity holds the pid: `${hostname}-${pid}-…`. */
  holds(identity: string | undefined): boolean;
  /** Every JSON log line so far, as parsed. */
  readonly log: LogLine[];
  /** What it counts in a metric (its series summed), read from its /metrics. */
  metric(name: string, labels?: string): Promise<number>;
  /** Log lines from `since` (ms since the epoch) on, one string each: for a failing test's message. */
  logSince(since: number): string[];
}

const repo = join(import.meta.dirname, "../..");
const running: ChildProcess[] = [];

/** A wall clock off by `offsetMs`, or by the number in `file` (read again on SIGUSR2: a clock stepped while running). */
export type WallClock = { offsetMs: number } | { file: string };

/**
 * The controller in a process of its own (test/harness/controller-main.ts), logging at info into memory. setpriv
 * has the kernel kill it should the test runner die first. With `wallClock`, its Date is off
 * (wall-clock-offset.mjs) while its monotonic clock and timers run true, as on a host with a skewed clock.
 */
export function spawnController(args: string[], opts: { silenceTimeoutMs?: number; wallClock?: WallClock } = {}): ControllerProcess {
  const clock = opts.wallClock;
  const preload = clock ? ["--import", join(repo, "test/harness/wall-clock-offset.mjs")] : [];
  const child = spawn("setpriv", ["--pdeathsig", "KILL", "--", process.execPath, ...preload, "--import", "tsx", join(repo, "test/harness/controller-main.ts"), ...args], {
    cwd: repo, stdio: ["ignore", "pipe", "inherit"],
    env: {
      ...process.env, PODNET_LOG_LEVEL: "info", ...(opts.silenceTimeoutMs ? { PODNET_TEST_SILENCE_MS: String(opts.silenceTimeoutMs) } : {}),
      ...(clock && "offsetMs" in clock ? { WALL_CLOCK_OFFSET_MS: String(clock.offsetMs) } : {}),
      ...(clock && "file" in clock ? { WALL_CLOCK_OFFSET_FILE: clock.file } : {}),
    },
  });
  running.push(child);
  const log: LogLine[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    try { log.push(JSON.parse(line) as LogLine); } catch { /* not a log line */ }
  });
  const metricsPort = () => log.find((l) => l.msg === "controller started")?.metricsPort as number | undefined;
  return {
    child, log,
    async metric(name, labels = "") {
      const port = metricsPort();
      if (!port) throw new Error("controller not started yet");
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return text.split("\n").filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).filter((l) => l.includes(labels))
        .reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0);
    },
    holds: (identity) => Boolean(identity?.includes(`-${child.pid}-`)),
    logSince: (since) => log.filter((l) => Date.parse(l.time) >= since)
      .map(({ time, msg, level: _l, component: _c, pid: _p, hostname: _h, ...rest }) => `${Date.parse(time) - since} ms ${msg} ${JSON.stringify(rest)}`),
  };
}

/** Every controller process still running killed, a frozen one too (SIGKILL ends a stopped process): for a test's afterEach. */
export function killControllerProcesses(): void {
  for (const p of running.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
}
