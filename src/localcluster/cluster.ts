import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { crdSources, renderCrdYaml } from "../crds/generate.js";
import { installCrds, KubeApi, podnetResource } from "../lib/k8s.js";
import type { NodeCidrObject } from "../controllers/observe.js";
import { AGENT_NODE_FLAGS, CONTROLLER_NODE_FLAGS, localControllerFlags, loggedMetricsPort, peakRssMb, podnetCliArgv, podnetCliEnv } from "./podnet-cli.js";
import { VXLAN_DEVICE } from "../node-agent/overlay-plan.js";
import { addPod, CNI_BIN_DIR, deletePod, type Pod, type PortMapping } from "./cni-exec.js";
import { startControlPlane, type ControlPlane } from "./control-plane.js";
import { kubeBin } from "./kube-bins.js";
import { createNetBed, ipJson, type BedNode, type NetBed } from "./netbed.js";
import { startProcess, stopProcess, tailFile, waitFor, type ManagedProcess } from "./processes.js";

export interface LocalClusterOptions {
  nodes: number;
  /** Subnets the nodes are spread over, joined by a router (default 1: one L2 segment, all routes direct). */
  segments?: number;
  /** The agents' --overlay (default auto). */
  overlay?: "auto" | "vxlan" | "none";
  /** The agents' --mtu for pods (default: the link's). */
  podMtu?: number;
  dualStack?: boolean;
  tag?: string;
  segment?: number;
  releaseCooldown?: string;
  resyncPeriod?: string;
  /** Controller replicas (default 1, no leader election); more elect a leader on a short lease, as an HA install does. */
  controllers?: number;
  progress?: (line: string) => void;
}

interface LocalNode {
  node: BedNode; agent?: ManagedProcess; dir: string; confDir: string;
  /** Where the running agent serves /metrics, /healthz and /readyz (on the host's loopback). */
  metricsPort?: number;
  /** performance.now() just before the Node object was created (join latency is measured from here). */
  registeredAt?: number;
}

/** PODNET_LOG_LEVEL=debug or trace reaches the cluster's podnet processes (to look into a run); else info. */
const podnetLogLevel = () => (["debug", "trace"].includes(process.env.PODNET_LOG_LEVEL ?? "") ? process.env.PODNET_LOG_LEVEL! : "info");

/**
 * podnet's main job on one machine: a real control plane, the podnet controller, and N nodes, each a
 * network namespace on a shared L2 segment with its Node object and its own agent process. Agents run on
 * the host (the apiserver listens on host loopback only) and each programs its node's namespace (--netns).
 */
export class LocalCluster {
  readonly nodes = new Map<string, LocalNode>();
  readonly pods: Pod[] = [];
  /** One process per controller replica; a replica's slot keeps its latest process. */
  readonly controllers: ManagedProcess[] = [];
  /** Processes stopped on purpose: their exit is no failure. */
  private readonly stopped = new WeakSet<ManagedProcess>();
  private joined = 0;
  /** Set when stop() begins: a node or pod added after that would outlive the teardown (a namespace, a run dir). */
  private stopping = false;
  private constructor(readonly cp: ControlPlane, readonly api: KubeApi, readonly bed: NetBed, readonly dir: string,
    private readonly cli: string[], private readonly opts: LocalClusterOptions) {}

  static async start(opts: LocalClusterOptions): Promise<LocalCluster> {
    const say = opts.progress ?? (() => undefined);
    const cp = await startControlPlane();
    say(`control plane up (etcd + kube-apiserver on ${cp.url}, ready in ${cp.startSeconds.toFixed(1)} s)`);
    const api = KubeApi.fromKubeconfig(cp.kubeconfig, "podnet-cli");
    let bed: NetBed | undefined;
    let cluster: LocalCluster | undefined;
    try {
      await installCrds(api, crdSources.map(renderCrdYaml));
      bed = createNetBed(opts.tag ?? "lc", 0, opts.segment ?? 77, opts.segments ?? 1);
      const dir = join(cp.dir, "cluster"); // inside the control plane's run dir: removed with it, swept after a crash
      mkdirSync(dir);
      cluster = new LocalCluster(cp, api, bed, dir, await podnetCliArgv(dir), opts);
      for (let replica = 0; replica < (opts.controllers ?? 1); replica++) cluster.startController(replica);
      say((opts.controllers ?? 1) > 1 ? `${opts.controllers} podnet controller replicas started (leader-elected)` : "podnet controller started");
      for (let i = 1; i <= opts.nodes; i++) await cluster.addNode(`node-${i}`);
      const where = (opts.segments ?? 1) > 1 ? `spread over ${opts.segments} subnets behind a router` : "on one L2 segment";
      say(`${opts.nodes} node namespaces ${where}, each with a Node object and an agent`);
      return cluster;
    } catch (err) {
      // A node that failed to come up leaves the controller and earlier agents running: stop them with the rest.
      // The start's own error is the one to see: a failure while stopping is only logged under it.
      if (cluster) await cluster.stop().catch((stopErr: unknown) => console.error(`stopping the half-started cluster also failed: ${String(stopErr)}`));
      else {
        bed?.destroy();
        await cp.stop();
      }
      throw err;
    }
  }

  get kubeconfig(): string { return this.cp.kubeconfig; }

  /** Peak resident memory (VmHWM) of the controller and of each agent process, in MB. */
  peakRssMb(): { controller: number; agents: number[] } {
    return { controller: peakRssMb(this.controller?.child.pid), agents: [...this.nodes.values()].map((n) => peakRssMb(n.agent?.child.pid)) };
  }

  /** The first replica's controller (the only one unless `controllers` asks for more). */
  get controller(): ManagedProcess | undefined { return this.controllers[0]; }

  startController(replica = 0): void {
    const name = replica ? `podnet-controller-${replica + 1}` : "podnet-controller";
    const flags = localControllerFlags({ kubeconfig: this.kubeconfig, dualStack: this.opts.dualStack, releaseCooldown: this.opts.releaseCooldown, replicas: this.opts.controllers ?? 1 });
    this.controllers[replica] = startProcess(name, this.cli[0]!, [...CONTROLLER_NODE_FLAGS, ...this.cli.slice(1), "controller", ...flags],
      join(this.cp.dir, `${name.replace("podnet-", "")}.log`), { env: { ...podnetCliEnv(this.dir), PODNET_LOG_LEVEL: podnetLogLevel() } });
  }

  async restartController(replica = 0): Promise<void> {
    const running = this.controllers[replica];
    if (running) await this.stopAsked(running);
    this.startController(replica);
  }

  /** Signal a podnet process as a crash or an operator would (its exit is then no failure); resolves with how it ended. */
  async signal(p: ManagedProcess, signal: NodeJS.Signals): Promise<number | string | null> {
    this.stopped.add(p);
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
    await p.exited;
    return p.child.exitCode ?? p.child.signalCode;
  }

  /** A new node: namespace on the segment, Node object (as kubelet registers it), its agent. */
  async addNode(name: string): Promise<BedNode> {
    this.refuseWhenStopping(`node ${name}`);
    const node = this.bed.addNode(name, this.joined++); // round-robin over the subnets
    const dir = join(this.dir, name);
    const confDir = join(dir, "net.d");
    mkdirSync(confDir, { recursive: true });
    const entry: LocalNode = { node, dir, confDir };
    this.nodes.set(name, entry);
    // On a real cluster the new node's agent starts on that node's own CPU. Here every process shares two
    // cores, so the agent is booted before the Node exists: its start-up does not slow the other agents'
    // reaction to the join, which is what join latency measures.
    await this.startAgent(name);
    await this.registerNode(name);
    return node;
  }

  /**
   * Create a node's Node object as kubelet registers it: with its status in one request. On a cloud with a route
   * controller (GCE) that status says NetworkUnavailable until the network plugin clears it. Called again after
   * the Node was deleted, it re-registers the node under a new uid while the agent runs on.
   */
  async registerNode(name: string): Promise<void> {
    const entry = this.nodes.get(name)!;
    const addresses = [{ type: "InternalIP", address: entry.node.ip }, ...(this.opts.dualStack ? [{ type: "InternalIP", address: entry.node.ip6 }] : [])];
    entry.registeredAt = performance.now();
    const networkUnavailable = { type: "NetworkUnavailable", status: "True", reason: "NoRouteCreated", message: "Node created without a route", lastTransitionTime: new Date() };
    await this.api.core.createNode({ body: { metadata: { name, labels: { "kubernetes.io/hostname": name } }, status: { addresses, conditions: [networkUnavailable] } } });
  }

  /** Start (or restart) a node's agent and wait until it answers /readyz (its first sync is done). */
  async startAgent(name: string): Promise<void> {
    const n = this.nodes.get(name)!;
    const logFile = join(this.cp.dir, `agent-${name}.log`);
    const logFrom = existsSync(logFile) ? statSync(logFile).size : 0; // a restarted agent appends to its log
    n.agent = startProcess(`agent-${name}`, this.cli[0]!, [...AGENT_NODE_FLAGS, ...this.cli.slice(1), "agent",
      `--kubeconfig=${this.kubeconfig}`, `--node-name=${name}`, `--netns=${n.node.ns}`, `--cni-conf-dir=${n.confDir}`,
      // Port 0: the agent binds a free port itself and logs it. A port picked here could be taken by another
      // process before the agent binds it, which made the agent exit.
      `--cni-bin-dir=${CNI_BIN_DIR}`, `--ipam-data-dir=${join(n.dir, "ipam")}`, "--metrics-address=127.0.0.1:0", `--lock-dir=${join(this.dir, "locks")}`,
      `--resync-period=${this.opts.resyncPeriod ?? "5s"}`, `--overlay=${this.opts.overlay ?? "auto"}`,
      ...(this.opts.podMtu ? [`--mtu=${this.opts.podMtu}`] : [])], logFile,
      { env: { ...podnetCliEnv(this.dir), PODNET_LOG_LEVEL: podnetLogLevel() } });
    const agent = n.agent;
    let port: number | undefined;
    await waitFor(`agent of ${name} ready`, async () => {
      if (agent.child.exitCode !== null) throw new Error(`agent of ${name} exited ${agent.child.exitCode}: ${tailFile(agent.logFile, 10)}`);
      port ??= loggedMetricsPort(logFile, logFrom);
      return port !== undefined && (await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.ok, () => false)) ? true : undefined;
    }, 30_000, 50);
    n.metricsPort = port;
  }

  async stopAgent(name: string): Promise<void> {
    const n = this.nodes.get(name);
    if (n?.agent) await this.stopAsked(n.agent);
  }

  private async stopAsked(p: ManagedProcess): Promise<void> {
    this.stopped.add(p);
    await stopProcess(p);
  }

  async removeNode(name: string): Promise<void> {
    const n = this.nodes.get(name);
    if (!n) return;
    for (const pod of this.pods.filter((p) => p.nodeNs === n.node.ns)) this.deletePod(pod);
    await this.api.core.deleteNode({ name });
    await this.stopAgent(name);
    this.bed.removeNode(name);
    this.nodes.delete(name);
    // Its conflist and host-local state: a node that joins again under the name starts clean, and a long churn
    // does not grow the run dir by one directory per name (a soak left x-1 … x-40 behind). The agent's log, in the
    // run dir itself, stays for reading after the node has gone.
    rmSync(n.dir, { recursive: true, force: true });
  }

  addPod(nodeName: string, podName: string, portMappings: PortMapping[] = []): Pod {
    this.refuseWhenStopping(`pod ${podName}`);
    const n = this.nodes.get(nodeName)!;
    const pod = addPod(n.node.ns, n.confDir, podName, portMappings);
    this.pods.push(pod);
    return pod;
  }

  deletePod(pod: Pod): void {
    deletePod(pod);
    this.pods.splice(this.pods.indexOf(pod), 1);
  }

  ownRoutes(nodeName: string): string[] {
    const ns = this.nodes.get(nodeName)!.node.ns;
    return [4, 6].flatMap((f) => ipJson<Array<{ dst: string; gateway: string; dev: string }>>(ns, `-${f}`, "route", "show", "proto", "249")
      .map((r) => `${r.dst} via ${r.gateway}${r.dev === VXLAN_DEVICE ? " (vxlan)" : ""}`)).sort();
  }

  async nodeCidrs(): Promise<NodeCidrObject[]> {
    return ((await this.api.custom.listClusterCustomObject({ ...podnetResource("nodecidrs") })) as { items: NodeCidrObject[] }).items;
  }

  /**
   * Every node has its CIDR(s) allocated, its agent reports Ready, and its kernel holds exactly the routes
   * to every other node's CIDR (compared with the API state, so stale routes or a stale Ready do not count).
   */
  async waitReady(timeoutMs = 60_000): Promise<void> {
    let missing = "";
    let dead: string | undefined;
    try {
      await waitFor("all NodeCIDRs Ready and routes in place", async () => {
        dead = this.exitedUnasked(); // no use waiting out the timeout for a process that is gone
        if (dead) return true;
        missing = await this.notReady();
        return missing ? undefined : true;
      }, timeoutMs, 200);
    } catch (err) {
      throw new Error(`${(err as Error).message}; still missing: ${missing}`, { cause: err });
    }
    if (dead) throw new Error(dead);
  }

  /** What keeps the cluster from being ready, in words; "" when it is ready. */
  private async notReady(): Promise<string> {
    const families = this.opts.dualStack ? 2 : 1;
    const records = (await this.nodeCidrs()).filter((r) => r.status?.phase === "Allocated" && this.nodes.has(r.spec.nodeName));
    if (records.length !== this.nodes.size * families) {
      const have = new Set(records.map((r) => r.spec.nodeName));
      return `allocated NodeCIDRs ${records.length}/${this.nodes.size * families} (none yet for ${[...this.nodes.keys()].filter((n) => !have.has(n)).join(", ")})`;
    }
    const unready = records.filter((r) => !r.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"));
    if (unready.length) {
      return `not Ready: ${unready.map((r) => `${r.spec.nodeName} (${r.status?.conditions?.find((c) => c.type === "Ready")?.message ?? "no Ready condition"})`).join("; ")}`;
    }
    // What each agent reports must match too (ROUTES in kubectl get nodecidrs): one route per other record.
    const stale = records.filter((r) => r.status?.agent?.routesInstalled !== records.length - families);
    if (stale.length) return `reported route counts not current yet: ${stale.map((r) => `${r.spec.nodeName} ${r.status?.agent?.routesInstalled ?? "-"}`).join(", ")}`;
    const wrong = [...this.nodes.keys()].flatMap((n) => {
      const expected = records.filter((r) => r.spec.nodeName !== n).map((r) => r.spec.cidr).sort().join();
      const actual = this.ownRoutes(n).map((r) => r.split(" ")[0]).sort().join();
      return actual === expected ? [] : [`${n} routes [${actual}] != [${expected}]`];
    });
    if (wrong.length) return wrong.join("; ");
    const unavailable = (await this.api.core.listNode()).items
      .filter((n) => this.nodes.has(n.metadata!.name!) && n.status?.conditions?.find((c) => c.type === "NetworkUnavailable")?.status !== "False");
    return unavailable.length ? `NetworkUnavailable not cleared on ${unavailable.map((n) => n.metadata!.name).join(", ")}` : "";
  }

  kubectl(...args: string[]): string {
    return execFileSync(kubeBin("kubectl"), [`--kubeconfig=${this.kubeconfig}`, ...args], { encoding: "utf8" });
  }

  /** On a failure: the control plane's logs, then podnet's own (the controller's tail, each agent's last lines). */
  logs(): string {
    const agents = [...this.nodes.entries()].filter(([, n]) => n.agent).map(([name, n]) => `--- agent of ${name} (${n.agent!.logFile}):\n${tailFile(n.agent!.logFile, 8)}`);
    const controller = this.controllers.map((p) => `--- ${p.name} (${p.logFile}):\n${tailFile(p.logFile, 30)}`);
    return [this.cp.logs(), ...controller, ...agents].join("\n");
  }

  /** A podnet process that ended without being asked to (a bad flag, a crash): its name, exit and last lines. */
  exitedUnasked(): string | undefined {
    const all = [...this.controllers, ...[...this.nodes.values()].flatMap((n) => (n.agent ? [n.agent] : []))];
    const dead = all.find((p) => !this.stopped.has(p) && (p.child.exitCode !== null || p.child.signalCode !== null));
    return dead && `${dead.name} exited ${dead.child.exitCode ?? dead.child.signalCode}:\n${tailFile(dead.logFile, 15)}`;
  }

  private refuseWhenStopping(what: string): void {
    if (this.stopping) throw new Error(`${what} not added: the cluster is stopping`);
  }

  /** Everything goes, even when a step fails (a pod's CNI DEL): the first failure is reported afterwards. */
  async stop(): Promise<void> {
    this.stopping = true;
    const failures: unknown[] = [];
    const attempt = async (step: () => unknown) => { try { await step(); } catch (err) { failures.push(err); } };
    for (const pod of [...this.pods]) await attempt(() => this.deletePod(pod));
    for (const n of this.nodes.values()) if (n.agent) await attempt(() => this.stopAsked(n.agent!));
    for (const p of this.controllers) await attempt(() => this.stopAsked(p));
    await attempt(() => this.bed.destroy());
    await attempt(() => this.cp.stop());
    if (failures.length) throw new Error(`local cluster stopped with ${failures.length} failed step(s)`, { cause: failures[0] });
  }
}
