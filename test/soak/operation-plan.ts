import type { Prng } from "./prng.js";

/** One chaos step, with every random parameter already drawn (the shell only carries it out). */
export type Operation =
  | { kind: "join"; node: string }
  | { kind: "delete"; node: string }
  /** Node deleted, then a node of the same name joins after a pause (0 for rejoinFast). */
  | { kind: "rejoin" | "rejoinFast"; node: string; pauseMs: number }
  | { kind: "agentKill" | "agentTerm"; node: string; pauseMs: number }
  | { kind: "controllerKill"; replica: number; pauseMs: number }
  | { kind: "apiserverBounce"; downMs: number }
  | { kind: "podAdd"; node: string; pod: string }
  | { kind: "podDel"; pod: string }
  /** The Node object alone deleted and created again (its pods gone first, as pod GC would); the agent runs on. */
  | { kind: "reregister"; node: string; pauseMs: number };
export type OperationKind = Operation["kind"];

/** What the choice depends on: the cluster as the soak left it, and counters for fresh names. */
export interface ClusterShape {
  nodes: readonly string[];
  pods: readonly string[];
  controllers: number;
  /** The node count the run started with: joins and deletes keep the cluster within one of it. */
  startNodes: number;
  joinedSoFar: number;
  podsSoFar: number;
}

export interface SoakModes {
  /** Restarts of killed processes wait until the round's other operations are done. */
  overlap: boolean;
  reregister: boolean;
}

/** How often each operation comes up, given what the cluster holds now (0: not possible or not wanted). */
export function operationWeights(shape: ClusterShape, modes: SoakModes): Array<[OperationKind, number]> {
  const n = shape.nodes.length;
  return [
    ["join", n < shape.startNodes + 1 ? 2 : 0],
    ["delete", n > Math.max(2, shape.startNodes - 1) ? 2 : 0],
    ["rejoin", n ? 2 : 0],
    ["rejoinFast", n ? 1 : 0],
    ["agentKill", n ? 3 : 0],
    ["agentTerm", n ? 2 : 0],
    ["controllerKill", 2],
    ["apiserverBounce", 1],
    ["podAdd", n ? 3 : 0],
    ["podDel", shape.pods.length ? 2 : 0],
    ["reregister", modes.reregister && n ? 3 : 0],
  ];
}

function weightedKind(rng: Prng, weights: Array<[OperationKind, number]>): OperationKind {
  const total = weights.reduce((sum, [, w]) => sum + w, 0);
  let x = rng.next() * total;
  for (const [kind, w] of weights) {
    if (x < w) return kind;
    x -= w;
  }
  return weights.findLast(([, w]) => w > 0)![0];
}

export function chooseOperation(rng: Prng, shape: ClusterShape, modes: SoakModes): Operation {
  const kind = weightedKind(rng, operationWeights(shape, modes));
  // Drawn for every kind, in the same order, so one choice does not shift the draws of the next.
  const node = shape.nodes.length ? rng.pick(shape.nodes) : "";
  switch (kind) {
    case "join": return { kind, node: `x-${shape.joinedSoFar + 1}` };
    case "delete": return { kind, node };
    case "rejoin": return { kind, node, pauseMs: rng.int(4000) };
    case "rejoinFast": return { kind, node, pauseMs: 0 };
    case "agentKill": case "agentTerm": return { kind, node, pauseMs: rng.int(2000) };
    case "controllerKill": return { kind, replica: rng.int(shape.controllers), pauseMs: rng.int(2000) };
    case "apiserverBounce": return { kind, downMs: 1000 + rng.int(5000) };
    case "podAdd": return { kind, node, pod: `p${shape.podsSoFar + 1}` };
    case "podDel": return { kind, pod: rng.pick(shape.pods) };
    case "reregister": return { kind, node, pauseMs: rng.int(3000) };
  }
}

/** Operations in one round: 1–3, or 1–4 when restarts overlap (more happens at once). */
export const operationsThisRound = (rng: Prng, modes: SoakModes): number => 1 + rng.int(modes.overlap ? 4 : 3);

export function describeOperation(op: Operation): string {
  switch (op.kind) {
    case "join": case "delete": return `${op.kind} ${op.node}`;
    case "rejoin": case "rejoinFast": case "reregister": return `${op.kind} ${op.node}${op.pauseMs ? ` after ${op.pauseMs} ms` : ""}`;
    case "agentKill": case "agentTerm": return `${op.kind} ${op.node}`;
    case "controllerKill": return `${op.kind} replica ${op.replica + 1}`;
    case "apiserverBounce": return `${op.kind} ${op.downMs} ms`;
    case "podAdd": return `${op.kind} ${op.pod}@${op.node}`;
    case "podDel": return `${op.kind} ${op.pod}`;
  }
}
