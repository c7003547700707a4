import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping } from "../../src/localcluster/udp-probe.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { emptyCluster } from "../harness/cluster-objects.js";

// A firewall that keeps its rules in an nft table of its own, on the forward hook beside podnet's: podnet cannot
// accept pod traffic there, so it follows pod packets through the table and says what is dropped.
const fx = useControlPlane();
const sysctlsReady = async (name: string) => (await conditionsOf(fx.api(), name)).find((c) => c.type === "SysctlsReady");
const ready = async (name: string) => (await conditionsOf(fx.api(), name)).find((c) => c.type === "Ready");

// firewalld's forward chain (filter_FORWARD in `table inet firewalld`, as firewalld 1.x lists it): what no zone
// accepts is rejected. Zone dispatch cut to its heart: an ingress interface or source sent to the trusted zone's chain.
const firewalldTable = `table inet firewalld {
  chain filter_FORWARD {
    type filter hook forward priority filter + 10; policy accept;
    ct state established,related accept
    ct status dnat accept
    iifname "lo" accept
    ct state invalid drop
    jump filter_FORWARD_dispatch
    reject with icmpx admin-prohibited
  }
  chain filter_FORWARD_dispatch {
  }
  chain filter_FWD_trusted {
    accept
  }
}
`;

describe.skipIf(!isRoot())("firewalld's nftables table on the forward hook (rung 3)", () => {
  const tag = "rf";
  const segment = 163;
  let bed: NetBed;
  const agents: TestAgent[] = [];
  const pods: Pod[] = [];
  const nft = (ns: string, ...args: string[]) => execFileSync("ip", ["netns", "exec", ns, "nft", ...args], { encoding: "utf8", input: args.includes("-f") ? firewalldTable : undefined });
  const record = `10-${segment}-1-0-24`;

  beforeAll(async () => {
    bed = createNetBed(tag, 2, segment);
    for (const [i, n] of bed.nodes.entries()) {
      nft(n.ns, "-f", "-");
      await putNodeCidr(fx.api(), `${tag}${i + 1}`, `10.${segment}.${i + 1}.0/24`, [n.ip]);
    }
    for (const [i, n] of bed.nodes.entries()) agents.push(await startAgent(fx, n, { "node-name": `${tag}${i + 1}` }));
    for (const a of agents) await a.agent.syncNow();
    pods.push(addPod(bed.nodes[0]!.ns, agents[0]!.confDir, `${tag}a`), addPod(bed.nodes[0]!.ns, agents[0]!.confDir, `${tag}b`), addPod(bed.nodes[1]!.ns, agents[1]!.confDir, `${tag}c`));
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    for (const a of agents) await a.stop();
    bed?.destroy();
    await emptyCluster(fx.api());
  });
  const reachable = () => {
    const [a, b, c] = pods;
    return { acrossNodes: ping(a!.ns, c!.ips[0]!), sameNode: ping(a!.ns, b!.ips[0]!), back: ping(c!.ns, a!.ips[0]!) };
  };
  const reported = (reason: string, status: string) => waitFor(`SysctlsReady ${status} ${reason}`, async () => {
    const s = await sysctlsReady(record);
    return s?.reason === reason && s.status === status ? s : undefined;
  }, 15_000);

  it("with the pod network in no zone, pods cannot talk, and SysctlsReady and Ready say why: the table, the chain and what lets pods through", async () => {
    expect(reachable()).toEqual({ acrossNodes: false, sameNode: false, back: false });
    const sysctls = await reported("ForwardDroppedByOtherTable", "False");
    expect(sysctls.message).toContain("nft table inet firewalld, chain filter_FORWARD (forward hook) drops by default and drops IPv4 between pods of this node, "
      + "IPv4 from this node's pods to other nodes, IPv4 from other nodes to this node's pods");
    expect(sysctls.message).toContain(`--add-interface=podnet0 --add-source=10.${segment}.1.0/24 --add-source=10.${segment}.2.0/24`);
    expect(await ready(record)).toMatchObject({ status: "False", reason: "ForwardDroppedByOtherTable" });
  });

  it("with podnet0 alone trusted, what comes in from other nodes is still rejected, and only that is reported", async () => {
    for (const n of bed.nodes) nft(n.ns, "add", "rule", "inet", "firewalld", "filter_FORWARD_dispatch", "iifname", "podnet0", "goto", "filter_FWD_trusted");
    expect(reachable()).toEqual({ acrossNodes: false, sameNode: true, back: false });
    const sysctls = await waitFor("only the way in reported", async () => {
      const s = await sysctlsReady(record);
      return s?.message.includes("drops IPv4 from other nodes to this node's pods") && !s.message.includes("between pods of this node") ? s : undefined;
    }, 15_000);
    expect(sysctls).toMatchObject({ status: "False", reason: "ForwardDroppedByOtherTable" });
  });

  it("with the pod network a trusted source as well, pods reach each other and nothing is reported: no false alarm", async () => {
    for (const n of bed.nodes) nft(n.ns, "add", "rule", "inet", "firewalld", "filter_FORWARD_dispatch", "ip", "saddr", `10.${segment}.0.0/16`, "goto", "filter_FWD_trusted");
    expect(reachable()).toEqual({ acrossNodes: true, sameNode: true, back: true });
    const sysctls = await reported("Set", "True");
    expect(sysctls.message).not.toContain("firewalld");
    await waitFor("Ready", async () => ((await ready(record))?.status === "True" ? true : undefined), 10_000);
  });
});
