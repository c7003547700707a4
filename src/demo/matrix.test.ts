import { describe, expect, it } from "vitest";
import { formatMatrix, type Matrix } from "./matrix.js";

const matrix = (nodes: number, failing?: [string, string], fails = (from: string, to: string) => failing?.[0] === from && failing[1] === to): Matrix => {
  const pods = Array.from({ length: nodes }, (_, n) => [1, 2].map((i) => `node-${n + 1}-pod${i}`)).flat();
  const node = (pod: string) => pod.split("-pod")[0];
  const cells = pods.flatMap((from) => pods.filter((to) => node(to) !== node(from)).map((to) => ({
    from, to, ok: !fails(from, to), families: [],
  })));
  return { pods, cells, families: 1 };
};

describe("formatMatrix", () => {
  it("draws the grid for a few nodes", () => {
    const lines = formatMatrix(matrix(3)).split("\n");
    expect(lines).toHaveLength(1 + 6 + 1);
    expect(lines.at(-1)).toBe("24/24 cross-node pairs reached, each receiver saw the sender's own pod IP");
  });

  it("past 6 nodes, names only the failing pairs and counts the rest; no claim about sources when a pair failed", () => {
    expect(formatMatrix(matrix(30, ["node-2-pod1", "node-9-pod2"])).split("\n")).toEqual([
      "FAIL node-2-pod1 → node-9-pod2",
      "3479/3480 cross-node pairs reached with the sender's own pod IP as source; 1 failed",
    ]);
  });

  it("in the grid too, the summary says how many failed rather than that every receiver saw the sender", () => {
    expect(formatMatrix(matrix(3, ["node-1-pod1", "node-2-pod1"])).split("\n").at(-1))
      .toBe("23/24 cross-node pairs reached with the sender's own pod IP as source; 1 failed");
  });

  it("a large failure names the first 20 pairs, then counts per sender and per receiver", () => {
    // Every pair towards node-50 fails: 196 pairs (98 senders × 2 receivers).
    const lines = formatMatrix(matrix(50, undefined, (_from, to) => to.startsWith("node-50-"))).split("\n");
    expect(lines).toHaveLength(20 + 4);
    expect(lines[0]).toBe("FAIL node-1-pod1 → node-50-pod1");
    expect(lines[20]).toBe("… and 176 more failing pairs");
    expect(lines[21]).toMatch(/^failures by sender: node-1-pod1 2, node-1-pod2 2, .*, … \(98 pods in all\)$/);
    expect(lines[22]).toBe("failures by receiver: node-50-pod1 98, node-50-pod2 98");
    expect(lines[23]).toBe("9604/9800 cross-node pairs reached with the sender's own pod IP as source; 196 failed");
  });

  it("a failing pair says what arrived for each address", () => {
    const m: Matrix = { pods: Array.from({ length: 14 }, (_, i) => `p${i}`), families: 2, cells: [
      { from: "p0", to: "p1", ok: false, families: [{ dst: "10.244.1.2", ok: false }, { dst: "fd00::2", seen: "fd00::9", ok: false }] },
    ] };
    expect(formatMatrix(m).split("\n")[0]).toBe("FAIL p0 → p1 (nothing reached 10.244.1.2, fd00::2 saw fd00::9)");
  });
});
