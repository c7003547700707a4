import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildBundle } from "./bundle.js";

/**
 * Node flags the agent runs with, as the chart's DaemonSet command gives them. A 1 MB young generation: ≈20 MB
 * less resident memory for no measurable time. --optimize-for-size (V8 favours a small heap over speed),
 * 2 alternating runs each of bench/agent-routes.bench.ts at 4,999 NodeCIDRs: peak RSS 137.6–140.4 →
 * 120.6–121.5 MB, RSS after 50 joins 161.9–162.6 → 123.1–125.8 MB (it no longer creeps up with events); the
 * price is start → 4,999 routes 540–599 → 702–738 ms and CPU per join 17.5–18.5 → 23.5–24.5 ms. An agent runs
 * on every node for its lifetime and starts once, so the memory wins. (--heap-growing-percent and --max-lazy
 * saved less; --lite-mode and --no-opt more, at 1.7× the CPU per join.)
 */
export const AGENT_NODE_FLAGS = ["--max-semi-space-size=1", "--optimize-for-size"];
/**
 * Node flags the controller runs with (the chart's Deployment command). A 2 MB young generation: at 5,000
 * Nodes, peak RSS 258 → 178–192 MB with allocation time within run-to-run noise
 * (bench/controller-allocation.bench.ts); 1 MB saved no more.
 */
export const CONTROLLER_NODE_FLAGS = ["--max-semi-space-size=2"];

/**
 * The local cluster's controller flags. With more than one replica they elect a leader on a short lease (6 s, not
 * the chart's 15 s): a killed leader's successor takes over within seconds, which a soak can wait out.
 */
export function localControllerFlags(o: { kubeconfig: string; dualStack?: boolean; releaseCooldown?: string; replicas: number }): string[] {
  const cidrs = o.dualStack ? "10.244.0.0/16,fd00:10:244::/56" : "10.244.0.0/16";
  const election = o.replicas > 1 ? ["--leader-elect=true", "--lease-duration=6s", "--renew-deadline=4s", "--retry-period=1s"] : ["--leader-elect=false"];
  return [`--kubeconfig=${o.kubeconfig}`, `--cluster-cidr=${cidrs}`, ...election, "--metrics-address=127.0.0.1:0",
    `--release-cooldown=${o.releaseCooldown ?? "5s"}`, "--resync-period=10s"];
}

/** The metrics port an agent logged in its "agent started" line, written after byte `from` of its log. */
export function loggedMetricsPort(logFile: string, from: number): number | undefined {
  if (!existsSync(logFile)) return undefined;
  const text = readFileSync(logFile).subarray(from).toString();
  const line = text.split("\n").find((l) => l.includes('"msg":"agent started"'));
  if (!line) return undefined;
  const port = (JSON.parse(line) as { metricsPort?: number }).metricsPort;
  return typeof port === "number" && port > 0 ? port : undefined;
}

/**
 * argv that starts the podnet CLI as production runs it: the single-file bundle. From TypeScript sources
 * (tests, make demo) the bundle is built fresh into `dir`; from a bundle, the running file is reused.
 */
export async function podnetCliArgv(dir: string): Promise<string[]> {
  const self = fileURLToPath(import.meta.url);
  const entry = self.endsWith(".ts") ? await buildBundle(join(dir, "podnet.mjs")) : process.argv[1]!;
  // Warm the compile cache, as the image does at build time; `help` loads the whole bundle and exits. V8 keys
  // the cache by its flags, so once per flag set the processes start with.
  for (const flags of [CONTROLLER_NODE_FLAGS, AGENT_NODE_FLAGS]) {
    spawnSync(process.execPath, [...flags, entry, "help"], { env: { ...process.env, ...podnetCliEnv(dir) }, stdio: "ignore", timeout: 30_000 });
  }
  return [process.execPath, entry];
}

/**
 * Environment for podnet processes: V8's compile cache (NODE_COMPILE_CACHE) next to the bundle, so a
 * process loads compiled code instead of parsing 3.3 MB of JavaScript (≈45 ms of each start here). The image
 * bakes the same cache in (Dockerfile). The caller's own PODNET_* settings are left out (undefined: not passed):
 * each process gets its flags from the local cluster, and a PODNET_CLEAR_NETWORK_UNAVAILABLE=false left in a
 * shell must not change what the demo shows.
 */
export const podnetCliEnv = (dir: string): Record<string, string | undefined> => ({
  ...Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith("PODNET_")).map((k) => [k, undefined])),
  NODE_COMPILE_CACHE: join(dir, "compile-cache"),
  MALLOC_ARENA_MAX: "2", // as the image (Dockerfile): one malloc arena, not one per thread
});

/** CPU seconds (user + system) a process has used so far, from /proc. */
export function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** A memory field of /proc/<pid>/status in MB, 0 once the process is gone. */
function statusMb(pid: number | undefined, field: "VmHWM" | "VmRSS"): number {
  try {
    return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}
/** Peak resident memory (VmHWM) of a process in MB, 0 once it is gone. */
export const peakRssMb = (pid: number | undefined) => statusMb(pid, "VmHWM");
/** Resident memory now (VmRSS) of a process in MB, 0 once it is gone. */
export const rssMb = (pid: number | undefined) => statusMb(pid, "VmRSS");
