import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isRoot, runNamespaces } from "../../src/localcluster/netbed.js";
import { startProcess, stopProcess, tailFile, waitFor, type ManagedProcess } from "../../src/localcluster/processes.js";
import { controlPlaneBaseDir } from "../../src/localcluster/control-plane.js";

/**
 * `podnet demo` as a user runs it, stopped the ways a user stops it: Ctrl-C (or closing the terminal) tears everything down itself;
 * after a SIGKILL (no cleanup code runs) its servers and agents die with it and `podnet demo-clean` removes
 * the namespaces and run dir left behind.
 */
const repo = join(import.meta.dirname, "../..");
let dir: string;
const started: ManagedProcess[] = [];

const namespacesOf = (pid: number) => runNamespaces().filter((n) => n.pid === pid).map((n) => n.name);
/**
 * Processes whose command line names the run dir or one of the run's namespaces: the apiserver, etcd, the
 * controller, the agents and each agent's `ip -n <node> monitor`.
 */
const processesUsing = (runDir: string, namespaces: string[] = []) => readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
  try {
    const cmdline = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
    return cmdline.some((arg) => arg.includes(runDir) || namespaces.includes(arg));
  } catch { return false; }
});
/** The control plane's run dirs this process owns (written before its first server starts). */
const runDirsOf = (pid: number) => readdirSync(controlPlaneBaseDir()).filter((n) => n.startsWith("podnet-cp-")).map((n) => join(controlPlaneBaseDir(), n))
  .filter((d) => { try { return readFileSync(join(d, "owner.pid"), "utf8").startsWith(`${pid}.`); } catch { return false; } });

/** A demo kept running on 2 nodes, and its control plane's run dir (from the KUBECONFIG it prints). */
async function keptDemo(name: string): Promise<{ demo: ManagedProcess; runDir: string }> {
  // As `make demo` starts it: from the sources, in one process (its pid names the run's namespaces).
  const demo = startProcess(name, process.execPath, ["--import", "tsx", join(repo, "src/cli/main.ts"), "demo", "--keep", "--nodes=2", "--segments=1"], join(dir, `${name}.log`));
  started.push(demo);
  const kubeconfig = await waitFor("the demo to keep running", async () => {
    if (demo.child.exitCode !== null) throw new Error(`demo exited ${demo.child.exitCode}:\n${tailFile(demo.logFile)}`);
    return /export KUBECONFIG=(\S+)/.exec(readFileSync(demo.logFile, "utf8"))?.[1];
  }, 120_000, 200);
  return { demo, runDir: dirname(kubeconfig) };
}

describe.skipIf(!isRoot())("make demo stopped by Ctrl-C or killed (rung 4)", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "podnet-demo-"));
  });
  afterAll(async () => {
    for (const p of started) await stopProcess(p);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // Ctrl-C twice: a wrapper relaying it. SIGHUP: the terminal of a --keep session closed.
  it.each([
    { what: "Ctrl-C tears it down, also when it comes twice (a wrapper relaying it)", tag: "demo-int", signals: ["SIGINT", "SIGINT"] as const, code: 130 },
    { what: "closing its terminal (SIGHUP) during --keep tears it down like Ctrl-C, exit 129", tag: "demo-hup", signals: ["SIGHUP"] as const, code: 129 },
  ])("$what: no namespace, process or run dir left", async ({ tag, signals, code }) => {
    const { demo, runDir } = await keptDemo(tag);
    const pid = demo.child.pid!;
    const namespaces = namespacesOf(pid);
    expect(namespaces.length).toBeGreaterThan(0);
    for (const [i, signal] of signals.entries()) {
      if (i) await new Promise((r) => setTimeout(r, 20));
      demo.child.kill(signal);
    }
    expect(await demo.exited).toBe(code);
    expect(readFileSync(demo.logFile, "utf8")).toMatch(/done: no namespaces, processes or files left behind/);
    expect(processesUsing(runDir, namespaces)).toEqual([]);
    expect(namespacesOf(pid)).toEqual([]);
    expect(existsSync(runDir)).toBe(false);
    expect(processesUsing(runDir)).toEqual([]);
  });

  it("Ctrl-C while the cluster comes up (to the whole process group, as a terminal sends it) tears down what was started", async () => {
    // Its own process group, as a shell gives a job: the servers and agents get the Ctrl-C too.
    const demo = startProcess("demo-early", process.execPath, ["--import", "tsx", join(repo, "src/cli/main.ts"), "demo", "--nodes=2", "--segments=1"], join(dir, "demo-early.log"), { detached: true });
    started.push(demo);
    const pid = demo.child.pid!;
    await waitFor("the control plane up", async () => (/control plane up/.test(readFileSync(demo.logFile, "utf8")) ? true : undefined), 120_000, 50);
    const runDirs = runDirsOf(pid);
    expect(runDirs).toHaveLength(1);
    process.kill(-pid, "SIGINT");
    expect(await demo.exited).toBe(130);
    expect(namespacesOf(pid)).toEqual([]);
    expect(existsSync(runDirs[0]!)).toBe(false);
    // Its children go by their parent-death signal or when their pipe closes (the bundler's service), a moment after.
    await waitFor("the demo's processes gone", async () => (processesUsing(runDirs[0]!).length === 0 ? true : undefined), 15_000);
  });

  it("after a SIGKILL its servers, agents and their ip monitors die with it, and demo-clean removes its namespaces and run dir", async () => {
    const { demo, runDir } = await keptDemo("demo-kill");
    const pid = demo.child.pid!;
    const namespaces = namespacesOf(pid);
    demo.child.kill("SIGKILL");
    await demo.exited;
    await waitFor("servers and agents gone with the demo", async () => (processesUsing(runDir, namespaces).length === 0 ? true : undefined), 15_000);
    const leftovers = namespacesOf(pid);
    expect(leftovers.length).toBeGreaterThan(0); // what demo-clean is for
    expect(existsSync(runDir)).toBe(true);
    const out = execFileSync(process.execPath, ["--import", "tsx", join(repo, "src/cli/main.ts"), "demo-clean"], { encoding: "utf8" });
    // Test files in other workers sweep what dead runs left when they build their namespaces or control planes,
    // so some (rarely all) of these may be gone before demo-clean looks: it removes what is still there.
    const removed = Number(/removed (\d+) leftover namespaces/.exec(out)?.[1] ?? 0);
    expect(removed).toBeLessThanOrEqual(leftovers.length);
    expect(out).toMatch(/removed \d+ leftover|nothing left over/);
    expect(namespacesOf(pid)).toEqual([]);
    expect(existsSync(runDir)).toBe(false);
  });
});
