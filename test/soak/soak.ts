/**
 * `make soak`: the local cluster under seeded chaos. Each round applies 1–3 random operations (nodes join, leave
 * and rejoin under the same name; agents and controllers are killed and restarted; the apiserver goes away for a
 * few seconds; pods come and go), then waits for every invariant to hold again (invariants.ts) and pings a sample
 * of pods. A sampler watches the NodeCIDR list every 250 ms for a CIDR held twice. The seed is printed first:
 * the same seed and layout replay the same operations. Exit 1 on any violation, 2 on a usage error.
 */
import { LocalCluster } from "../../src/localcluster/cluster.js";
import { RUN_PREFIX } from "../../src/localcluster/netbed.js";
import { applyOperation, type Restart } from "./act.js";
import { converge, leftovers, logScanner, pingSample, startSampler } from "./checks.js";
import type { FamilyName } from "./invariants.js";
import { chooseOperation, describeOperation, operationsThisRound, type ClusterShape, type SoakModes } from "./operation-plan.js";
import { seededPrng, type Prng } from "./prng.js";
import { parseSoakArgs, replayArgs, SOAK_USAGE, SoakUsageError, type SoakOptions } from "./soak-args.js";
import { summarize, summaryLine, type RoundResult } from "./summary.js";

const started = Date.now();
const say = (line: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The run's state the operations and the summary share. */
interface Run {
  cluster: LocalCluster; options: SoakOptions; modes: SoakModes; rng: Prng; families: FamilyName[];
  joined: number; podsMade: number; history: string[]; results: RoundResult[]; sampled: string[];
  scanLogs: () => string[]; stopping: () => boolean;
}

const shapeOf = (run: Run): ClusterShape => ({
  nodes: [...run.cluster.nodes.keys()], pods: run.cluster.pods.map((p) => p.name), controllers: run.cluster.controllers.length,
  startNodes: run.options.nodes, joinedSoFar: run.joined, podsSoFar: run.podsMade,
});

/** One round: operations, deferred restarts, convergence, pings, log errors. Returns false when the run should end. */
async function playRound(run: Run, round: number): Promise<boolean> {
  const { cluster, rng, modes } = run;
  const count = operationsThisRound(rng, modes);
  const said: string[] = [];
  const violations: string[] = [];
  const restarts: Restart[] = [];
  const kinds: RoundResult["operations"] = [];
  for (let i = 0; i < count && !run.stopping(); i++) {
    const op = chooseOperation(rng, shapeOf(run), modes);
    if (op.kind === "join") run.joined++;
    if (op.kind === "podAdd") run.podsMade++;
    kinds.push(op.kind);
    run.history.push(`r${round} ${describeOperation(op)}`);
    const outcome = await applyOperation(cluster, op, modes.overlap, restarts);
    said.push(`${describeOperation(op)}${outcome.note ? ` (${outcome.note})` : ""}`);
    violations.push(...outcome.violations);
  }
  if (restarts.length) {
    await sleep(rng.int(3000));
    for (const restart of restarts) await restart();
  }
  if (run.stopping()) return false;
  const deadlineMs = run.options.deadlineSeconds * 1000;
  const { ms, problems } = await converge(cluster, run.families, deadlineMs);
  violations.push(...problems);
  if (!problems.length) violations.push(...(await pingSample(cluster, run.families, rng)));
  violations.push(...run.scanLogs());
  run.results.push({ round, operations: kinds, convergeMs: ms, violations });
  say(`round ${round}: ${said.join("; ")} — ${problems.length ? `NOT converged after ${(ms / 1000).toFixed(1)} s` : `converged in ${(ms / 1000).toFixed(1)} s`}`
    + (violations.length ? `, ${violations.length} violation(s):` : ""));
  if (!violations.length) return true;
  for (const v of violations) console.log(`    ${v}`);
  console.log(`    last operations: ${run.history.slice(-8).join("; ")}`);
  if (problems.some((p) => p.startsWith("process exited"))) return false;
  if (!problems.length) return true;
  // Not converged: one more deadline to recover, else the rest of the run would only repeat the same finding.
  const again = await converge(cluster, run.families, deadlineMs);
  say(again.problems.length ? `still not converged ${(again.ms / 1000).toFixed(1)} s later: ending the run` : `converged ${(again.ms / 1000).toFixed(1)} s later`);
  return again.problems.length === 0;
}

/** The cluster once it is up, whether a signal asked to stop, and the one teardown both paths share. */
interface Live { cluster?: LocalCluster; stopping: boolean; stop(): Promise<void> }

async function soak(options: SoakOptions, live: Live): Promise<number> {
  const families: FamilyName[] = options.dualStack ? ["IPv4", "IPv6"] : ["IPv4"];
  const cluster = live.cluster = await LocalCluster.start({
    nodes: options.nodes, segments: options.segments, dualStack: options.dualStack, controllers: options.ha ? 2 : 1,
    tag: "soak", segment: 93, releaseCooldown: "3s", resyncPeriod: "2s", progress: say,
  });
  const run: Run = {
    cluster, options, families, rng: seededPrng(options.seed), modes: { overlap: options.overlap, reregister: options.reregister },
    joined: 0, podsMade: 0, history: [], results: [], sampled: [], scanLogs: logScanner(cluster.cp.dir), stopping: () => live.stopping,
  };
  const stopSampler = startSampler(cluster, (issue) => { run.sampled.push(issue); say(`SAMPLED ISSUE (round ${run.results.length + 1}): ${issue}`); });
  const setupProblems: string[] = [];
  try {
    const first = await converge(cluster, families, options.deadlineSeconds * 1000);
    setupProblems.push(...first.problems.map((p) => `initial convergence: ${p}`));
    say(`initial convergence in ${(first.ms / 1000).toFixed(1)} s${first.problems.length ? `, NOT converged:\n    ${first.problems.join("\n    ")}` : ""}`);
    if (!first.problems.length) for (const node of cluster.nodes.keys()) cluster.addPod(node, `p${++run.podsMade}`);
    for (let round = 1; !setupProblems.length && round <= options.rounds && Date.now() - started < options.minutes * 60_000 && !live.stopping; round++) {
      if (!(await playRound(run, round))) break;
    }
  } finally {
    stopSampler();
  }
  const runDir = cluster.cp.dir;
  await live.stop();
  const left = leftovers(runDir);
  for (const l of left) say(`LEFT BEHIND: ${l}`);
  if (!left.length) say(`torn down: no ${RUN_PREFIX}-* namespaces, no ${runDir}, no processes naming it`);
  const summary = summarize(run.results, run.sampled.length, setupProblems.length + left.length);
  say(summaryLine(options.seed, summary));
  if (summary.violations) say(`replay: make soak ARGS="${replayArgs(options)}"`);
  return summary.violations ? 1 : 0;
}

async function main(): Promise<void> {
  let options;
  try {
    options = parseSoakArgs(process.argv.slice(2), Date.now() % 1_000_000);
  } catch (err) {
    if (!(err instanceof SoakUsageError)) throw err;
    console.error(`${err.message}\n${SOAK_USAGE}`);
    process.exit(2);
  }
  if (options === "help") { console.log(SOAK_USAGE); return; }
  if (process.getuid?.() !== 0) throw new Error("the soak creates network namespaces: run it as root");
  console.log(`seed ${options.seed} (replay: make soak ARGS="${replayArgs(options)}")`);
  say(`${options.nodes} nodes, ${options.segments} segment(s)${options.dualStack ? ", dual-stack" : ""}${options.ha ? ", 2 controller replicas" : ""}`
    + `${options.overlap ? ", overlapping restarts" : ""}${options.reregister ? ", re-registrations" : ""}; up to ${options.rounds} rounds or ${options.minutes} min; run prefix ${RUN_PREFIX}`);
  // Kept, not once: a second Ctrl-C (make relays it, a person presses twice) must still end in the teardown.
  let teardown: Promise<void> | undefined;
  const live: Live = {
    stopping: false,
    stop: () => (teardown ??= live.cluster?.stop().catch((err: unknown) => say(`teardown failed: ${String(err)}`)) ?? Promise.resolve()),
  };
  const onSignal = (signal: string, code: number) => {
    say(`${signal}: tearing down`);
    live.stopping = true;
    // Still coming up: exiting takes it all along (namespaces and run dir on exit, processes by parent-death signal).
    if (!live.cluster) process.exit(code);
    void live.stop().finally(() => process.exit(code));
  };
  process.on("SIGINT", () => onSignal("SIGINT", 130));
  process.on("SIGTERM", () => onSignal("SIGTERM", 143));
  process.on("SIGHUP", () => onSignal("SIGHUP", 129));
  try {
    process.exitCode = await soak(options, live);
  } catch (err) {
    if (live.stopping) return; // the signal handler tears down and exits
    say(`FAILED: ${(err as Error).stack ?? String(err)}`);
    await live.stop();
    process.exitCode = 1;
  }
}

await main();
