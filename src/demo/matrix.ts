import type { Pod } from "../localcluster/cni-exec.js";
import { sourceSeenBy } from "../localcluster/udp-probe.js";

export interface MatrixCell { from: string; to: string; ok: boolean; seen?: string; error?: string }
export interface Matrix { pods: string[]; cells: MatrixCell[] }

/** Every ordered pod pair on different nodes: does a datagram arrive, and from which source address? */
export async function connectivityMatrix(pods: Pod[]): Promise<Matrix> {
  const cells: MatrixCell[] = [];
  let port = 7800;
  for (const to of pods) {
    for (const from of pods) {
      if (from === to || from.nodeNs === to.nodeNs) continue;
      try {
        const seen = await sourceSeenBy(to.ns, to.ips[0]!, from.ns, port++);
        cells.push({ from: from.name, to: to.name, ok: seen === from.ips[0], seen });
      } catch (err) {
        cells.push({ from: from.name, to: to.name, ok: false, error: (err as Error).message });
      }
    }
  }
  return { pods: pods.map((p) => p.name), cells };
}

export function formatMatrix(m: Matrix): string {
  const width = Math.max(...m.pods.map((p) => p.length)) + 1;
  const header = `${"from \\ to".padEnd(width)} ${m.pods.map((p) => p.padEnd(width)).join(" ")}`;
  const rows = m.pods.map((from) => `${from.padEnd(width)} ${m.pods.map((to) => {
    const cell = m.cells.find((c) => c.from === from && c.to === to);
    return (cell ? (cell.ok ? "ok" : "FAIL") : "·").padEnd(width);
  }).join(" ")}`);
  const ok = m.cells.filter((c) => c.ok).length;
  return [header, ...rows, `${ok}/${m.cells.length} cross-node pairs reached, each receiver saw the sender's own pod IP`].join("\n");
}
