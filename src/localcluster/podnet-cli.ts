import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildBundle } from "./bundle.js";

/**
 * argv that starts the podnet CLI as production runs it: the single-file bundle. From TypeScript sources
 * (tests, make demo) the bundle is built fresh into `dir`; from a bundle, the running file is reused.
 */
export async function podnetCliArgv(dir: string): Promise<string[]> {
  const self = fileURLToPath(import.meta.url);
  const entry = self.endsWith(".ts") ? await buildBundle(join(dir, "podnet.mjs")) : process.argv[1]!;
  // Warm the compile cache once, as the image does at build time; `help` loads the whole bundle and exits.
  spawnSync(process.execPath, [entry, "help"], { env: { ...process.env, ...podnetCliEnv(dir) }, stdio: "ignore", timeout: 30_000 });
  return [process.execPath, entry];
}

/**
 * Environment for podnet processes: V8's compile cache (NODE_COMPILE_CACHE) next to the bundle, so a
 * process loads compiled code instead of parsing 3.6 MB of JavaScript (≈45 ms of each start here). The image
 * bakes the same cache in (Dockerfile).
 */
export const podnetCliEnv = (dir: string): Record<string, string> => ({ NODE_COMPILE_CACHE: join(dir, "compile-cache") });

/** Node flags the agent runs with, as the chart's DaemonSet sets them (NODE_OPTIONS in templates/agent.yaml). */
export const AGENT_NODE_FLAGS = ["--max-semi-space-size=1"];
/**
 * Node flags the controller runs with (NODE_OPTIONS in templates/controller.yaml). A 2 MB young generation:
 * at 5,000 Nodes, peak RSS 258 → 178–192 MB with allocation time within run-to-run noise
 * (bench/controller-allocation.bench.ts); 1 MB saved no more.
 */
export const CONTROLLER_NODE_FLAGS = ["--max-semi-space-size=2"];

/** CPU seconds (user + system) a process has used so far, from /proc. */
export function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** Peak resident memory (VmHWM) of a process in MB, 0 once it is gone. */
export function peakRssMb(pid: number | undefined): number {
  try {
    return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}
