import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CNI_BIN_DIR } from "../../src/localcluster/cni-exec.js";
import { createNetBed, ipJson, isRoot, type BedNode, type NetBed } from "../../src/localcluster/netbed.js";
import { AGENT_NODE_FLAGS, podnetCliArgv, podnetCliEnv } from "../../src/localcluster/podnet-cli.js";
import { freePort, startProcess, stopProcess, tailFile, waitFor, type ManagedProcess } from "../../src/localcluster/processes.js";
import { conditionsOf, putNodeCidr } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

/**
 * The agent as production starts it (the bundle, its own process) on a host that lacks `nft` or `ip`: each
 * missing tool is named in the condition of the step that needs it, the process keeps running and keeps
 * reporting, and what does not need the tool still gets done.
 */
const fx = useControlPlane();
let bed: NetBed;
let dir: string;
let cli: string[];
const agents: ManagedProcess[] = [];

/** A PATH directory holding only the named tools (links to the real ones). */
function pathWith(name: string, tools: string[]): string {
  const bin = join(dir, name);
  mkdirSync(bin);
  for (const tool of tools) symlinkSync(execFileSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).trim(), join(bin, tool));
  return bin;
}

async function startAgentProcess(node: BedNode, path: string, extra: string[] = []): Promise<ManagedProcess> {
  const home = join(dir, node.name);
  mkdirSync(join(home, "net.d"), { recursive: true });
  const agent = startProcess(`agent-${node.name}`, cli[0]!, [...AGENT_NODE_FLAGS, ...cli.slice(1), "agent", `--kubeconfig=${fx.cp.kubeconfig}`,
    `--node-name=${node.name}`, `--netns=${node.ns}`, `--cni-conf-dir=${join(home, "net.d")}`, `--cni-bin-dir=${CNI_BIN_DIR}`,
    `--ipam-data-dir=${join(home, "ipam")}`, `--metrics-address=127.0.0.1:${await freePort()}`, "--resync-period=2s", `--lock-dir=${join(dir, "locks")}`, ...extra],
  join(home, "agent.log"), { env: { ...podnetCliEnv(dir), PATH: path } });
  agents.push(agent);
  return agent;
}

const condition = (name: string, type: string) => async () => (await conditionsOf(fx.api(), name)).find((c) => c.type === type);

describe.skipIf(!isRoot())("node agent on a host missing ip or nft (rung 3)", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "podnet-tools-"));
    cli = await podnetCliArgv(dir);
    bed = createNetBed("mt", 2, 76);
    await putNodeCidr(fx.api(), bed.nodes[0]!.name, "10.244.1.0/24", [bed.nodes[0]!.ip]);
    await putNodeCidr(fx.api(), bed.nodes[1]!.name, "10.244.2.0/24", [bed.nodes[1]!.ip]);
  }, 120_000);
  afterAll(async () => {
    for (const a of agents) await stopProcess(a);
    bed?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("without nft: MasqueradeReady names the missing tool, routes and the CNI config are still in place", async () => {
    const [n1] = bed.nodes;
    const agent = await startAgentProcess(n1!, pathWith("no-nft", ["ip", "bridge", "sysctl"]));
    const masq = await waitFor("MasqueradeReady reported", async () => { const c = await condition("10-244-1-0-24", "MasqueradeReady")(); return c?.status === "False" ? c : undefined; }, 30_000)
      .catch((err: unknown) => { throw new Error(`${String(err)}\n${tailFile(agent.logFile)}`); });
    expect(masq.message).toContain("nft not found in PATH; install nftables");
    expect((await condition("10-244-1-0-24", "Ready")())?.status).toBe("False");
    expect((await condition("10-244-1-0-24", "RoutesProgrammed")())).toMatchObject({ status: "True", reason: "Programmed" });
    expect((await condition("10-244-1-0-24", "CNIConfigured")())?.status).toBe("True");
    expect(ipJson<Array<{ dst: string }>>(n1!.ns, "route", "show", "proto", "249").map((r) => r.dst)).toEqual(["10.244.2.0/24"]);
    expect(agent.child.exitCode).toBeNull();
  });

  it("without nft and with masquerade off: nothing is missing, the node is Ready; the log says TCP into the overlay goes unclamped", async () => {
    const [n1] = bed.nodes;
    await stopProcess(agents.pop()!);
    const agent = await startAgentProcess(n1!, join(dir, "no-nft"), ["--masquerade=false"]);
    await waitFor("Ready", async () => ((await condition("10-244-1-0-24", "Ready")())?.status === "True" ? true : undefined), 30_000);
    expect(await condition("10-244-1-0-24", "MasqueradeReady")()).toMatchObject({ status: "True", reason: "Disabled" });
    expect(tailFile(agent.logFile)).toContain("nft is missing: TCP into the overlay is not MSS-clamped");
  });

  it("a firewall on iptables-legacy without iptables-legacy to read it: SysctlsReady=False, FirewallUnreadable, naming the tool", async () => {
    const [n1] = bed.nodes;
    // The agent of the case above (no nft, masquerade off) keeps running; the node's firewall now drops forwarding.
    execFileSync("ip", ["netns", "exec", n1!.ns, "iptables-legacy", "-P", "FORWARD", "DROP"]);
    const sysctls = await waitFor("SysctlsReady=False", async () => { const c = await condition("10-244-1-0-24", "SysctlsReady")(); return c?.status === "False" ? c : undefined; }, 30_000);
    expect(sysctls.reason).toBe("FirewallUnreadable");
    expect(sysctls.message).toContain("iptables-legacy not found in PATH; install iptables");
  });

  it("without ip: RoutesProgrammed names the missing tool, the process keeps running, the other node's routes stay", async () => {
    const [n1, n2] = bed.nodes;
    const agent = await startAgentProcess(n2!, pathWith("no-ip", ["nft", "sysctl"]));
    const routes = await waitFor("RoutesProgrammed reported", async () => { const c = await condition("10-244-2-0-24", "RoutesProgrammed")(); return c?.status === "False" ? c : undefined; }, 30_000)
      .catch((err: unknown) => { throw new Error(`${String(err)}\n${tailFile(agent.logFile)}`); });
    expect(routes.message).toContain("ip not found in PATH; install iproute2");
    // A few more resyncs (2 s apart) fail the same way without taking the agent down.
    await new Promise((r) => setTimeout(r, 4_500));
    expect(agent.child.exitCode).toBeNull();
    expect((await condition("10-244-2-0-24", "RoutesProgrammed")())?.message).toContain("ip not found in PATH");
    expect(ipJson<Array<{ dst: string }>>(n1!.ns, "route", "show", "proto", "249").map((r) => r.dst)).toEqual(["10.244.2.0/24"]);
  });

  it("on a kernel that refuses nft's fib expression (no nft_fib): the table goes in without the one clamp that needs it, and gets it once fib works", async () => {
    const [, n2] = bed.nodes;
    while (agents.length) await stopProcess(agents.pop()!);
    // This kernel has nft_fib built in: an nft that answers as a kernel without it does stands in (nothing else can).
    // `mode`: refuse (no nft_fib), once-busy (one unrelated failure of an apply, then fine), real.
    const bin = pathWith("no-fib", ["ip", "bridge", "sysctl", "iptables", "iptables-legacy", "iptables-nft"]);
    const real = execFileSync("sh", ["-c", "command -v nft"], { encoding: "utf8" }).trim();
    const mode = join(bin, "mode");
    writeFileSync(mode, "refuse");
    writeFileSync(join(bin, "nft"), [
      "#!/bin/sh",
      `mode=$(/bin/cat ${mode})`,
      'case " $* " in *" -f - "*)',
      "  input=$(/bin/cat)",
      '  case "$input" in *"fib saddr"*)',
      '    if [ "$mode" = refuse ]; then echo "Error: Could not process rule: No such file or directory" >&2; exit 1; fi',
      `    if [ "$mode" = once-busy ]; then echo real > ${mode}; echo "Error: Could not process rule: Device or resource busy" >&2; exit 1; fi;;`,
      "  esac",
      `  printf '%s\\n' "$input" | exec ${real} "$@";;`,
      "esac",
      `exec ${real} "$@"`, "",
    ].join("\n"), { mode: 0o755 });
    const table = () => execFileSync("ip", ["netns", "exec", n2!.ns, "nft", "list", "table", "inet", "podnet"], { encoding: "utf8" });
    const withoutRule = (log: string) => log.split("applied without that rule").length - 1;
    spawnSync("ip", ["netns", "exec", n2!.ns, "nft", "delete", "table", "inet", "podnet"]); // an earlier agent's, if it made one
    let agent = await startAgentProcess(n2!, bin);
    await waitFor("applied without the fib clamp", async () => (withoutRule(tailFile(agent.logFile, 200)) ? true : undefined), 30_000)
      .catch((err: unknown) => { throw new Error(`${String(err)}\n${tailFile(agent.logFile)}`); });
    expect(table()).toContain("masquerade");
    expect(table()).toContain("maxseg size set rt mtu"); // the clamp that needs no fib stays
    expect(table()).not.toContain("fib saddr");
    await waitFor("MasqueradeReady", async () => ((await condition("10-244-2-0-24", "MasqueradeReady")())?.status === "True" ? true : undefined), 10_000);
    await new Promise((r) => setTimeout(r, 4_500)); // full passes (2 s) keep it so
    expect(table()).not.toContain("fib saddr");
    expect(withoutRule(tailFile(agent.logFile, 400))).toBe(1);

    // nft_fib loaded since: a full pass's probe finds it, and the rule is back.
    writeFileSync(mode, "real");
    await waitFor("the fib clamp back", async () => (table().includes("fib saddr") ? true : undefined), 15_000);
    expect(tailFile(agent.logFile, 400)).toContain("the kernel takes nft's fib expression now");

    // One failure that is not about fib (a busy kernel) does not drop the rule: the probe passes, the pass is retried.
    await stopProcess(agents.pop()!);
    spawnSync("ip", ["netns", "exec", n2!.ns, "nft", "delete", "table", "inet", "podnet"]);
    writeFileSync(mode, "once-busy");
    const logBefore = withoutRule(tailFile(agent.logFile, 1000));
    agent = await startAgentProcess(n2!, bin);
    await waitFor("the table with the fib clamp", async () => (spawnSync("ip", ["netns", "exec", n2!.ns, "nft", "list", "table", "inet", "podnet"], { encoding: "utf8" }).stdout.includes("fib saddr") ? true : undefined), 30_000)
      .catch((err: unknown) => { throw new Error(`${String(err)}\n${tailFile(agent.logFile)}`); });
    expect(withoutRule(tailFile(agent.logFile, 1000))).toBe(logBefore);
  });

  it("with an nft that cannot read another program's forward-hook table: SysctlsReady says that table may drop pod traffic, the node stays Ready", async () => {
    const [n1] = bed.nodes;
    while (agents.length) await stopProcess(agents.pop()!);
    // A table written by a newer nft than the host's (an expression it cannot decode) fails every listing of it. This
    // host's nft reads whatever it wrote, so an nft that fails that way for the one table stands in.
    const bin = pathWith("old-nft", ["ip", "bridge", "sysctl", "iptables", "iptables-legacy", "iptables-nft"]);
    const real = execFileSync("sh", ["-c", "command -v nft"], { encoding: "utf8" }).trim();
    writeFileSync(join(bin, "nft"), [
      "#!/bin/sh",
      'case " $* " in *" inet othertool "*) echo "Error: unknown expression type \'newexpr\'" >&2; exit 1;; esac',
      `exec ${real} "$@"`, "",
    ].join("\n"), { mode: 0o755 });
    execFileSync("ip", ["netns", "exec", n1!.ns, "iptables-legacy", "-P", "FORWARD", "ACCEPT"]); // left by the case above: not this one's point
    execFileSync("ip", ["netns", "exec", n1!.ns, "nft", "-f", "-"], { input: "table inet othertool {\n chain forward {\n  type filter hook forward priority 0; policy drop;\n }\n}\n" });
    try {
      await startAgentProcess(n1!, bin);
      const sysctls = await waitFor("SysctlsReady ForwardMayBeDropped", async () => {
        const c = await condition("10-244-1-0-24", "SysctlsReady")();
        return c?.reason === "ForwardMayBeDropped" ? c : undefined;
      }, 30_000).catch(async (err: unknown) => {
        throw new Error(`${String(err)}: ${JSON.stringify(await condition("10-244-1-0-24", "SysctlsReady")())}`);
      });
      expect(sysctls.status).toBe("True");
      expect(sysctls.message).toContain("nft table inet othertool, chain forward (forward hook) may drop pod traffic: podnet cannot read it (");
      expect(sysctls.message).toContain("unknown expression type 'newexpr'");
      expect(await condition("10-244-1-0-24", "Ready")()).toMatchObject({ status: "True" });
    } finally {
      execFileSync("ip", ["netns", "exec", n1!.ns, "nft", "delete", "table", "inet", "othertool"]);
    }
  });

  it("cleanup without nft: removes the conflist, routes and bridge all the same, exits non-zero naming the nft table; warns of pods still attached", async () => {
    const [n1] = bed.nodes;
    while (agents.length) await stopProcess(agents.pop()!);
    const confDir = join(dir, n1!.name, "net.d");
    expect(readdirSync(confDir)).toContain("10-podnet.conflist"); // written by the agents above
    execFileSync("ip", ["netns", "exec", n1!.ns, "nft", "add", "table", "inet", "podnet"]);
    // The pod bridge with one pod's host-side veth on it.
    execFileSync("ip", ["-n", n1!.ns, "link", "add", "podnet0", "type", "bridge"]);
    execFileSync("ip", ["-n", n1!.ns, "link", "add", "vethpod1", "type", "veth", "peer", "name", "vethpod1p"]);
    execFileSync("ip", ["-n", n1!.ns, "link", "set", "vethpod1", "master", "podnet0"]);
    const run = spawnSync(cli[0]!, [...cli.slice(1), "agent", "cleanup", `--netns=${n1!.ns}`, `--cni-conf-dir=${confDir}`, `--lock-dir=${join(dir, "locks")}`],
      { env: { ...process.env, ...podnetCliEnv(dir), PATH: join(dir, "no-nft") }, encoding: "utf8", timeout: 30_000 });
    const said = run.stdout + run.stderr;
    expect(run.status).not.toBe(0);
    expect(said).toContain("podnet cleanup left: nft table (nft not found in PATH");
    expect(said).toContain("1 pod interface(s) still on podnet0");
    expect(readdirSync(confDir)).not.toContain("10-podnet.conflist");
    const links = ipJson<Array<{ ifname: string }>>(n1!.ns, "link", "show").map((l) => l.ifname);
    expect(links).not.toContain("podnet0");
    expect(ipJson(n1!.ns, "route", "show", "proto", "249")).toEqual([]);
    expect(execFileSync("ip", ["netns", "exec", n1!.ns, "nft", "list", "tables"], { encoding: "utf8" })).toContain("podnet");
    // With nft back, the rest goes too.
    const again = spawnSync(cli[0]!, [...cli.slice(1), "agent", "cleanup", `--netns=${n1!.ns}`, `--cni-conf-dir=${confDir}`, `--lock-dir=${join(dir, "locks")}`],
      { env: { ...process.env, ...podnetCliEnv(dir) }, encoding: "utf8", timeout: 30_000 });
    expect(again.status).toBe(0);
    expect(again.stdout).toContain("nothing of podnet's left: conflist, routes, vxlan device, nft table, firewall FORWARD accepts, pod bridge removed where present");
    expect(execFileSync("ip", ["netns", "exec", n1!.ns, "nft", "list", "tables"], { encoding: "utf8" })).not.toContain("podnet");
    // A namespace that is not there is said so, not cleaned "successfully".
    const nowhere = spawnSync(cli[0]!, [...cli.slice(1), "agent", "cleanup", `--netns=${n1!.ns}-gone`, `--cni-conf-dir=${confDir}`, `--lock-dir=${join(dir, "locks")}`],
      { env: { ...process.env, ...podnetCliEnv(dir) }, encoding: "utf8", timeout: 30_000 });
    expect([nowhere.status, nowhere.stderr.trim()]).toEqual([2, `podnet: network namespace ${n1!.ns}-gone does not exist`]);
  });
});
