import { describe, expect, it } from "vitest";
import { chooseOperation, describeOperation, operationsThisRound, operationWeights, type ClusterShape, type OperationKind, type SoakModes } from "./operation-plan.js";
import { seededPrng } from "./prng.js";

const shape = (over: Partial<ClusterShape> = {}): ClusterShape => ({
  nodes: ["node-1", "node-2", "node-3", "node-4"], pods: ["p1"], controllers: 1, startNodes: 4, joinedSoFar: 0, podsSoFar: 1, ...over,
});
const modes: SoakModes = { overlap: false, reregister: false };
const weightOf = (s: ClusterShape, m: SoakModes, kind: OperationKind) => operationWeights(s, m).find(([k]) => k === kind)![1];

describe("operationWeights", () => {
  it.each([
    { what: "join at the start size", s: shape(), kind: "join" as const, possible: true },
    { what: "join one above the start size", s: shape({ nodes: ["a", "b", "c", "d", "e"] }), kind: "join" as const, possible: false },
    { what: "delete at the start size", s: shape(), kind: "delete" as const, possible: true },
    { what: "delete one below the start size", s: shape({ nodes: ["a", "b", "c"] }), kind: "delete" as const, possible: false },
    { what: "delete down to fewer than 2 nodes", s: shape({ startNodes: 2, nodes: ["a", "b"] }), kind: "delete" as const, possible: false },
    { what: "podDel without pods", s: shape({ pods: [] }), kind: "podDel" as const, possible: false },
    { what: "reregister unless asked for", s: shape(), kind: "reregister" as const, possible: false },
  ])("$what: possible=$possible", ({ s, kind, possible }) => {
    expect(weightOf(s, modes, kind) > 0).toBe(possible);
  });

  it("reregisters when the mode asks for it", () => {
    expect(weightOf(shape(), { ...modes, reregister: true }, "reregister")).toBeGreaterThan(0);
  });
});

describe("chooseOperation", () => {
  it("replays the same operations for the same seed and shape", () => {
    const run = (seed: number) => { const rng = seededPrng(seed); return Array.from({ length: 20 }, () => describeOperation(chooseOperation(rng, shape(), modes))); };
    expect(run(9)).toEqual(run(9));
    expect(run(9)).not.toEqual(run(10));
  });

  it("names a joining node after the joins so far, and a new pod after the pods so far", () => {
    const rng = seededPrng(5);
    const ops = Array.from({ length: 200 }, () => chooseOperation(rng, shape({ joinedSoFar: 6, podsSoFar: 11 }), modes));
    expect(ops.filter((o) => o.kind === "join").every((o) => o.node === "x-7")).toBe(true);
    expect(ops.filter((o) => o.kind === "podAdd").every((o) => o.pod === "p12")).toBe(true);
  });

  it("only targets nodes, pods and replicas that exist, with pauses in their ranges", () => {
    const rng = seededPrng(77);
    const s = shape({ controllers: 2, pods: ["p1", "p2"] });
    for (let i = 0; i < 500; i++) {
      const op = chooseOperation(rng, s, { overlap: true, reregister: true });
      if ("node" in op && op.kind !== "join") expect(s.nodes).toContain(op.node);
      if (op.kind === "podDel") expect(s.pods).toContain(op.pod);
      if (op.kind === "controllerKill") expect([0, 1]).toContain(op.replica);
      if (op.kind === "apiserverBounce") expect(op.downMs >= 1000 && op.downMs < 6000).toBe(true);
      if ("pauseMs" in op) expect(op.pauseMs >= 0 && op.pauseMs < 4000).toBe(true);
    }
  });

  it("never chooses an operation whose weight is 0", () => {
    const rng = seededPrng(3);
    const s = shape({ nodes: ["a", "b", "c"], pods: [] }); // no delete (below start), no podDel
    const kinds = new Set(Array.from({ length: 500 }, () => chooseOperation(rng, s, modes).kind));
    expect([...kinds].filter((k) => ["delete", "podDel", "reregister"].includes(k))).toEqual([]);
  });
});

describe("operationsThisRound", () => {
  it.each([{ overlap: false, max: 3 }, { overlap: true, max: 4 }])("overlap $overlap: 1 to $max", ({ overlap, max }) => {
    const rng = seededPrng(11);
    const counts = new Set(Array.from({ length: 300 }, () => operationsThisRound(rng, { overlap, reregister: false })));
    expect([...counts].sort()).toEqual(Array.from({ length: max }, (_, i) => i + 1));
  });
});
