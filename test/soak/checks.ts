import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { LocalCluster } from "../../src/localcluster/cluster.js";
import { RUN_PREFIX } from "../../src/localcluster/netbed.js";
import { ping } from "../../src/localcluster/udp-probe.js";
import { clusterViolations, pingablePods, recordSetIssues, type FamilyName } from "./invariants.js";
import { unexplainedErrors } from "./log-lines.js";
import { observeCluster, recordViews } from "./observe.js";
import type { Prng } from "./prng.js";

/** Shell: the soak's waiting and probing around the pure checks. */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Convergence { ms: number; problems: string[] }

/** Poll the invariants until they all hold or the deadline passes (or a process died: no use waiting then). */
export async function converge(cluster: LocalCluster, families: FamilyName[], deadlineMs: number): Promise<Convergence> {
  const start = Date.now();
  let problems: string[] = [];
  while (Date.now() - start < deadlineMs) {
    try { problems = clusterViolations(await observeCluster(cluster, families)); } catch (err) { problems = [`observing failed: ${String(err)}`]; }
    if (problems.length === 0 || problems.some((p) => p.startsWith("process exited"))) break;
    await sleep(250);
  }
  return { ms: Date.now() - start, problems };
}

/** Up to `pairs` random pod pairs (pingable pods only) ping each other's every address; a miss is retried once. */
export async function pingSample(cluster: LocalCluster, families: FamilyName[], rng: Prng, pairs = 6): Promise<string[]> {
  const names = new Set(pingablePods(await observeCluster(cluster, families)).map((p) => p.name));
  const pods = cluster.pods.filter((p) => names.has(p.name));
  if (pods.length < 2) return [];
  const out: string[] = [];
  for (let i = 0; i < pairs; i++) {
    const from = rng.pick(pods);
    const to = rng.pick(pods.filter((p) => p !== from));
    for (const ip of to.ips) if (!ping(from.ns, ip) && !ping(from.ns, ip)) out.push(`ping ${from.name} -> ${to.name} ${ip} failed`);
  }
  return out;
}

/** Every 250 ms until stopped: a CIDR held twice, or two Allocated records of one node and family, between checks. */
export function startSampler(cluster: LocalCluster, onIssue: (issue: string) => void): () => void {
  let running = true;
  const seen = new Set<string>();
  void (async () => {
    while (running) {
      try {
        for (const issue of recordSetIssues(await recordViews(cluster))) if (!seen.has(issue)) { seen.add(issue); onIssue(issue); }
      } catch { /* the apiserver is down (bounced on purpose) */ }
      await sleep(250);
    }
  })();
  return () => { running = false; };
}

/** podnet's log files, read from where the last call stopped: error lines the soak's faults do not explain. */
export function logScanner(dir: string): () => string[] {
  const offsets = new Map<string, number>();
  return () => readdirSync(dir).filter((f) => /^(controller|agent-).*\.log$/.test(f)).flatMap((f) => {
    const file = join(dir, f);
    const from = offsets.get(file) ?? 0;
    const size = statSync(file).size;
    offsets.set(file, size);
    if (size <= from) return [];
    return unexplainedErrors(readFileSync(file).subarray(from, size).toString()).map((e) => `${f}: ${e}`);
  });
}

/** What a finished run left behind: namespaces of this run, its run dir, processes naming it. */
export function leftovers(runDir: string): string[] {
  const namespaces = execFileSync("ip", ["netns", "list"], { encoding: "utf8" }).split("\n").filter((l) => l.startsWith(`${RUN_PREFIX}-`));
  const processes = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" }).split("\n").filter((l) => l.includes(runDir) && !l.includes(" ps "));
  return [
    ...(namespaces.length ? [`${namespaces.length} network namespaces left: ${namespaces.map((l) => l.split(" ")[0]).join(", ")}`] : []),
    ...(existsSync(runDir) ? [`run dir ${runDir} left`] : []),
    ...(processes.length ? [`${processes.length} processes left: ${processes.map((l) => l.trim().slice(0, 120)).join("; ")}`] : []),
  ];
}
