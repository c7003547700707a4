import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { podnetResource } from "../../src/lib/k8s.js";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping } from "../../src/localcluster/udp-probe.js";
import { putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { emptyCluster } from "../harness/cluster-objects.js";

// Pools grown range by range: four pools of 16 adjacent /24s each, 64 ranges that make up one /18. Where the host's
// FORWARD chain drops, each range of the pod network becomes two accepts every forwarded packet walks: 128 rules
// before, 2 once merged. With the placement kept (after kube-proxy's jump; on legacy in front of a final REJECT),
// and an older agent's accepts per unmerged range taken out.
const fx = useControlPlane();
// The test's own xtables lock file (see agent-forward-drop.test.ts): the host's iptables users never wait on it.
const lockDir = mkdtempSync(join(tmpdir(), "podnet-xtables-"));
process.env.XTABLES_LOCKFILE = join(lockDir, "xtables.lock");
afterAll(() => rmSync(lockDir, { recursive: true, force: true }));

const COMMENT = "podnet: pod network";

describe.skipIf(!isRoot()).each([
  { firewall: "iptables-nft", tag: "mn", octet: 163, finalReject: false },
  { firewall: "iptables-legacy", tag: "ml", octet: 164, finalReject: true },
] as const)("a pod network of 64 adjacent pool ranges, FORWARD dropping on $firewall (rung 3)", ({ firewall, tag, octet, finalReject }) => {
  let bed: NetBed;
  const agents: TestAgent[] = [];
  const pods: Pod[] = [];
  const iptables = (ns: string, ...args: string[]) => execFileSync("ip", ["netns", "exec", ns, firewall, ...args], { encoding: "utf8" });
  const range = (i: number) => `10.${octet}.${i}.0/24`;
  const ourRules = (ns: string) => iptables(ns, "-S", "FORWARD").split("\n").filter((l) => l.includes(COMMENT));

  beforeAll(async () => {
    bed = createNetBed(tag, 2, octet);
    for (let p = 0; p < 4; p++) {
      await fx.api().custom.createClusterCustomObject({ ...podnetResource("podcidrpools"), body: {
        apiVersion: "podnet.io/v1alpha1", kind: "PodCIDRPool", metadata: { name: `${tag}-pool${p}` },
        spec: { ipv4: { cidrs: Array.from({ length: 16 }, (_, k) => range(p * 16 + k)), nodeMaskSize: 24 } },
      } });
    }
    for (const [i, n] of bed.nodes.entries()) {
      iptables(n.ns, "-A", "FORWARD", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT");
      iptables(n.ns, "-N", "KUBE-SERVICES");
      iptables(n.ns, "-A", "FORWARD", "-j", "KUBE-SERVICES");
      if (finalReject) iptables(n.ns, "-A", "FORWARD", "-j", "REJECT", "--reject-with", "icmp-host-prohibited");
      else iptables(n.ns, "-P", "FORWARD", "DROP");
      // What an older agent left, as it wrote them: accepts per pool range, unmerged, where this version's belong.
      for (const r of [range(0), range(1), range(40)]) {
        for (const [flag, field] of [["-s", "saddr"], ["-d", "daddr"]] as const) {
          if (finalReject) {
            const rejectAt = iptables(n.ns, "-S", "FORWARD").split("\n").filter((l) => l.startsWith("-A")).length;
            iptables(n.ns, "-I", "FORWARD", String(rejectAt), flag, r, "-m", "comment", "--comment", COMMENT, "-j", "ACCEPT");
          } else {
            execFileSync("ip", ["netns", "exec", n.ns, "nft", "add", "rule", "ip", "filter", "FORWARD", "ip", field, r, "counter", "accept", "comment", `"${COMMENT}"`]);
          }
        }
      }
      await putNodeCidr(fx.api(), `${tag}${i + 1}`, range(i + 1), [n.ip]);
    }
    for (const [i, n] of bed.nodes.entries()) agents.push(await startAgent(fx, n, { "node-name": `${tag}${i + 1}` }));
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    for (const a of agents) await a.stop();
    bed?.destroy();
    await emptyCluster(fx.api());
  });

  it("accepts the pod network with two rules for the one /18, replaces the older per-range accepts, and pods reach each other", async () => {
    const [n1, n2] = bed.nodes;
    const merged = `10.${octet}.0.0/18`;
    const olderAgents = [range(0), range(1), range(40)].map((r) => ` ${r} `);
    await waitFor("the pools' ranges seen by both agents", async () => {
      for (const a of agents) await a.agent.syncNow();
      return bed.nodes.every((n) => ourRules(n.ns).some((l) => !olderAgents.some((r) => l.includes(r)))) || undefined;
    }, 15_000);
    for (const n of bed.nodes) {
      expect(ourRules(n.ns).length, ourRules(n.ns).slice(0, 4).join("\n")).toBe(2);
      expect(ourRules(n.ns)).toEqual([`-A FORWARD -s ${merged} -m comment --comment "${COMMENT}" -j ACCEPT`, `-A FORWARD -d ${merged} -m comment --comment "${COMMENT}" -j ACCEPT`]);
      // Placement as before: after kube-proxy's jump, and in front of a final REJECT.
      const rules = iptables(n.ns, "-S", "FORWARD").split("\n").filter((l) => l.startsWith("-A"));
      expect(rules.findIndex((l) => l.includes(COMMENT))).toBeGreaterThan(rules.indexOf("-A FORWARD -j KUBE-SERVICES"));
      if (finalReject) expect(rules.at(-1)).toBe("-A FORWARD -j REJECT --reject-with icmp-host-prohibited");
    }
    pods.push(addPod(n1!.ns, agents[0]!.confDir, `${tag}a`), addPod(n1!.ns, agents[0]!.confDir, `${tag}b`), addPod(n2!.ns, agents[1]!.confDir, `${tag}c`));
    const [a, b, c] = pods;
    expect(ping(a!.ns, c!.ips[0]!)).toBe(true); // across nodes
    expect(ping(c!.ns, a!.ips[0]!)).toBe(true);
    expect(ping(a!.ns, b!.ips[0]!)).toBe(true); // on one node's bridge
    // A second full pass changes nothing.
    await agents[0]!.agent.syncNow();
    expect(ourRules(n1!.ns)).toHaveLength(2);
  });
});
