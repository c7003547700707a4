import { describe, expect, it } from "vitest";
import { formatMatrix, type Matrix } from "./matrix.js";

const matrix = (nodes: number, failing?: [string, string]): Matrix => {
  const pods = Array.from({ length: nodes }, (_, n) => [1, 2].map((i) => `node-${n + 1}-pod${i}`)).flat();
  const node = (pod: string) => pod.split("-pod")[0];
  const cells = pods.flatMap((from) => pods.filter((to) => node(to) !== node(from)).map((to) => ({
    from, to, ok: !(failing && failing[0] === from && failing[1] === to), families: [],
  })));
  return { pods, cells, families: 1 };
};

describe("formatMatrix", () => {
  it("draws the grid for a few nodes", () => {
    const lines = formatMatrix(matrix(3)).split("\n");
    expect(lines).toHaveLength(1 + 6 + 1);
    expect(lines.at(-1)).toBe("24/24 cross-node pairs reached, each receiver saw the sender's own pod IP");
  });

  it("past 6 nodes, names only the failing pairs and counts the rest", () => {
    expect(formatMatrix(matrix(30, ["node-2-pod1", "node-9-pod2"])).split("\n")).toEqual([
      "FAIL node-2-pod1 → node-9-pod2",
      "3479/3480 cross-node pairs reached, each receiver saw the sender's own pod IP",
    ]);
  });
});
