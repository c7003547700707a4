import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { runInShell, type ExecResult } from "./tool-shell.js";

export type { ExecResult } from "./tool-shell.js";

/** A required host tool (ip, nft, sysctl) is missing: reported as a condition, never a crash. */
export class MissingToolError extends Error {
  override name = "MissingToolError";
}

/**
 * Run a host tool, optionally inside a network namespace (`ip netns exec`). Production agents run in the
 * host namespace (netns undefined); tests point the same code at a namespace they created.
 */
export async function run(command: string, args: string[], opts: { netns?: string; input?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<ExecResult> {
  // iproute2's tools switch namespace themselves (-n): one exec instead of two, and no /sys remount, which
  // `ip netns exec` does on every call (≈1.3 ms saved per call here; the local cluster runs thousands).
  const argv = !opts.netns ? [command, ...args]
    : command === "ip" || command === "bridge" ? [command, "-n", opts.netns, ...args]
      : ["ip", "netns", "exec", opts.netns, command, ...args];
  const r = shellAvailable ? await runInShell(argv, opts) : await spawnDirect(argv, opts);
  // The shell's "not found" (127) is the direct spawn's ENOENT; `ip netns exec` says it in its own words.
  if (r.code === 127 && /not found|No such file/.test(r.stderr)) throw missingTool(argv[0]!);
  if (r.code !== 0 && argv[1] === "netns" && r.stderr.includes(`exec of "${command}" failed: No such file`)) throw missingTool(command);
  return r;
}

const shellAvailable = existsSync("/bin/sh");
// iproute2 ships ip and bridge; procps ships sysctl; iptables the legacy tools.
const installHint: Record<string, string> = { nft: "nftables", ip: "iproute2", bridge: "iproute2", sysctl: "procps",
  ...Object.fromEntries(["iptables-legacy", "ip6tables-legacy", "iptables-legacy-restore", "ip6tables-legacy-restore"].map((t) => [t, "iptables"])) };
const missingTool = (tool: string) => new MissingToolError(`${tool} not found in PATH; install ${installHint[tool] ?? tool}`);

/** Start the tool directly: only where the image has no /bin/sh. */
function spawnDirect(argv: string[], opts: { input?: string; timeoutMs?: number; env?: Record<string, string> }): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"], ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(e.code === "ENOENT" ? missingTool(argv[0]!) : e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin.on("error", () => undefined); // a tool that exits early closes stdin; the exit code tells
    child.stdin.end(opts.input ?? "");
  });
}

/** The error for a command that exited non-zero: the command and its stderr. */
export const commandFailed = (command: string, args: string[], r: ExecResult) =>
  new Error(`${command} ${args.join(" ")} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);

/** Like run, but a non-zero exit becomes an error naming the command and its stderr. */
export async function runOk(command: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<string> {
  const r = await run(command, args, opts);
  if (r.code !== 0) throw commandFailed(command, args, r);
  return r.stdout;
}
