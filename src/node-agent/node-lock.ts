import { createHash } from "node:crypto";
import { createConnection, createServer, type Server } from "node:net";

/**
 * One podnet agent per node, and no cleanup while one runs. Two agents undo each other's work (the nft table
 * rewritten, the conflist flapping between their MTUs, with --overlay=none beside auto a hot loop dropping the
 * overlay routes), and a cleanup beside an agent is undone within a second. Only the fixed metrics port kept a
 * second agent out, and any other port let it in.
 *
 * The lock is a Unix socket in Linux's abstract namespace: it belongs to the network namespace of the process
 * that binds it (hostNetwork pods all share the host's), the kernel refuses a second bind (EADDRINUSE), and it
 * goes with its process, however that dies (SIGKILL, OOM), leaving no file behind. Node opens sockets with
 * close-on-exec, so the `ip` and `nft` processes an agent starts do not keep it. A process programming a named
 * namespace from the host's (--netns: tests, the local cluster) puts that name into the lock's.
 */
export function nodeLockName(netns?: string): string {
  const name = `podnet-agent:${netns ?? "host"}`;
  // An abstract name fits in sun_path's 107 bytes; a longer namespace name is hashed into one that does.
  return `\0${name.length <= 100 ? name : `podnet-agent:${createHash("sha256").update(netns!).digest("hex").slice(0, 32)}`}`;
}

export type LockRole = "agent" | "cleanup";
/** What the holder tells a process it turned away (each connection gets it as one JSON line). */
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
export function refusal(wanting: LockRole, netns: string | undefined, holder: LockHolder | undefined): string {
  const who = holder ? `${holder.role === "agent" ? "podnet agent" : "podnet agent cleanup"} pid ${holder.pid}${holder.node ? ` for node ${holder.node}` : ""}, since ${holder.since}`
    : "a process that does not say what it is";
  // `ss -xlp` lists the socket as @podnet-agent:…, with the holder's pid as the host sees it.
  const lock = `lock @${nodeLockName(netns).slice(1)} held by ${who}`;
  if (holder?.role === "cleanup") return `${wanting === "agent" ? "" : "another "}podnet agent cleanup runs on this node (${lock}); ${wanting === "agent" ? "refusing to start until it is done" : "not cleaning beside it"}`;
  if (wanting === "cleanup") return `a podnet agent runs on this node (${lock}): a cleanup beside it would be undone within a second; stop the agent first (helm uninstall --wait, or delete the podnet-agent DaemonSet)`;
  return `another podnet agent runs for this node (${lock}); refusing to start a second one`;
}

/**
 * Take the node's lock or throw NodeLockHeldError naming its holder. Held until release() or the process's end;
 * the socket does not keep the process alive.
 */
export async function takeNodeLock(netns: string | undefined, me: { role: LockRole; node?: string }): Promise<NodeLock> {
  const path = nodeLockName(netns);
  const line = `${JSON.stringify({ role: me.role, pid: process.pid, ...(me.node ? { node: me.node } : {}), since: new Date().toISOString() })}\n`;
  const server = createServer((socket) => { socket.on("error", () => undefined); socket.end(line); });
  try {
    await new Promise<void>((resolve, reject) => { server.once("error", reject); server.listen({ path }, resolve); });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw new Error(`cannot take the node lock @${path.slice(1)}: ${(err as Error).message}`, { cause: err });
    const holder = await askHolder(path);
    throw new NodeLockHeldError(refusal(me.role, netns, holder), holder);
  }
  server.on("error", () => undefined);
  server.unref();
  return { release: () => closeServer(server) };
}

const closeServer = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

/** The holder's own account of itself; undefined if it says nothing podnet's within a second. */
function askHolder(path: string): Promise<LockHolder | undefined> {
  return new Promise((resolve) => {
    let text = "";
    const socket = createConnection({ path });
    const done = () => { socket.destroy(); resolve(parseHolder(text)); };
    socket.setEncoding("utf8").setTimeout(1_000, done);
    socket.on("data", (d: string) => { text += d; if (text.length > 4096) done(); });
    socket.on("end", done).on("error", done);
  });
}
