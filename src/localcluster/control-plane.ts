import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generatePki, type Pki } from "./certs.js";
import { kubeBin } from "./kube-bins.js";
import { freePort, startProcess, stopProcess, tailFile, type ManagedProcess } from "./processes.js";
import { isOwnerToken, ownerAlive, ownerToken } from "./run-owner.js";

export interface ControlPlane {
  dir: string;
  url: string;
  kubeconfig: string;
  pki: Pki;
  /** Seconds from starting etcd to the apiserver answering /readyz. */
  startSeconds: number;
  processes: ManagedProcess[];
  logs(): string;
  /** Stop kube-apiserver alone (etcd keeps the data): a control-plane outage, as during an upgrade. */
  stopApiserver(): Promise<void>;
  /** Start it again on its port, with its flags, and wait for /readyz. */
  startApiserver(): Promise<void>;
  stop(): Promise<void>;
}

export interface ControlPlaneOptions {
  /** Parent of the run directory; tmpfs keeps etcd fast. */
  baseDir?: string;
  detached?: boolean;
  serviceCIDR?: string;
}

function kubeconfigYaml(url: string, pki: Pki): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: podnet-test
  cluster: {server: "${url}", certificate-authority: "${pki.caCert}"}
users:
- name: podnet-admin
  user: {client-certificate: "${pki.adminCert}", client-key: "${pki.adminKey}"}
contexts:
- name: podnet-test
  context: {cluster: podnet-test, user: podnet-admin}
current-context: podnet-test
`;
}

async function startEtcd(dir: string, opts: ControlPlaneOptions): Promise<[ManagedProcess, string]> {
  const [client, peer] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${client}`;
  const etcd = startProcess("etcd", kubeBin("etcd"), [
    "--name=podnet", `--data-dir=${join(dir, "etcd")}`,
    `--listen-client-urls=${url}`, `--advertise-client-urls=${url}`,
    `--listen-peer-urls=http://127.0.0.1:${peer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
    `--initial-cluster=podnet=http://127.0.0.1:${peer}`,
    // A test cluster's data is disposable: skip fsync so 2 cores spend their time on the code under test.
    "--unsafe-no-fsync", "--log-level=warn", "--quota-backend-bytes=2147483648",
  ], join(dir, "etcd.log"), { detached: opts.detached });
  return [etcd, url];
}

function apiserverArgs(dir: string, pki: Pki, etcdUrl: string, port: number, serviceCIDR: string): string[] {
  return [
    `--etcd-servers=${etcdUrl}`, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", `--secure-port=${port}`,
    `--cert-dir=${join(dir, "apiserver-certs")}`, `--tls-cert-file=${pki.serverCert}`, `--tls-private-key-file=${pki.serverKey}`,
    `--client-ca-file=${pki.caCert}`, "--authorization-mode=Node,RBAC",
    "--service-account-issuer=https://kubernetes.default.svc", `--service-account-key-file=${pki.saPub}`,
    `--service-account-signing-key-file=${pki.saKey}`, `--service-cluster-ip-range=${serviceCIDR}`,
    "--allow-privileged=true", "--endpoint-reconciler-type=none", "--v=1",
  ];
}

async function readyz(url: string, pki: Pki): Promise<true | undefined> {
  const { request } = await import("node:https");
  const { readFileSync } = await import("node:fs");
  return new Promise((resolve) => {
    const req = request(`${url}/readyz`, {
      ca: readFileSync(pki.caCert), cert: readFileSync(pki.adminCert), key: readFileSync(pki.adminKey), timeout: 2_000,
    }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 ? true : undefined);
    });
    req.on("error", () => resolve(undefined));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

/** Where control planes keep their run dirs: memory-backed /dev/shm as root (etcd fsyncs), else the temp dir. */
export const controlPlaneBaseDir = () => (process.getuid?.() === 0 ? "/dev/shm" : tmpdir());

/**
 * Run dirs of control planes whose owning process died (crash, SIGKILL): removed on the next start and by
 * `make demo-clean`. Returns the dirs removed.
 */
export function sweepStaleRunDirs(base = controlPlaneBaseDir()): string[] {
  const swept: string[] = [];
  for (const name of readdirSync(base).filter((n) => n.startsWith("podnet-cp-"))) {
    const dir = join(base, name);
    let owner: string | undefined;
    try { owner = readFileSync(join(dir, "owner.pid"), "utf8"); } catch { /* unreadable: stale unless just made */ }
    const ageMs = Date.now() - (statSync(dir, { throwIfNoEntry: false })?.mtimeMs ?? 0);
    // A dir another run has just made has no owner.pid yet (or a half-written one): only one a minute old
    // without a readable owner is stale. An owner this code cannot read (another checkout's format) may be a
    // live run's: such a dir goes only after a day.
    const stale = owner === undefined ? ageMs > 60_000
      : !isOwnerToken(owner) ? (owner.trim() === "" ? ageMs > 60_000 : ageMs > 86_400_000)
        : !ownerAlive(owner);
    if (stale) { rmSync(dir, { recursive: true, force: true }); swept.push(dir); }
  }
  return swept;
}

/**
 * Run dirs of this process's control planes, removed when it exits however it exits short of a kill (an
 * interrupted start, an exception): its servers die with it (parent-death signal), and nothing should wait for
 * `make demo-clean`. A detached plane (make dev-up) outlives us and is not listed.
 */
const ownRunDirs = new Set<string>();
process.on("exit", () => { for (const dir of ownRunDirs) rmSync(dir, { recursive: true, force: true, maxRetries: 3 }); });

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const base = opts.baseDir ?? controlPlaneBaseDir();
  mkdirSync(base, { recursive: true });
  sweepStaleRunDirs(base);
  const dir = mkdtempSync(join(base, "podnet-cp-"));
  writeFileSync(join(dir, "owner.pid"), ownerToken(process.pid));
  if (!opts.detached) ownRunDirs.add(dir);
  const started = performance.now();
  const pki = generatePki(dir);
  // A port found free can be taken before the server binds it (parallel test files start servers and agents
  // all the time): the server then exits at once, and a fresh start with other ports is the cure.
  for (let attempt = 1; ; attempt++) {
    try {
      const plane = await startServers(dir, pki, opts);
      return { ...plane, startSeconds: (performance.now() - started) / 1000 };
    } catch (err) {
      if (!(err instanceof PortTakenError) || attempt === 3) {
        rmSync(dir, { recursive: true, force: true });
        ownRunDirs.delete(dir);
        throw err;
      }
    }
  }
}

class PortTakenError extends Error {}

async function startServers(dir: string, pki: Pki, opts: ControlPlaneOptions): Promise<Omit<ControlPlane, "startSeconds">> {
  rmSync(join(dir, "etcd"), { recursive: true, force: true });
  const [etcd, etcdUrl] = await startEtcd(dir, opts);
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  const launchApiserver = () => startProcess("kube-apiserver", kubeBin("kube-apiserver"),
    apiserverArgs(dir, pki, etcdUrl, port, opts.serviceCIDR ?? "10.96.0.0/16"), join(dir, "apiserver.log"), { detached: opts.detached });
  const apiserver = launchApiserver();
  const processes = [etcd, apiserver];
  // A detached (make dev-up) control plane outlives us: it owns its run dir, so the sweeper spares it.
  if (opts.detached) writeFileSync(join(dir, "owner.pid"), ownerToken(apiserver.child.pid!));
  const logs = () => processes.map((p) => `--- ${p.name} (${p.logFile}) ---\n${tailFile(p.logFile)}`).join("\n");
  const stopServers = async () => { for (const p of [...processes].reverse()) await stopProcess(p); };
  const stop = async () => {
    await stopServers();
    rmSync(dir, { recursive: true, force: true });
    ownRunDirs.delete(dir);
  };
  const waitReady = async () => {
    const deadline = Date.now() + 60_000;
    let lastError: unknown;
    for (;;) {
      const exited = processes.find((p) => p.child.exitCode !== null);
      if (exited || Date.now() > deadline) {
        await stopServers();
        const text = logs();
        if (exited && /address already in use/.test(text)) throw new PortTakenError(`${exited.name} could not bind its port`);
        throw new Error(`${exited ? `${exited.name} exited ${exited.child.exitCode}` : `kube-apiserver not ready after 60 s${lastError ? `: ${String(lastError)}` : ""}`}\n${text}`);
      }
      try { if (await readyz(url, pki)) return; } catch (err) { lastError = err; }
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  await waitReady();
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(kubeconfig, kubeconfigYaml(url, pki));
  const stopApiserver = async () => { await stopProcess(processes[1]!); };
  const startApiserver = async () => {
    processes[1] = launchApiserver();
    await waitReady();
  };
  return { dir, url, kubeconfig, pki, processes, logs, stopApiserver, startApiserver, stop };
}
