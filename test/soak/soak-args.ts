import { parseArgs } from "node:util";

export interface SoakOptions {
  seed: number;
  /** Stop after this many rounds or this many minutes, whichever comes first. */
  rounds: number;
  minutes: number;
  nodes: number;
  segments: number;
  dualStack: boolean;
  /** Two controller replicas with leader election (one is killed now and then). */
  ha: boolean;
  /** Killed processes restart only after the round's other operations: more happens at once. */
  overlap: boolean;
  /** Also re-register Nodes (delete and create the Node object while the agent runs on). */
  reregister: boolean;
  /** Longest wait for the cluster to converge after a round. */
  deadlineSeconds: number;
}

export const SOAK_USAGE = `usage: make soak ARGS="[--seed=N] [--minutes=N] [--rounds=N] [--nodes=N] [--segments=N] [--dual-stack] [--ha] [--overlap] [--reregister]"
  --seed=N          PRNG seed (default: from the clock; printed first, pass it again to replay a run)
  --minutes=N       stop starting rounds after N minutes (default 10)
  --rounds=N        stop after N rounds (default 1000)
  --nodes=N         nodes at the start, 2 to 12 (default 4); joins and deletes keep within one of it
  --segments=N      subnets behind a router, 1 to 4 (default 1): 2 or more put some peers behind VXLAN
  --dual-stack      IPv4 and IPv6 pod CIDRs
  --ha              two controller replicas with leader election
  --overlap         restarts of killed agents and controllers wait until the round's other operations are done
  --reregister      also delete and create Node objects while their agents run (pods started from the old
                    range's conflist must then be reported in CNIConfigured, PodAddressesOutsideCIDR)
  --deadline=S      seconds a round may take to converge before it counts as a violation (default 180)`;

export class SoakUsageError extends Error {}

function whole(flag: string, text: string, min: number, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) throw new SoakUsageError(`--${flag} must be a whole number from ${min} to ${max}, got ${text}`);
  return n;
}

/** Pure: argv (and a clock-derived default seed) → options; "help" when asked for usage. */
export function parseSoakArgs(argv: string[], defaultSeed: number): SoakOptions | "help" {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, strict: true, options: {
      seed: { type: "string" }, minutes: { type: "string", default: "10" }, rounds: { type: "string", default: "1000" },
      nodes: { type: "string", default: "4" }, segments: { type: "string", default: "1" }, deadline: { type: "string", default: "180" },
      "dual-stack": { type: "boolean", default: false }, ha: { type: "boolean", default: false }, overlap: { type: "boolean", default: false },
      reregister: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false },
    } }));
  } catch (err) {
    throw new SoakUsageError((err as Error).message);
  }
  if (values.help) return "help";
  return {
    seed: values.seed === undefined ? defaultSeed : whole("seed", values.seed, 0, 2 ** 32 - 1),
    minutes: whole("minutes", values.minutes, 1, 24 * 60),
    rounds: whole("rounds", values.rounds, 1, 1_000_000),
    nodes: whole("nodes", values.nodes, 2, 12),
    segments: whole("segments", values.segments, 1, 4),
    deadlineSeconds: whole("deadline", values.deadline, 10, 3600),
    dualStack: values["dual-stack"], ha: values.ha, overlap: values.overlap, reregister: values.reregister,
  };
}

/** The flags that replay a run: the same seed and layout (minutes and rounds only bound it). */
export function replayArgs(o: SoakOptions): string {
  return [`--seed=${o.seed}`, `--nodes=${o.nodes}`, `--segments=${o.segments}`, ...(o.dualStack ? ["--dual-stack"] : []),
    ...(o.ha ? ["--ha"] : []), ...(o.overlap ? ["--overlap"] : []), ...(o.reregister ? ["--reregister"] : [])].join(" ");
}
