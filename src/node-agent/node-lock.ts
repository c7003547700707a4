import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { accessSync, chmodSync, closeSync, constants, lstatSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, type Stats } from "node:fs";
import { join } from "node:path";

/**
 * One podnet agent per node, and no cleanup while one runs. Two agents undo each other's work (the nft table
 * rewritten, the conflist flapping between their MTUs, with --overlay=none beside auto a hot loop dropping the
 * overlay routes), and a cleanup beside an agent is undone within a second. Only the fixed metrics port kept a
 * second agent out, and any other port let it in.
 *
 * The lock is an flock(2) on a file in a directory only root may write (the chart mounts the host's
 * /run/podnet): no unprivileged process on the node can take it first. The abstract Unix socket used before
 * belonged to the network namespace, so any process there (an unprivileged user, any host-network pod) could
 * bind its name first and keep the agent from starting (a security review). Node.js has no flock, so a small
 * helper holds it: flock(1) runs a shell that waits on a pipe from the agent and ends when the agent does,
 * however the agent dies (SIGKILL, OOM): the kernel closes the pipe, and the lock goes with the helper. A
 * process programming a named namespace from the host's (--netns: tests, the local cluster) locks a file named
 * after it.
 */
export const DEFAULT_LOCK_DIR = "/run/podnet";

export function nodeLockPath(dir: string, netns?: string): string {
  const name = netns ?? "host";
  // A file name of 255 bytes at most, and nothing a path could be made of: other names are hashed.
  return join(dir, `agent-${/^[A-Za-z0-9._-]{1,200}$/.test(name) && !name.startsWith(".") ? name : createHash("sha256").update(name).digest("hex").slice(0, 32)}.lock`);
}

export type LockRole = "agent" | "cleanup";
/** What the holder wrote into the lock file once it held it. */
export interface LockHolder { role: LockRole; pid: number; node?: string; since: string }

export class NodeLockHeldError extends Error {
  override name = "NodeLockHeldError";
  constructor(message: string, readonly holder: LockHolder | undefined) { super(message); }
}

export interface NodeLock { release(): Promise<void> }

/** Pure: the holder's line, or undefined for anything else (not podnet's, cut off, garbled). */
export function parseHolder(text: string): LockHolder | undefined {
  try {
    const h = JSON.parse(text.split("\n")[0] ?? "") as Partial<LockHolder>;
    if ((h.role !== "agent" && h.role !== "cleanup") || typeof h.pid !== "number" || typeof h.since !== "string") return undefined;
    return { role: h.role, pid: h.pid, since: h.since, ...(typeof h.node === "string" ? { node: h.node } : {}) };
  } catch { return undefined; }
}

/** Pure: why `wanting` may not run, naming the lock and the holder as it described itself (its pid is its own PID namespace's). */
export function refusal(wanting: LockRole, path: string, holder: LockHolder | undefined): string {
  const who = holder ? `${holder.role === "agent" ? "podnet agent" : "podnet agent cleanup"} pid ${holder.pid}${holder.node ? ` for node ${holder.node}` : ""}, since ${holder.since}`
    : "a process that has not said what it is";
  // `fuser -v <path>` (or `lslocks`) names the holder's processes as the host sees them.
  const lock = `lock ${path} held by ${who}`;
  if (holder?.role === "cleanup") return `${wanting === "agent" ? "" : "another "}podnet agent cleanup runs on this node (${lock}); ${wanting === "agent" ? "refusing to start until it is done" : "not cleaning beside it"}`;
  if (wanting === "cleanup") return `a podnet agent runs on this node (${lock}): a cleanup beside it would be undone within a second; stop the agent first (helm uninstall --wait, or delete the podnet-agent DaemonSet)`;
  return `another podnet agent runs for this node (${lock}); refusing to start a second one`;
}

/**
 * The lock file: a regular file of this user's, 0600, in a directory of this user's that no one else can write to
 * (kubelet makes a hostPath directory 0755). flock(2) needs no write access: a file another user could open, even
 * read-only, is one that user could lock first. The directory is not tightened: --lock-dir may name one that
 * others rely on (a 1777 /run/lock), so one that others can write to is refused.
 */
function privateLockFile(dir: string, path: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const uid = process.getuid?.();
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    const is = st.isDirectory() ? `mode ${(st.mode & 0o7777).toString(8)}, owner uid ${st.uid}` : "not a directory";
    throw new Error(`cannot take the node lock: ${dir} must be a directory owned by uid ${uid} that no other user can write to (it is ${is})`);
  }
  // Nobody else can write here now: anything else at the path (another's file, a link, a directory) is from
  // before, and once gone cannot be put back.
  const file = lstatIfPresent(path);
  if (file && (!file.isFile() || file.uid !== uid || file.nlink !== 1)) rmSync(path, { force: true, recursive: true });
  closeSync(openSync(path, constants.O_RDONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600));
  if ((lstatSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
}

function lstatIfPresent(path: string): Stats | undefined {
  try { return lstatSync(path); } catch (err) { if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined; throw err; }
}

/** flock(1) by its full path: the agent may run with a PATH that lacks it (tests give it only some tools). */
function flockBinary(): string {
  for (const p of ["/usr/bin/flock", "/bin/flock"]) { try { accessSync(p, constants.X_OK); return p; } catch { /* next */ } }
  return "flock";
}

/** Exit status flock(1) is told to use when the lock is held (75, EX_TEMPFAIL). */
const HELD = 75;

/**
 * Take the node's lock or throw NodeLockHeldError naming its holder. Held until release() or the process's end;
 * `onLost` is called if the helper holding it ends otherwise (killed): this process then holds nothing.
 */
export async function takeNodeLock(dir: string, netns: string | undefined, me: { role: LockRole; node?: string }, onLost?: () => void): Promise<NodeLock> {
  const path = nodeLockPath(dir, netns);
  privateLockFile(dir, path);
  // The shell says when flock has the lock, then waits on its stdin, a pipe only this process writes to. In a
  // session of its own: a Ctrl-C to this process's group must not end it before this process's last pass.
  const helper = spawn(flockBinary(), ["--nonblock", "--conflict-exit-code", String(HELD), path, "/bin/sh", "-c", "echo locked; while read -r _; do :; done"],
    { stdio: ["pipe", "pipe", "pipe"], detached: true });
  const outcome = await new Promise<"locked" | { code: number | null; said: string } | Error>((resolve) => {
    let said = "";
    helper.stdout!.setEncoding("utf8").on("data", (d: string) => { if (d.includes("locked")) resolve("locked"); });
    helper.stderr!.setEncoding("utf8").on("data", (d: string) => { said += d; });
    helper.once("error", resolve);
    helper.once("exit", (code) => resolve({ code, said: said.trim() }));
  });
  if (outcome === "locked") {
    writeFileSync(path, `${JSON.stringify({ role: me.role, pid: process.pid, ...(me.node ? { node: me.node } : {}), since: new Date().toISOString() })}\n`);
    return holding(helper, path, onLost);
  }
  if (!(outcome instanceof Error) && outcome.code === HELD) {
    const holder = await holderOf(path);
    throw new NodeLockHeldError(refusal(me.role, path, holder), holder);
  }
  const why = outcome instanceof Error ? outcome.message : `flock exited ${outcome.code}${outcome.said ? `: ${outcome.said}` : ""}`;
  throw new Error(`cannot take the node lock ${path}: ${why} (flock(1) from util-linux is needed)`);
}

/**
 * The holder's line. It is written just after flock has the lock and cleared at a release: read after a moment,
 * and again while it is missing, or a refusal names no one, or a holder killed before its release.
 */
async function holderOf(path: string): Promise<LockHolder | undefined> {
  for (let i = 0; i < 6; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const holder = parseHolder(readIfAny(path));
    if (holder) return holder;
  }
  return undefined;
}

const readIfAny = (path: string) => { try { return readFileSync(path, "utf8"); } catch { return ""; } };

/**
 * The lock for a long-lived holder (the agent): if its helper ends (killed), it is taken again at once, usually
 * free still, so no second agent gets in between; `onGone` when it cannot be (another holder got it).
 */
export async function holdNodeLock(dir: string, netns: string | undefined, me: { role: LockRole; node?: string },
  on: { retaken: () => void; gone: (err: Error) => void }): Promise<NodeLock> {
  let released = false;
  const lost = () => {
    if (released) return;
    takeNodeLock(dir, netns, me, lost).then(
      (lock) => { if (released) void lock.release(); else { current = lock; on.retaken(); } },
      (err: unknown) => on.gone(err instanceof Error ? err : new Error(String(err))));
  };
  let current = await takeNodeLock(dir, netns, me, lost);
  return { release: async () => { released = true; await current.release(); } };
}

/** The lock as held by `helper`: it does not keep this process alive, and release() clears the holder's line and ends it. */
function holding(helper: ChildProcess, path: string, onLost?: () => void): NodeLock {
  let releasing = false;
  const exited = new Promise<void>((resolve) => helper.once("exit", () => { if (!releasing) onLost?.(); resolve(); }));
  helper.stdin!.on("error", () => undefined); // EPIPE from a helper already gone: its exit says so
  for (const stream of [helper.stdin, helper.stdout, helper.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
  helper.unref();
  return {
    release: async () => {
      if (releasing) return exited;
      releasing = true;
      if (helper.exitCode === null && helper.signalCode === null) { try { writeFileSync(path, ""); } catch { /* the line is only a courtesy */ } }
      helper.stdin!.end();
      const killer = setTimeout(() => helper.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(killer);
    },
  };
}
