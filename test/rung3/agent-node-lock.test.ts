import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CNI_BIN_DIR } from "../../src/localcluster/cni-exec.js";
import { createNetBed, ipIn, ipJson, isRoot, type BedNode, type NetBed } from "../../src/localcluster/netbed.js";
import { AGENT_NODE_FLAGS, podnetCliArgv, podnetCliEnv } from "../../src/localcluster/podnet-cli.js";
import { freePort, startProcess, stopProcess, tailFile, waitFor, type ManagedProcess } from "../../src/localcluster/processes.js";
import { putNodeCidr } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { processesWithOpen } from "../harness/node-reads.js";

/**
 * One agent per node, and no cleanup beside one (rung 3: the bundle as production runs it, agent processes
 * programming a node namespace). Without the node lock, a second agent on another metrics port ran beside the
 * first and rewrote its work, and `podnet agent cleanup` said "nothing of podnet's left" while the running
 * agent put everything back within a second.
 */
const fx = useControlPlane();
let bed: NetBed;
let dir: string;
let cli: string[];
const agents: ManagedProcess[] = [];

async function startAgentProcess(node: BedNode, name: string, extra: string[] = []): Promise<ManagedProcess & { port: number }> {
  const port = await freePort();
  const agent = startProcess(name, cli[0]!, [...AGENT_NODE_FLAGS, ...cli.slice(1), "agent", `--kubeconfig=${fx.cp.kubeconfig}`,
    `--node-name=${node.name}`, `--netns=${node.ns}`, `--cni-conf-dir=${join(dir, "net.d")}`, `--cni-bin-dir=${CNI_BIN_DIR}`,
    `--ipam-data-dir=${join(dir, "ipam")}`, `--metrics-address=127.0.0.1:${port}`, "--resync-period=2s", `--lock-dir=${join(dir, "locks")}`, ...extra],
  join(dir, `${name}.log`), { env: podnetCliEnv(dir) });
  agents.push(agent);
  return { ...agent, port };
}

const cleanupArgs = (node: BedNode, ...extra: string[]) => [...cli.slice(1), "agent", "cleanup", `--netns=${node.ns}`, `--cni-conf-dir=${join(dir, "net.d")}`, `--lock-dir=${join(dir, "locks")}`, ...extra];
function cleanup(node: BedNode, extra: string[] = [], env: Record<string, string> = {}) {
  const r = spawnSync(cli[0]!, cleanupArgs(node, ...extra), { env: { ...process.env, ...podnetCliEnv(dir), ...env }, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, said: r.stdout + r.stderr };
}

/** podnet's marks on the node, in a line a failed expectation prints whole. */
function state(node: BedNode): string {
  const routes = ipJson<unknown[]>(node.ns, "route", "show", "proto", "249").length;
  const nexthops = ipJson<unknown[]>(node.ns, "nexthop", "show", "proto", "249").length;
  const links = ipJson<Array<{ ifname: string }>>(node.ns, "link", "show").map((l) => l.ifname);
  const nft = spawnSync("ip", ["netns", "exec", node.ns, "nft", "list", "table", "inet", "podnet"]).status === 0;
  return `routes=${routes} nexthops=${nexthops} vxlan=${links.includes("podnet.vxlan")} bridge=${links.includes("podnet0")} nft=${nft} conflist=${existsSync(join(dir, "net.d", "10-podnet.conflist"))}`;
}
const programmed = "routes=2 nexthops=2 vxlan=true bridge=false nft=true conflist=true";
const clean = "routes=0 nexthops=0 vxlan=false bridge=false nft=false conflist=false";

/** Everything the kernel says changed in the node's namespace (routes, nexthops, links, nft) while it runs. */
function watchNode(node: BedNode): { lines: string[]; stop(): void } {
  const lines: string[] = [];
  const watchers: ChildProcess[] = [
    spawn("ip", ["-n", node.ns, "monitor", "route", "nexthop", "link"], { stdio: ["ignore", "pipe", "ignore"] }),
    spawn("ip", ["netns", "exec", node.ns, "nft", "monitor"], { stdio: ["ignore", "pipe", "ignore"] }),
  ];
  for (const w of watchers) w.stdout!.setEncoding("utf8").on("data", (d: string) => lines.push(...d.split("\n").filter(Boolean)));
  return { lines, stop: () => { for (const w of watchers) w.kill(); } };
}

const ready = (port: number) => fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);

describe.skipIf(!isRoot())("one agent per node; cleanup only without one (rung 3)", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "podnet-node-lock-"));
    mkdirSync(join(dir, "net.d"));
    cli = await podnetCliArgv(dir);
    // n1, and n2 on another segment behind a router (through the tunnel, podnet.vxlan); a third node's route is direct.
    bed = createNetBed("lk", 1, 84, 2);
    const n2 = bed.addNode("n2", 1);
    await putNodeCidr(fx.api(), bed.nodes[0]!.name, "10.184.1.0/24", [bed.nodes[0]!.ip]);
    await putNodeCidr(fx.api(), "lk-far", "10.184.2.0/24", [n2.ip]);
    await putNodeCidr(fx.api(), "lk-near", "10.184.3.0/24", ["192.168.84.99"]);
  }, 120_000);
  afterAll(async () => {
    for (const a of agents) await stopProcess(a);
    bed?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let first: ManagedProcess & { port: number };

  it("a second agent for the same node, on another port and with other flags, refuses to start and touches nothing", async () => {
    const [n1] = bed.nodes;
    first = await startAgentProcess(n1!, "agent-a");
    await waitFor("first agent ready and programmed", async () => ((await ready(first.port)) && state(n1!) === programmed ? true : undefined), 30_000)
      .catch((err: unknown) => { throw new Error(`${String(err)}: ${state(n1!)}\n${tailFile(first.logFile)}`); });
    const conflist = statSync(join(dir, "net.d", "10-podnet.conflist"));
    const watch = watchNode(n1!);
    await new Promise((r) => setTimeout(r, 500)); // the watchers are listening
    // Flags that would change the node: another MTU rewrites the conflist, --overlay=none removes the tunnel.
    const second = await startAgentProcess(n1!, "agent-b", ["--mtu=1400", "--overlay=none"]);
    const code = await Promise.race([second.exited, new Promise<string>((r) => setTimeout(() => r("still running"), 15_000))]);
    await new Promise((r) => setTimeout(r, 500));
    watch.stop();
    expect(code, `second agent; meanwhile ${watch.lines.length} changes on the node, ${state(n1!)}\n${tailFile(second.logFile, 5)}`).toBe(1);
    expect(tailFile(second.logFile)).toMatch(/podnet: another podnet agent runs for this node \(lock \S+\/locks\/agent-\S+\.lock held by podnet agent pid \d+ for node n1, since [^)]+\); refusing to start a second one/);
    expect(watch.lines).toEqual([]);
    expect(statSync(join(dir, "net.d", "10-podnet.conflist")).mtimeMs).toBe(conflist.mtimeMs);
    expect(state(n1!)).toBe(programmed);
    expect(await ready(second.port)).toBe(false); // its metrics port never opened
    expect(first.child.exitCode).toBeNull();
  });

  it("a dry run takes no lock: it runs beside the agent (it changes nothing), and so can never keep an agent out", async () => {
    const [n1] = bed.nodes;
    const dry = await startAgentProcess(n1!, "agent-dry", ["--dry-run=true"]);
    await waitFor("dry run ready", async () => ((await ready(dry.port)) ? true : undefined), 30_000)
      .catch((err: unknown) => { throw new Error(`${String(err)}\n${tailFile(dry.logFile)}`); });
    await stopProcess(dry);
    expect(state(n1!)).toBe(programmed);
  });

  it("cleanup refuses while the agent runs and leaves the node as it is; waiting, it cleans the node fully once the agent stopped", async () => {
    const [n1] = bed.nodes;
    const refused = cleanup(n1!, ["--wait-for-agent=0s"]);
    expect(refused.code, refused.said).toBe(1);
    expect(refused.said).toMatch(/podnet: a podnet agent runs on this node \(lock \S+\/locks\/agent-\S+\.lock held by podnet agent pid \d+ for node n1, since [^)]+\): a cleanup beside it would be undone/);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(state(n1!)).toBe(programmed);

    // As the cleanup DaemonSet after `helm uninstall` without --wait: the agent is still on its way out.
    const waiting = spawn(cli[0]!, cleanupArgs(n1!, "--wait-for-agent=30s"), { env: { ...process.env, ...podnetCliEnv(dir) }, stdio: ["ignore", "pipe", "pipe"] });
    let said = "";
    waiting.stdout.setEncoding("utf8").on("data", (d: string) => (said += d));
    waiting.stderr.setEncoding("utf8").on("data", (d: string) => (said += d));
    const exited = new Promise<number | null>((r) => waiting.once("exit", r));
    await new Promise((r) => setTimeout(r, 2_000));
    expect(state(n1!), said).toBe(programmed); // nothing removed while the agent runs
    expect(waiting.exitCode, said).toBeNull();
    await stopProcess(first);
    expect(await exited, said).toBe(0);
    expect(said).toContain("waiting up to 30 s for it to stop");
    expect(said).toContain("none found when the node was read again");
    expect(state(n1!)).toBe(clean);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(state(n1!)).toBe(clean);
    expect(readdirSync(join(dir, "net.d"))).toEqual([]);
  });

  it("a process of another user can neither take the lock nor keep the agent out (the abstract name of the earlier lock bound)", async () => {
    const [n1] = bed.nodes;
    const nobody = { uid: 65534, gid: 65534 };
    // The earlier lock, an abstract Unix socket, was anyone's to bind first in the host's network namespace.
    // Into the node's namespace as root (setns needs it), then as nobody.
    const squatter = spawn("ip", ["netns", "exec", n1!.ns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "-e",
      `require("net").createServer().listen({ path: "\\0podnet-agent:${n1!.ns}" }, () => console.log("bound")); setTimeout(() => {}, 60_000)`], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      let said = "";
      squatter.stderr!.setEncoding("utf8").on("data", (d: string) => (said += d));
      const bound = await Promise.race([new Promise((r) => squatter.stdout!.once("data", () => r(true))), new Promise((r) => setTimeout(() => r(false), 10_000))]);
      expect(bound, said).toBe(true);
      const lockFile = join(dir, "locks", `agent-${n1!.ns}.lock`);
      expect(existsSync(lockFile)).toBe(true); // left by the agents before: flock(2) needs only a file it can open
      const tried = spawnSync("flock", ["--nonblock", lockFile, "true"], { ...nobody, encoding: "utf8" });
      expect(tried.status, tried.stderr).not.toBe(0);
      const agent = await startAgentProcess(n1!, "agent-after-squat");
      await waitFor("agent ready beside the squatter", async () => ((await ready(agent.port)) ? true : undefined), 30_000)
        .catch((err: unknown) => { throw new Error(`${String(err)}\n${tailFile(agent.logFile)}`); });
      await stopProcess(agent);
    } finally { squatter.kill("SIGKILL"); }
  });

  it("an agent whose lock helper is killed takes the lock again; one that finds it taken meanwhile stops and exits 1", async () => {
    const [n1] = bed.nodes;
    const agent = await startAgentProcess(n1!, "agent-helper-killed");
    await waitFor("agent ready", async () => ((await ready(agent.port)) ? true : undefined), 30_000);
    const lockFile = join(dir, "locks", `agent-${n1!.ns}.lock`);
    const helpers = () => processesWithOpen(lockFile).filter((pid) => pid !== agent.child.pid);
    for (const pid of helpers()) process.kill(pid, "SIGKILL");
    await waitFor("lock taken again", async () => (tailFile(agent.logFile).includes("the lock is taken again") ? true : undefined), 10_000);
    expect(spawnSync("flock", ["--nonblock", lockFile, "true"]).status).toBe(1);
    expect(await ready(agent.port)).toBe(true);
    // A process already waiting for the lock gets it as the helper dies, before the agent can take it again.
    const waiter = spawn("flock", ["--wait", "20", lockFile, "sleep", "3"], { stdio: "ignore" });
    await new Promise((r) => setTimeout(r, 300));
    for (const pid of helpers().filter((pid) => pid !== waiter.pid)) process.kill(pid, "SIGKILL");
    const code = await Promise.race([agent.exited, new Promise<string>((r) => setTimeout(() => r("still running"), 15_000))]);
    expect(code, tailFile(agent.logFile, 5)).toBe(1);
    expect(tailFile(agent.logFile)).toContain("the lock could not be taken again: stopping");
    await new Promise((r) => (waiter.exitCode === null ? waiter.once("exit", r) : r(undefined)));
  });

  it("cleanup reads the node again at the end and names what is still there, instead of claiming it clean", async () => {
    const [n1] = bed.nodes;
    const agent = await startAgentProcess(n1!, "agent-c");
    await waitFor("agent programmed", async () => (state(n1!) === programmed ? true : undefined), 30_000);
    await stopProcess(agent); // an agent's stop leaves its work in place
    ipIn(n1!.ns, "link", "add", "podnet0", "type", "bridge");
    // An `ip` that says yes to `link del` and does nothing: every step succeeds, the devices stay.
    const fakeBin = join(dir, "fake-ip");
    mkdirSync(fakeBin);
    const realIp = execFileSync("sh", ["-c", "command -v ip"], { encoding: "utf8" }).trim();
    writeFileSync(join(fakeBin, "ip"), `#!/bin/sh\ncase " $* " in *" link del "*) exit 0;; esac\nexec ${realIp} "$@"\n`);
    chmodSync(join(fakeBin, "ip"), 0o755);
    const r = cleanup(n1!, [], { PATH: `${fakeBin}:${process.env.PATH}` });
    expect(r.code, r.said).toBe(1);
    expect(r.said).toContain("podnet: podnet cleanup left: vxlan device (still there: podnet.vxlan); pod bridge (still there: podnet0)");
    expect(r.said).not.toContain("nothing of podnet's left");
    expect(state(n1!)).toBe("routes=0 nexthops=0 vxlan=true bridge=true nft=false conflist=false");
    const again = cleanup(n1!);
    expect(again.code, again.said).toBe(0);
    expect(state(n1!)).toBe(clean);
  });
});
