// make dev-up / make dev-down: a control plane that outlives this process, for poking with kubectl.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { crdSources, renderCrdYaml } from "../../src/crds/generate.js";
import { installCrds, KubeApi } from "../../src/lib/k8s.js";
import { startControlPlane } from "../../src/localcluster/control-plane.js";
import { kubeBinDir } from "../../src/localcluster/kube-bins.js";

const stateDir = join(process.env.PODNET_CACHE ?? join(homedir(), ".cache/podnet"), "dev");
const stateFile = join(stateDir, "state.json");

interface DevState { dir: string; pids: number[]; kubeconfig: string }

async function up(): Promise<void> {
  if (existsSync(stateFile)) {
    const state = JSON.parse(readFileSync(stateFile, "utf8")) as DevState;
    if (state.pids.every(alive)) { printUsage(state.kubeconfig); return; }
    await down();
  }
  const cp = await startControlPlane({ detached: true });
  await installCrds(KubeApi.fromKubeconfig(cp.kubeconfig, "podnet-cli"), crdSources.map(renderCrdYaml));
  mkdirSync(stateDir, { recursive: true });
  const state: DevState = { dir: cp.dir, pids: cp.processes.map((p) => p.child.pid!), kubeconfig: cp.kubeconfig };
  writeFileSync(stateFile, JSON.stringify(state));
  console.log(`control plane ready in ${cp.startSeconds.toFixed(1)} s (logs in ${cp.dir})`);
  printUsage(cp.kubeconfig);
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

function printUsage(kubeconfig: string): void {
  console.log(`export KUBECONFIG=${kubeconfig}\nexport PATH=${kubeBinDir()}:$PATH\nkubectl get nodecidrs,podcidrpools`);
}

async function down(): Promise<void> {
  if (!existsSync(stateFile)) { console.log("no dev control plane running"); return; }
  const state = JSON.parse(readFileSync(stateFile, "utf8")) as DevState;
  for (const pid of [...state.pids].reverse()) {
    try { process.kill(pid, "SIGTERM"); } catch { /* already gone */ }
  }
  for (let i = 0; i < 50 && state.pids.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
  for (const pid of state.pids) if (alive(pid)) process.kill(pid, "SIGKILL");
  rmSync(state.dir, { recursive: true, force: true });
  rmSync(stateFile, { force: true });
  console.log("dev control plane stopped");
}

const command = process.argv[2];
if (command === "up") await up();
else if (command === "down") await down();
else { console.error("usage: dev.ts up|down"); process.exit(2); }
