import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { createNetBed, ipIn, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping } from "../../src/localcluster/udp-probe.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { emptyCluster } from "../harness/cluster-objects.js";

// A firewall that drops forwarded traffic by a final rule rather than by the chain's policy: RHEL's iptables-services
// (/etc/sysconfig/iptables: policy ACCEPT, the last rule `-j REJECT --reject-with icmp-host-prohibited`), on
// iptables-nft and on iptables-legacy. podnet accepts the pod network in front of that rule.
const fx = useControlPlane();
// The test's own xtables lock file (see agent-forward-drop.test.ts): the host's iptables users never wait on it.
const lockDir = mkdtempSync(join(tmpdir(), "podnet-xtables-"));
process.env.XTABLES_LOCKFILE = join(lockDir, "xtables.lock");
afterAll(() => rmSync(lockDir, { recursive: true, force: true }));

const sysctlsReady = async (name: string) => (await conditionsOf(fx.api(), name)).find((c) => c.type === "SysctlsReady");
const ready = async (name: string) => (await conditionsOf(fx.api(), name)).find((c) => c.type === "Ready");

describe.skipIf(!isRoot()).each([
  { firewall: "iptables-nft", tag: "rq", segment: 161 },
  { firewall: "iptables-legacy", tag: "rl", segment: 162 },
] as const)("a FORWARD chain that ends in REJECT with policy ACCEPT, on $firewall (rung 3)", ({ firewall, tag, segment }) => {
  let bed: NetBed;
  const agents: TestAgent[] = [];
  const pods: Pod[] = [];
  const iptables = (ns: string, ...args: string[]) => execFileSync("ip", ["netns", "exec", ns, firewall, ...args], { encoding: "utf8" });
  const podRange = (i: number) => `10.${segment}.${i}.0/24`;

  beforeAll(async () => {
    bed = createNetBed(tag, 2, segment);
    for (const [i, n] of bed.nodes.entries()) {
      iptables(n.ns, "-A", "FORWARD", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT");
      // kube-proxy's answer for a Service without endpoints, in a chain FORWARD jumps to before the REJECT.
      iptables(n.ns, "-N", "KUBE-SERVICES");
      iptables(n.ns, "-A", "KUBE-SERVICES", "-d", "10.96.0.50/32", "-p", "tcp", "--dport", "80", "-j", "REJECT");
      iptables(n.ns, "-A", "FORWARD", "-j", "KUBE-SERVICES");
      ipIn(n.ns, "route", "add", "10.96.0.0/12", "via", `192.168.${segment}.250`); // nobody there: only the REJECT answers
      iptables(n.ns, "-A", "FORWARD", "-j", "REJECT", "--reject-with", "icmp-host-prohibited");
      // On legacy, an accept an earlier podnet appended behind the REJECT (with a drop policy besides): never reached.
      if (firewall === "iptables-legacy") iptables(n.ns, "-A", "FORWARD", "-s", podRange(i + 1), "-m", "comment", "--comment", "podnet: pod network", "-j", "ACCEPT");
      await putNodeCidr(fx.api(), `${tag}${i + 1}`, podRange(i + 1), [n.ip]);
    }
    for (const [i, n] of bed.nodes.entries()) agents.push(await startAgent(fx, n, { "node-name": `${tag}${i + 1}` }));
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    for (const a of agents) await a.stop();
    bed?.destroy();
    await emptyCluster(fx.api());
  });

  it("accepts the pod network in front of the REJECT, after kube-proxy's jump: pods reach pods on their node, across nodes and the other node", async () => {
    const [n1, n2] = bed.nodes;
    for (const a of agents) await a.agent.syncNow();
    pods.push(addPod(n1!.ns, agents[0]!.confDir, `${tag}a`), addPod(n1!.ns, agents[0]!.confDir, `${tag}b`), addPod(n2!.ns, agents[1]!.confDir, `${tag}c`));
    const [a, b, c] = pods;
    expect({ acrossNodes: ping(a!.ns, c!.ips[0]!), sameNode: ping(a!.ns, b!.ips[0]!), otherNode: ping(a!.ns, n2!.ip), back: ping(c!.ns, a!.ips[0]!) })
      .toEqual({ acrossNodes: true, sameNode: true, otherNode: true, back: true });
    // kube-proxy's rules still see pod traffic first.
    const connect = spawnSync("ip", ["netns", "exec", a!.ns, "timeout", "5", "bash", "-c", "exec 3<>/dev/tcp/10.96.0.50/80"], { encoding: "utf8" });
    expect(connect.stderr).toContain("Connection refused");
    const rules = iptables(n1!.ns, "-S", "FORWARD").trim().split("\n");
    expect(rules).toEqual([
      "-P FORWARD ACCEPT",
      "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
      "-A FORWARD -j KUBE-SERVICES",
      `-A FORWARD -s ${podRange(1)} -m comment --comment "podnet: pod network" -j ACCEPT`,
      `-A FORWARD -d ${podRange(1)} -m comment --comment "podnet: pod network" -j ACCEPT`,
      `-A FORWARD -s ${podRange(2)} -m comment --comment "podnet: pod network" -j ACCEPT`,
      `-A FORWARD -d ${podRange(2)} -m comment --comment "podnet: pod network" -j ACCEPT`,
      "-A FORWARD -j REJECT --reject-with icmp-host-prohibited",
    ]);
    const sysctls = await waitFor("SysctlsReady says so", async () => { const s = await sysctlsReady(`10-${segment}-1-0-24`); return s?.message.includes("drops by default") ? s : undefined; }, 10_000);
    expect(sysctls.status).toBe("True");
    expect((await ready(`10-${segment}-1-0-24`))?.status).toBe("True");
    // A second full pass changes nothing.
    await agents[0]!.agent.syncNow();
    expect(iptables(n1!.ns, "-S", "FORWARD").trim().split("\n")).toEqual(rules);
  });
});
