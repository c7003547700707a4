import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { randomBytes } from "node:crypto";

export interface ExecResult { code: number; stdout: string; stderr: string }

/**
 * Host tools (ip, nft, sysctl, CNI plugins) are started by a few long-lived /bin/sh processes, not by the
 * agent itself. Node starts a child with fork(), whose cost grows with the parent's resident memory (measured:
 * 7.5 ms of the agent's CPU and 14.5 ms wall per `ip -batch` at 150 MB, against 0.2 ms and 2 ms through a
 * shell), and every agent starts one `ip` per node join. A shell is small, so its fork of the tool is cheap;
 * each command is still a fresh process (a long-lived `ip -batch` keeps stale device indexes).
 *
 * Each command's stdout and stderr are framed by a random marker the shell echoes after it, with the exit
 * status; input goes in as a quoted here-document, so nothing in it is expanded. dash (the image's /bin/sh,
 * Debian's) feeds here-documents through a pipe, never a temp file: the agent's read-only root is fine.
 */
const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** The shell was gone before the command reached it: nothing ran, so another shell may run it. */
class ShellGone extends Error {}

interface Pending { token: string; resolve: (r: ExecResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

/**
 * One output stream of the shell: chunks kept apart (a route dump is a megabyte; appending to one string and
 * searching it after every chunk would copy it over and over), the marker looked for where the new chunk
 * meets the end of the previous ones.
 */
class Stream {
  private chunks: string[] = [];
  private tail = "";
  /** Text before the marker and the rest of the marker's line, once the line is complete. */
  take(token: string): { before: string; line: string } | undefined {
    if (!this.tail.includes(token) || !/\n/.test(this.tail.slice(this.tail.indexOf(token)))) return undefined;
    const all = this.chunks.join("");
    const at = all.indexOf(token);
    const end = all.indexOf("\n", at);
    this.chunks = [all.slice(end + 1)];
    this.tail = this.chunks[0]!;
    return { before: all.slice(0, at), line: all.slice(at + token.length, end) };
  }
  push(d: string, keep: number): void {
    this.chunks.push(d);
    this.tail = (this.tail + d).slice(-keep);
  }
  text(): string { return this.chunks.join(""); }
}

class ToolShell {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly out = new Stream();
  private readonly err = new Stream();
  private pending?: Pending;
  /** Commands run one at a time per shell: each waits for the one before. */
  private lastCommand: Promise<unknown> = Promise.resolve();
  queued = 0;
  dead = false;

  constructor() {
    // Its own process group, so a timed-out command is killed together with the shell running it.
    this.child = spawn("/bin/sh", [], { stdio: ["pipe", "pipe", "pipe"], detached: true });
    this.child.unref();
    for (const stream of [this.child.stdin, this.child.stdout, this.child.stderr]) (stream as unknown as { unref?: () => void }).unref?.();
    // The tail kept for the marker search: the marker, the exit status after it, and the newline.
    const keep = 64;
    this.child.stdout.setEncoding("utf8").on("data", (d: string) => { this.out.push(d, keep); this.settle(); });
    this.child.stderr.setEncoding("utf8").on("data", (d: string) => { this.err.push(d, keep); this.settle(); });
    this.child.stdin.on("error", () => undefined); // a dead shell is reported by "exit"
    this.child.on("exit", () => this.fail(new Error("tool shell exited")));
    this.child.on("error", (e) => this.fail(e));
  }

  run(argv: string[], input: string | undefined, env: Record<string, string> | undefined, timeoutMs: number): Promise<ExecResult> {
    this.queued++;
    const result = this.lastCommand.catch(() => undefined).then(() => this.exec(argv, input, env, timeoutMs));
    this.lastCommand = result;
    return result.finally(() => this.queued--);
  }

  private exec(argv: string[], input: string | undefined, env: Record<string, string> | undefined, timeoutMs: number): Promise<ExecResult> {
    if (this.dead) return Promise.reject(new ShellGone("tool shell exited before the command was sent"));
    let token = `__podnet_${randomBytes(8).toString("hex")}__`;
    while (input?.includes(token)) token = `__podnet_${randomBytes(8).toString("hex")}__`;
    const assignments = Object.entries(env ?? {}).map(([k, v]) => `${k}=${quote(v)} `).join("");
    const stdin = input === undefined || input === "" ? " </dev/null" : ` <<'${token}'\n${input}${input.endsWith("\n") ? "" : "\n"}${token}`;
    const script = `${assignments}${argv.map(quote).join(" ")}${stdin}\necho "${token} $?"; echo "${token}" >&2\n`;
    return new Promise<ExecResult>((resolve, reject) => {
      // As a directly started tool killed on timeout would: exit status -1, what it wrote so far.
      const timer = setTimeout(() => {
        const partial = { code: -1, stdout: this.out.text(), stderr: `${this.err.text()}${argv[0]} killed after ${timeoutMs} ms` };
        this.pending = undefined;
        this.kill();
        resolve(partial);
      }, timeoutMs);
      this.pending = { token, resolve, reject, timer };
      this.child.stdin.write(script);
    });
  }

  /** Resolve the running command once both streams carry its marker (the exit status rides on stdout's). */
  private settle(): void {
    const p = this.pending;
    if (!p) return;
    this.outDone ??= this.out.take(p.token);
    this.errDone ??= this.err.take(p.token);
    if (!this.outDone || !this.errDone) return;
    const result = { code: Number(this.outDone.line.trim()), stdout: this.outDone.before, stderr: this.errDone.before };
    this.outDone = this.errDone = undefined;
    this.pending = undefined;
    clearTimeout(p.timer);
    p.resolve(result);
  }

  private outDone?: { before: string; line: string };
  private errDone?: { before: string; line: string };

  private fail(e: Error): void {
    this.dead = true;
    const p = this.pending;
    this.pending = undefined;
    if (p) { clearTimeout(p.timer); p.reject(e); }
  }

  kill(): void {
    this.dead = true;
    try { process.kill(-this.child.pid!, "SIGKILL"); } catch { /* already gone */ }
  }
}

const MAX_SHELLS = 4;
const shells: ToolShell[] = [];

/** A live shell with the shortest queue; a new one while fewer than MAX_SHELLS are all busy. */
function pickShell(): ToolShell {
  for (let i = shells.length - 1; i >= 0; i--) if (shells[i]!.dead) shells.splice(i, 1);
  const idle = shells.find((s) => s.queued === 0);
  if (idle) return idle;
  if (shells.length < MAX_SHELLS) { const s = new ToolShell(); shells.push(s); return s; }
  return shells.reduce((a, b) => (b.queued < a.queued ? b : a));
}

/** Start the first shell now, while this process is still small (its own fork is the dearest one). */
export function warmToolShell(): void {
  if (!shells.some((s) => !s.dead)) shells.push(new ToolShell());
}

/** Run argv through a tool shell; a command the shell cannot find exits 127, as from a terminal. */
export async function runInShell(argv: string[], opts: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<ExecResult> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await pickShell().run(argv, opts.input, opts.env, opts.timeoutMs ?? 30_000);
    } catch (err) {
      if (!(err instanceof ShellGone) || attempt >= 2) throw err;
    }
  }
}

/** Stop every tool shell (tests; a process that exits closes their stdin and they end by themselves). */
export function stopToolShells(): void {
  for (const s of shells.splice(0)) s.kill();
}
