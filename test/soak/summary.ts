import type { OperationKind } from "./operation-plan.js";

export interface RoundResult {
  round: number;
  operations: OperationKind[];
  convergeMs: number;
  violations: string[];
}

export interface SoakSummary {
  rounds: number;
  operations: Partial<Record<OperationKind, number>>;
  maxConvergeMs: number;
  p50ConvergeMs: number;
  violations: number;
  /** Problems the 250 ms sampler saw in the NodeCIDR list between checks, each once. */
  sampledIssues: number;
}

/** The nearest-rank median: p50 of [] is 0. */
export function median(values: readonly number[]): number {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil(sorted.length / 2) - 1]!;
}

export function summarize(results: readonly RoundResult[], sampledIssues: number, otherViolations = 0): SoakSummary {
  const operations: Partial<Record<OperationKind, number>> = {};
  for (const r of results) for (const op of r.operations) operations[op] = (operations[op] ?? 0) + 1;
  const times = results.map((r) => r.convergeMs);
  return {
    rounds: results.length, operations,
    maxConvergeMs: times.length ? Math.max(...times) : 0, p50ConvergeMs: median(times),
    violations: results.reduce((n, r) => n + r.violations.length, 0) + sampledIssues + otherViolations, sampledIssues,
  };
}

export function summaryLine(seed: number, s: SoakSummary): string {
  const ops = Object.entries(s.operations).sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k}=${n}`).join(" ");
  return `SUMMARY seed=${seed} rounds=${s.rounds} operations: ${ops || "none"}; convergence max ${(s.maxConvergeMs / 1000).toFixed(1)} s, `
    + `p50 ${(s.p50ConvergeMs / 1000).toFixed(1)} s; violations=${s.violations}${s.sampledIssues ? ` (${s.sampledIssues} seen by the sampler)` : ""}`;
}
