import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { createNetBed, ipIn, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping } from "../../src/localcluster/udp-probe.js";
import { agentCleanupConfigSchema } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { cleanupAgent } from "../../src/node-agent/cleanup.js";
import { conditionsOf, putNodeCidr, startAgent, testLockDir, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { emptyCluster } from "../harness/cluster-objects.js";

// Nodes whose iptables FORWARD policy is DROP, as Docker and ufw leave it: every forwarded pod packet, between
// nodes and (through br_netfilter) between pods of one node, is dropped unless something accepts it there.
// Twice: a host on iptables-nft, and one whose firewall is on iptables-legacy while iptables-nft drops too (Docker
// on legacy beside an nft kube-proxy): a packet must pass both.
const fx = useControlPlane();
// A lock file of this run's own (iptables reads XTABLES_LOCKFILE; the agent's tools inherit it): the test holds
// it without making the host's iptables users wait.
const lockDir = mkdtempSync(join(tmpdir(), "podnet-xtables-"));
const lockFile = join(lockDir, "xtables.lock");
process.env.XTABLES_LOCKFILE = lockFile;
afterAll(() => rmSync(lockDir, { recursive: true, force: true }));
const variants = [
  { firewall: "iptables-nft", tag: "fd", octet: 251, alsoNftDrop: false },
  { firewall: "iptables-legacy", tag: "fl", octet: 252, alsoNftDrop: true },
] as const;

describe.skipIf(!isRoot()).each(variants)("a host firewall that drops forwarded traffic, on $firewall (rung 3)", ({ firewall, tag, octet, alsoNftDrop }) => {
  let bed: NetBed;
  const agents: TestAgent[] = [];
  const pods: Pod[] = [];
  const iptables = (ns: string, ...args: string[]) => execFileSync("ip", ["netns", "exec", ns, firewall, ...args], { encoding: "utf8" });
  const podRange = (i: number) => `10.${octet}.${i}.0/24`;

  beforeAll(async () => {
    bed = createNetBed(tag, 2, octet - 185);
    for (const [i, n] of bed.nodes.entries()) {
      iptables(n.ns, "-P", "FORWARD", "DROP");
      iptables(n.ns, "-A", "FORWARD", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"); // Docker's, kube-proxy's
      // kube-proxy's answer for a Service without endpoints: rejected in a chain FORWARD jumps to.
      iptables(n.ns, "-N", "KUBE-SERVICES");
      iptables(n.ns, "-A", "KUBE-SERVICES", "-d", "10.96.0.50/32", "-p", "tcp", "--dport", "80", "-j", "REJECT");
      iptables(n.ns, "-A", "FORWARD", "-j", "KUBE-SERVICES");
      ipIn(n.ns, "route", "add", "10.96.0.0/12", "via", `192.168.${octet - 185}.250`); // nobody there: only the REJECT answers
      // An upgrade from the first version, which inserted its accepts at the top, above kube-proxy's jump.
      if (firewall === "iptables-nft") execFileSync("ip", ["netns", "exec", n.ns, "nft", "insert", "rule", "ip", "filter", "FORWARD", "ip", "saddr", podRange(1), "counter", "accept", "comment", '"podnet: pod network"']);
      else iptables(n.ns, "-I", "FORWARD", "1", "-s", podRange(1), "-m", "comment", "--comment", "podnet: pod network", "-j", "ACCEPT");
      if (alsoNftDrop) execFileSync("ip", ["netns", "exec", n.ns, "iptables-nft", "-P", "FORWARD", "DROP"]);
      await putNodeCidr(fx.api(), `${tag}${i + 1}`, podRange(i + 1), [n.ip]);
    }
    for (const [i, n] of bed.nodes.entries()) agents.push(await startAgent(fx, n, { "node-name": `${tag}${i + 1}` }));
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    for (const a of agents) await a.stop();
    bed?.destroy();
    await emptyCluster(fx.api()); // the next variant's agents must not see this one's pod ranges
  });

  it("accepts the pod network in the host's FORWARD chain: pods reach pods on their node and across nodes; iptables still reads the chain", async () => {
    const [n1, n2] = bed.nodes;
    for (const a of agents) await a.agent.syncNow();
    pods.push(addPod(n1!.ns, agents[0]!.confDir, `${tag}a`), addPod(n1!.ns, agents[0]!.confDir, `${tag}b`), addPod(n2!.ns, agents[1]!.confDir, `${tag}c`));
    const [a, b, c] = pods;
    expect(ping(a!.ns, c!.ips[0]!)).toBe(true); // across nodes
    expect(ping(a!.ns, b!.ips[0]!)).toBe(true); // on one node's bridge
    // kube-proxy's rules still see pod traffic: podnet's accepts come after its jump.
    const connect = spawnSync("ip", ["netns", "exec", a!.ns, "timeout", "5", "bash", "-c", "exec 3<>/dev/tcp/10.96.0.50/80"], { encoding: "utf8" });
    expect(connect.stderr).toContain("Connection refused");
    const rules = iptables(n1!.ns, "-S", "FORWARD");
    expect(rules.indexOf("-j KUBE-SERVICES")).toBeLessThan(rules.indexOf("podnet: pod network"));
    expect(rules).toContain("-P FORWARD DROP");
    expect(rules).toContain(`-s ${podRange(1)} -m comment --comment "podnet: pod network" -j ACCEPT`);
    expect(rules).toContain(`-d ${podRange(2)} -m comment --comment "podnet: pod network" -j ACCEPT`);
    if (alsoNftDrop) expect(execFileSync("ip", ["netns", "exec", n1!.ns, "iptables-nft", "-S", "FORWARD"], { encoding: "utf8" })).toContain(`-d ${podRange(2)} -m comment`);
    const sysctls = await waitFor("SysctlsReady says so", async () => (await conditionsOf(fx.api(), `10-${octet}-1-0-24`)).find((x) => x.type === "SysctlsReady" && x.message.includes("drops by default")), 10_000);
    expect(sysctls.status).toBe("True");
    // A second full pass adds nothing more.
    await agents[0]!.agent.syncNow();
    expect(iptables(n1!.ns, "-S", "FORWARD").split("\n").filter((l) => l.includes("podnet")).length).toBe(4);
  });

  it("a range that joins the pod network is accepted by the next event pass, not the next resync", async () => {
    const [, n2] = bed.nodes;
    await agents[1]!.stop();
    agents[1] = await startAgent(fx, n2!, { "node-name": `${tag}2`, "resync-period": "1h" });
    await agents[1].agent.syncNow();
    // Not next to another range here: 10.x.3.0/24 would merge with 10.x.2.0/24 into one accepted /23.
    await putNodeCidr(fx.api(), `${tag}3`, podRange(7), [`192.168.${octet - 185}.99`]);
    await waitFor(`${podRange(7)} accepted`, async () => (iptables(n2!.ns, "-S", "FORWARD").includes(`-d ${podRange(7)} -m comment`) ? true : undefined), 10_000);
  });

  // iptables-nft takes no lock.
  if (firewall === "iptables-legacy") it("an xtables lock held for seconds leaves SysctlsReady as it was while the step is retried; held on, it is reported; once free, the range is accepted", async () => {
    const [, n2] = bed.nodes;
    const sysctlsReady = async () => (await conditionsOf(fx.api(), `10-${octet}-2-0-24`)).find((x) => x.type === "SysctlsReady");
    expect(await sysctlsReady()).toMatchObject({ status: "True" });
    // kube-proxy's iptables-restore on a large cluster, then one stuck: the agent's 5 s wait runs out pass after pass.
    const holder = spawn("flock", [lockFile, "sleep", "60"], { stdio: "ignore", detached: true });
    try {
      await waitFor("the lock held", async () => (spawnSync("flock", ["--nonblock", lockFile, "true"]).status !== 0 ? true : undefined), 5_000);
      await putNodeCidr(fx.api(), `${tag}4`, podRange(4), [`192.168.${octet - 185}.98`]);
      const seen = new Set<string>();
      for (const until = Date.now() + 8_000; Date.now() < until;) { // the first wait ran out at 5 s, the retry waits again
        const c = await sysctlsReady();
        seen.add(`${c?.status} ${c?.reason}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      expect([...seen]).toEqual([`True ${(await sysctlsReady())!.reason}`]);
      const reported = await waitFor("a lock held pass after pass reported", async () => {
        const c = await sysctlsReady();
        return c?.status === "False" ? c : undefined;
      }, 25_000);
      expect(reported.reason).toBe("FirewallUnreadable");
      expect(reported.message).toContain("holding the xtables lock");
    } finally {
      try { process.kill(-holder.pid!, "SIGKILL"); } catch { /* already gone */ }
    }
    // The agent's resync is an hour away: only the retries can accept the range.
    await waitFor(`${podRange(4)} accepted`, async () => (iptables(n2!.ns, "-w", "5", "-S", "FORWARD").includes(`-d ${podRange(4)} -m comment`) ? true : undefined), 20_000);
    await waitFor("SysctlsReady True again", async () => ((await sysctlsReady())?.status === "True" ? true : undefined), 10_000);
  });

  it("cleanup takes podnet's rules out and leaves the firewall's own policy and rules", async () => {
    const [n1] = bed.nodes;
    for (const p of pods.splice(0)) deletePod(p);
    await agents[0]!.stop();
    agents.shift();
    await cleanupAgent(agentCleanupConfigSchema.parse({ "cni-conf-dir": "/nonexistent-podnet-dir", "lock-dir": testLockDir() }), silentLogger(), n1!.ns);
    const rules = iptables(n1!.ns, "-S", "FORWARD");
    expect(rules).not.toContain("podnet");
    expect(rules).toContain("-P FORWARD DROP");
    expect(rules).toContain("--ctstate RELATED,ESTABLISHED -j ACCEPT");
    if (alsoNftDrop) expect(execFileSync("ip", ["netns", "exec", n1!.ns, "iptables-nft", "-S", "FORWARD"], { encoding: "utf8" })).not.toContain("podnet");
  });
});
