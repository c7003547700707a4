import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { iperf } from "../../src/localcluster/iperf.js";
import { createNetBed, ipIn, ipJson, isRoot, type BedNode, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping, sourceSeenBy } from "../../src/localcluster/udp-probe.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

/**
 * Two nodes on one segment that see each other differently: n1 (a /24) holds n4's IP on-link and routes n4's
 * pods straight over eth0; n4 (a /32, as clouds hand out, reaching the segment through its gateway) counts n1
 * off-link and sends to n1's pods through podnet.vxlan. Both nodes filter reverse paths strictly (all, default
 * and eth0 at 1, as CIS-hardened hosts do): without loosening, each drops the other's pod traffic.
 */
const fx = useControlPlane();
let bed: NetBed;
const agents = new Map<string, TestAgent>();
const pods: Pod[] = [];
const node = (name: string): BedNode => bed.nodes.find((n) => n.name === name)!;
const podnetRoutes = (ns: string) => ipJson<Array<{ dst: string; dev: string }>>(ns, "route", "show", "proto", "249").map((r) => `${r.dst} dev ${r.dev}`);
const sysctl = (ns: string, key: string) => execFileSync("ip", ["netns", "exec", ns, "sysctl", "-n", key], { encoding: "utf8" }).trim();
const rpFilter = (ns: string, dev: string) => sysctl(ns, `net.ipv4.conf.${dev.replaceAll(".", "/")}.rp_filter`);
const droppedByRpFilter = (ns: string) => Number(/TcpExtIPReversePathFilter\s+(\d+)/.exec(execFileSync("ip", ["netns", "exec", ns, "nstat", "-az", "TcpExtIPReversePathFilter"], { encoding: "utf8" }))?.[1] ?? 0);

describe.skipIf(!isRoot())("node agent: strict reverse-path filtering between nodes that see each other differently (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("rpf", 0, 81, 2);
    const n1 = bed.addNode("n1", 0);
    const n4 = bed.addNode("n4", 0);
    // n4 keeps its address as a /32 and reaches everything through the segment's router.
    ipIn(n4.ns, "route", "del", "default");
    ipIn(n4.ns, "addr", "del", `${n4.ip}/24`, "dev", "eth0");
    ipIn(n4.ns, "addr", "add", `${n4.ip}/32`, "dev", "eth0");
    ipIn(n4.ns, "route", "add", "192.168.81.1", "dev", "eth0", "scope", "link");
    ipIn(n4.ns, "route", "add", "default", "via", "192.168.81.1");
    for (const n of [n1, n4]) for (const conf of ["all", "default", "eth0"]) execFileSync("ip", ["netns", "exec", n.ns, "sysctl", "-qw", `net.ipv4.conf.${conf}.rp_filter=1`]);
    await putNodeCidr(fx.api(), "n1", "10.244.1.0/24", [n1.ip]);
    await putNodeCidr(fx.api(), "n4", "10.244.4.0/24", [n4.ip]);
    for (const n of [n1, n4]) agents.set(n.name, await startAgent(fx, n));
    await waitFor("n1 routes n4's pods directly, n4 routes n1's through the tunnel, both Ready", async () => {
      if (!podnetRoutes(n1.ns).includes("10.244.4.0/24 dev eth0") || !podnetRoutes(n4.ns).includes("10.244.1.0/24 dev podnet.vxlan")) return undefined;
      for (const name of ["10-244-1-0-24", "10-244-4-0-24"]) if (!(await conditionsOf(fx.api(), name)).some((c) => c.type === "Ready" && c.status === "True")) return undefined;
      return true;
    }, 20_000);
    pods.push(addPod(n1.ns, agents.get("n1")!.confDir, "rpa"), addPod(n4.ns, agents.get("n4")!.confDir, "rpd"));
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    for (const a of agents.values()) await a.stop();
    bed?.destroy();
  });

  it("pods reach each other both ways, with their own addresses, and no packet is dropped by the reverse-path filter", async () => {
    const [a, d] = pods as [Pod, Pod];
    const dropsBefore = droppedByRpFilter(node("n1").ns) + droppedByRpFilter(node("n4").ns);
    expect({ aToD: ping(a.ns, d.ips[0]!), dToA: ping(d.ns, a.ips[0]!) }).toEqual({ aToD: true, dToA: true });
    expect(await sourceSeenBy(d.ns, d.ips[0]!, a.ns, 7731)).toBe(a.ips[0]);
    expect(await sourceSeenBy(a.ns, a.ips[0]!, d.ns, 7732)).toBe(d.ips[0]);
    expect(droppedByRpFilter(node("n1").ns) + droppedByRpFilter(node("n4").ns)).toBe(dropsBefore);
  });

  it("TCP from the tunnelling node's pod gets the tunnel's MSS although the answer comes back directly, unclamped", () => {
    const [a, d] = pods as [Pod, Pod];
    ipIn(d.ns, "route", "flush", "cache"); // no path MTU learned from earlier traffic
    // d's handshake leaves n4 through the tunnel (clamped on its way out); a's answer reaches n4 directly with
    // a's full MSS, and n4 clamps it on its way in: else d would send 1448-byte segments into a 1450 tunnel and
    // learn the tunnel's MTU only from n4's "fragmentation needed", after a retransmission.
    const fromD = iperf(a.ns, a.ips[0]!, d.ns, { bytes: "1M" });
    expect(fromD.mss).toBe(1450 - 20 - 20 - 12);
    const fromA = iperf(d.ns, d.ips[0]!, a.ns, { bytes: "1M" });
    expect(fromA.mss).toBe(1450 - 20 - 20 - 12); // d's answer left n4 through the tunnel, clamped
  });

  it("loosens only the tunnel, and the uplink of the node that tunnels; conf.all stays strict", () => {
    const [n1, n4] = [node("n1"), node("n4")];
    expect(rpFilter(n1.ns, "podnet.vxlan")).toBe("2"); // n4's pods arrive here, routed back over eth0
    expect(rpFilter(n4.ns, "eth0")).toBe("2"); // n1's pods arrive here, routed back through the tunnel
    expect(rpFilter(n4.ns, "podnet.vxlan")).toBe("2");
    expect(rpFilter(n1.ns, "eth0")).toBe("1"); // n1 tunnels to nobody: its uplink is left as it was
    for (const n of [n1, n4]) expect(rpFilter(n.ns, "all")).toBe("1");
  });

  it("puts a filter made strict again by hand back on the next full pass, and reports SysctlsReady", async () => {
    const n4 = node("n4");
    execFileSync("ip", ["netns", "exec", n4.ns, "sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=1"]);
    const [a, d] = pods as [Pod, Pod];
    expect(ping(a.ns, d.ips[0]!)).toBe(false);
    const outcome = await agents.get("n4")!.agent.syncNow();
    expect(outcome.sysctls.reversePathError).toBeUndefined();
    expect(rpFilter(n4.ns, "eth0")).toBe("2");
    expect(ping(a.ns, d.ips[0]!)).toBe(true);
    for (const name of ["10-244-1-0-24", "10-244-4-0-24"]) {
      const conds = await waitFor(`${name} SysctlsReady`, async () => (await conditionsOf(fx.api(), name)).find((c) => c.type === "SysctlsReady"), 15_000);
      expect(conds).toMatchObject({ status: "True" });
    }
  });
});
