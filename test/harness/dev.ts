// make dev-up / make dev-down: a control plane that outlives this process, for poking with kubectl.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { crdSources, renderCrdYaml } from "../../src/crds/generate.js";
import { installCrds, KubeApi } from "../../src/lib/k8s.js";
import { startControlPlane } from "../../src/localcluster/control-plane.js";
import { kubeBinDir } from "../../src/localcluster/kube-bins.js";
import { ownerAlive, ownerToken } from "../../src/localcluster/run-owner.js";

const stateDir = join(process.env.PODNET_CACHE ?? join(homedir(), ".cache/podnet"), "dev");
const stateFile = join(stateDir, "state.json");

/**
 * The servers as pid plus start time: the state outlives a reboot, after which the same pids may name
 * unrelated processes that must not be signalled.
 */
interface DevState { dir: string; owners: string[]; kubeconfig: string }

async function up(): Promise<void> {
  if (existsSync(stateFile)) {
    const state = readState();
    if (state.owners.length && state.owners.every(ownerAlive)) { printUsage(state.kubeconfig); return; }
    await down();
  }
  const cp = await startControlPlane({ detached: true });
  await installCrds(KubeApi.fromKubeconfig(cp.kubeconfig, "podnet-cli"), crdSources.map(renderCrdYaml));
  mkdirSync(stateDir, { recursive: true });
  const state: DevState = { dir: cp.dir, owners: cp.processes.map((p) => ownerToken(p.child.pid!)), kubeconfig: cp.kubeconfig };
  writeFileSync(stateFile, JSON.stringify(state));
  console.log(`control plane ready in ${cp.startSeconds.toFixed(1)} s (logs in ${cp.dir})`);
  printUsage(cp.kubeconfig);
}

/** A state file from before owner tokens holds bare pids, which cannot be told from reused ones: none is signalled. */
const readState = (): DevState => {
  const state = JSON.parse(readFileSync(stateFile, "utf8")) as Partial<DevState>;
  return { dir: state.dir ?? "", kubeconfig: state.kubeconfig ?? "", owners: state.owners ?? [] };
};

function printUsage(kubeconfig: string): void {
  console.log(`export KUBECONFIG=${kubeconfig}\nexport PATH=${kubeBinDir()}:$PATH\nkubectl get nodecidrs,podcidrpools`);
}

async function down(): Promise<void> {
  if (!existsSync(stateFile)) { console.log("no dev control plane running"); return; }
  const state = readState();
  const running = state.owners.filter(ownerAlive);
  const pidOf = (owner: string) => Number(owner.split(".")[0]);
  for (const owner of [...running].reverse()) {
    try { process.kill(pidOf(owner), "SIGTERM"); } catch { /* already gone */ }
  }
  for (let i = 0; i < 50 && running.some(ownerAlive); i++) await new Promise((r) => setTimeout(r, 100));
  for (const owner of running) if (ownerAlive(owner)) process.kill(pidOf(owner), "SIGKILL");
  if (state.dir) rmSync(state.dir, { recursive: true, force: true });
  rmSync(stateFile, { force: true });
  console.log("dev control plane stopped");
}

const command = process.argv[2];
if (command === "up") await up();
else if (command === "down") await down();
else { console.error("usage: dev.ts up|down"); process.exit(2); }
