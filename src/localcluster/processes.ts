import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { diesWithParent } from "../lib/parent-death.js";

/** A child process whose output goes to a log file; killed with the test process (parent-death signal). */
export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  /** Keep running after this Node process exits (make dev-up); otherwise the kernel kills it with us. */
  detached?: boolean;
  /** Run inside this network namespace (ip netns exec). */
  netns?: string;
}

export function startProcess(name: string, command: string, args: string[], logFile: string, opts: StartOptions = {}): ManagedProcess {
  // The child writes straight into the log file: no pipe through this process, so a detached child
  // (make dev-up) does not keep us alive, and nothing is lost if we die first.
  const logFd = openSync(logFile, "a");
  let argv = [command, ...args];
  if (opts.netns) argv = ["ip", "netns", "exec", opts.netns, ...argv];
  // setpriv --pdeathsig: if the test runner dies (crash, SIGKILL), the kernel kills the server too, so no
  // etcd or apiserver outlives a broken test run.
  if (!opts.detached) argv = diesWithParent(argv);
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: ["ignore", logFd, logFd],
    env: { ...process.env, ...opts.env },
    detached: opts.detached ?? false,
  });
  closeSync(logFd);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  if (opts.detached) child.unref();
  return { name, child, logFile, exited };
}

export async function stopProcess(p: ManagedProcess, graceMs = 5_000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill("SIGTERM");
  const timer = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), graceMs).unref());
  if ((await Promise.race([p.exited, timer])) === "timeout") {
    p.child.kill("SIGKILL");
    await p.exited;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

export function tailFile(file: string, lines = 40): string {
  if (!existsSync(file)) return `(no ${file})`;
  return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
}
