import { spawn, type ChildProcess } from "node:child_process";
import type { Pod } from "../localcluster/cni-exec.js";

export interface MatrixCell { from: string; to: string; ok: boolean; families: Array<{ dst: string; seen?: string; ok: boolean }> }
export interface Matrix { pods: string[]; cells: MatrixCell[]; families: number }

const PORT = 7800;
/**
 * Listeners end when the last sender has finished, not on a timer: at 40–50 nodes the ~200 Node.js processes
 * take 15–23 s to start on 2 cores, and a fixed 15 s made the late senders find no receiver. This bound is only
 * a safety net for a run that hangs.
 */
const SAFETY_MS = 300_000;

/**
 * A UDP listener inside a pod on every one of its addresses; prints "<dst> <src> <sender>" per datagram. It runs
 * until the matrix ends it (every sender done) or its stdin closes (this process gone); `safetyMs` only bounds a
 * run that hangs.
 */
function listen(pod: Pod, safetyMs: number): { child: ChildProcess; lines: string[]; ready: Promise<void> } {
  const script = `
    const dgram = require("node:dgram");
    let bound = 0;
    for (const ip of ${JSON.stringify(pod.ips)}) {
      const s = dgram.createSocket(ip.includes(":") ? "udp6" : "udp4");
      s.on("message", (m, r) => console.log(ip + " " + r.address.replace(/^::ffff:/, "") + " " + m.toString()));
      s.bind(${PORT}, ip, () => { if (++bound === ${pod.ips.length}) console.log("ready"); });
    }
    process.stdin.on("end", () => process.exit(0)).resume();
    setTimeout(() => process.exit(0), ${safetyMs});`;
  const child = spawn("ip", ["netns", "exec", pod.ns, process.execPath, "-e", script], { stdio: ["pipe", "pipe", "ignore"] });
  const lines: string[] = [];
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  child.stdout!.on("data", (d: Buffer) => {
    for (const l of d.toString().split("\n").filter(Boolean)) {
      if (l === "ready") markReady();
      else lines.push(l);
    }
  });
  child.once("exit", () => markReady());
  return { child, lines, ready };
}

/** One sender per pod: a few datagrams to every address of every pod on another node, named after itself. */
function send(from: Pod, targets: string[]): Promise<void> {
  const script = `
    const dgram = require("node:dgram");
    const targets = ${JSON.stringify(targets)};
    const socks = { 4: dgram.createSocket("udp4"), 6: dgram.createSocket("udp6") };
    let round = 0;
    const tick = () => {
      for (const t of targets) socks[t.includes(":") ? 6 : 4].send(${JSON.stringify(from.name)}, ${PORT}, t);
      if (++round < 5) setTimeout(tick, 150); else setTimeout(() => process.exit(0), 100);
    };
    tick();`;
  // The timeout only bounds a sender that hangs; its 5 rounds take under a second once it runs.
  return new Promise((resolve) => spawn("ip", ["netns", "exec", from.ns, process.execPath, "-e", script], { stdio: "ignore", timeout: SAFETY_MS })
    .once("exit", () => resolve()));
}

/**
 * Every ordered pod pair on different nodes, every address family: does a datagram arrive, and from which
 * source address? A cell is ok when each family arrived from the sender's own pod IP (no NAT on the way).
 * All listeners and senders run at once: a second or two for a few nodes, 15–25 s at 40–50 (process starts).
 */
export async function connectivityMatrix(pods: Pod[]): Promise<Matrix> {
  const listeners = pods.map((p) => listen(p, SAFETY_MS));
  try {
    await Promise.all(listeners.map((l) => l.ready));
    await Promise.all(pods.map((from) => send(from, pods.filter((to) => to.nodeNs !== from.nodeNs).flatMap((to) => to.ips))));
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    for (const l of listeners) l.child.kill();
  }
  const cells: MatrixCell[] = [];
  for (const [i, to] of pods.entries()) {
    for (const from of pods) {
      if (from.nodeNs === to.nodeNs) continue;
      const families = to.ips.map((dst) => {
        const sameFamily = from.ips.find((ip) => ip.includes(":") === dst.includes(":"));
        const seen = listeners[i]!.lines.map((l) => l.split(" ")).find(([d, , sender]) => d === dst && sender === from.name)?.[1];
        return { dst, ...(seen ? { seen } : {}), ok: seen !== undefined && seen === sameFamily };
      });
      cells.push({ from: from.name, to: to.name, ok: families.every((f) => f.ok), families });
    }
  }
  return { pods: pods.map((p) => p.name), cells, families: Math.max(...pods.map((p) => p.ips.length)) };
}

/** How many failing pairs a large matrix names one by one; the rest are counted per sender and per receiver. */
const LISTED_FAILURES = 20;

/** The grid up to 12 pods (6 nodes); beyond, it would not fit a terminal: the first failing pairs, counts, the summary. */
export function formatMatrix(m: Matrix, maxGrid = 12): string {
  const failed = m.cells.filter((c) => !c.ok);
  const over = m.families > 1 ? " over IPv4 and IPv6" : "";
  // "each receiver saw the sender's own pod IP" is a claim about every cell: only said when every cell passed.
  const summary = failed.length
    ? `${m.cells.length - failed.length}/${m.cells.length} cross-node pairs reached${over} with the sender's own pod IP as source; ${failed.length} failed`
    : `${m.cells.length}/${m.cells.length} cross-node pairs reached${over}, each receiver saw the sender's own pod IP`;
  if (m.pods.length > maxGrid) return [...failureLines(failed), summary].join("\n");
  const width = Math.max(...m.pods.map((p) => p.length)) + 1;
  const header = `${"from \\ to".padEnd(width)} ${m.pods.map((p) => p.padEnd(width)).join(" ")}`;
  const rows = m.pods.map((from) => `${from.padEnd(width)} ${m.pods.map((to) => {
    const cell = m.cells.find((c) => c.from === from && c.to === to);
    return (cell ? (cell.ok ? "ok" : "FAIL") : "·").padEnd(width);
  }).join(" ")}`);
  return [header, ...rows, summary].join("\n");
}

/** The first failing pairs by name (with what arrived), then failures per sender and per receiver, most first. */
function failureLines(failed: MatrixCell[]): string[] {
  const why = (c: MatrixCell) => c.families.filter((f) => !f.ok).map((f) => (f.seen ? `${f.dst} saw ${f.seen}` : `nothing reached ${f.dst}`)).join(", ");
  const lines = failed.slice(0, LISTED_FAILURES).map((c) => `FAIL ${c.from} → ${c.to}${c.families.length ? ` (${why(c)})` : ""}`);
  if (failed.length <= LISTED_FAILURES) return lines;
  const counts = (key: (c: MatrixCell) => string) => {
    const byPod = new Map<string, number>();
    for (const c of failed) byPod.set(key(c), (byPod.get(key(c)) ?? 0) + 1);
    const sorted = [...byPod].sort((a, b) => b[1] - a[1]);
    return `${sorted.slice(0, 10).map(([pod, n]) => `${pod} ${n}`).join(", ")}${sorted.length > 10 ? `, … (${sorted.length} pods in all)` : ""}`;
  };
  return [...lines, `… and ${failed.length - LISTED_FAILURES} more failing pairs`, `failures by sender: ${counts((c) => c.from)}`, `failures by receiver: ${counts((c) => c.to)}`];
}
