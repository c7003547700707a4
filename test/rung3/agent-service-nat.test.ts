import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { udpEchoServer, udpRoundTrip } from "../../src/localcluster/udp-probe.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

const fx = useControlPlane();
let bed: NetBed;
let agent: TestAgent;
const pods: Pod[] = [];
const VIP = "10.96.0.53";
const inNode = (...cmd: string[]) => execFileSync("ip", ["netns", "exec", bed.nodes[0]!.ns, ...cmd], { encoding: "utf8" }).trim();
const bridgeNf = () => inNode("sysctl", "-n", "net.bridge.bridge-nf-call-iptables");

// kube-proxy sends a Service's traffic to a backend by DNAT on the client's node. When client and backend share
// podnet's bridge, the backend's reply is switched straight back at layer 2; only br_netfilter hands it to
// conntrack, which turns its source back into the Service address the client is waiting for.
describe.skipIf(!isRoot())("a Service whose backend shares the client's node (rung 3: real bridge, conntrack, DNAT as kube-proxy does it)", () => {
  beforeAll(async () => {
    bed = createNetBed("sv", 1, 74);
    await putNodeCidr(fx.api(), bed.nodes[0]!.name, "10.244.40.0/24", [bed.nodes[0]!.ip]);
    agent = await startAgent(fx, bed.nodes[0]!);
    await waitFor("conflist written", async () => (existsSync(join(agent.confDir, "10-podnet.conflist")) ? true : undefined), 15_000);
    for (const name of ["client", "backend"]) pods.push(addPod(bed.nodes[0]!.ns, agent.confDir, name));
    // What kube-proxy (nftables mode) installs for a ClusterIP Service with one endpoint, reduced to the DNAT.
    execFileSync("ip", ["netns", "exec", bed.nodes[0]!.ns, "nft", "-f", "-"], { input: `table ip svc-test {
  chain prerouting { type nat hook prerouting priority dstnat; ip daddr ${VIP} udp dport 53 dnat to ${pods[1]!.ips[0]}:5353; }
}\n` });
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    await agent?.stop();
    bed?.destroy();
  });

  it("the agent turns bridged traffic through netfilter back on (it was off), and the client gets its answer from the Service address", async () => {
    inNode("sysctl", "-w", "net.bridge.bridge-nf-call-iptables=0"); // a host that never set it
    await waitFor("the next full pass sets it", async () => (bridgeNf() === "1" ? true : undefined), 10_000);
    const echo = await udpEchoServer(pods[1]!.ns, pods[1]!.ips[0]!, 5353);
    try {
      expect(udpRoundTrip(pods[0]!.ns, VIP, 53)).toBe(VIP);
    } finally {
      echo.stop();
    }
    const sysctls = (await conditionsOf(fx.api(), "10-244-40-0-24")).find((c) => c.type === "SysctlsReady");
    expect(sysctls).toMatchObject({ status: "True", reason: "Set" });
  });

  it("turned off after it was on, masquerade leaves no rule behind that would go on NATing pod traffic; the table goes once nothing needs it", async () => {
    const tables = () => inNode("nft", "list", "tables");
    const table = () => (tables().includes("inet podnet") ? inNode("nft", "list", "table", "inet", "podnet") : "");
    expect(table()).toContain("masquerade");
    for (const p of pods.splice(0)) deletePod(p); // their leases live in the directory of the agent being replaced
    await agent.stop();
    // The overlay (auto) still wants its MSS clamp: the table stays, without masquerade.
    agent = await startAgent(fx, bed.nodes[0]!, { masquerade: "false" });
    await waitFor("masquerade rules removed", async () => (table().includes("masquerade") ? undefined : true), 10_000);
    expect(table()).toContain("tcp option maxseg size set rt mtu");
    await waitFor("MasqueradeReady Disabled", async () => ((await conditionsOf(fx.api(), "10-244-40-0-24")).find((c) => c.type === "MasqueradeReady" && c.reason === "Disabled") ? true : undefined), 10_000);
    await agent.stop();
    agent = await startAgent(fx, bed.nodes[0]!, { masquerade: "false", overlay: "none" });
    await waitFor("table removed", async () => (tables().includes("inet podnet") ? undefined : true), 10_000);
  });
});

