import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cidrObjectName } from "../../src/lib/cidr.js";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { createNetBed, ipIn, ipJson, isRoot, type BedNode, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping } from "../../src/localcluster/udp-probe.js";
import { vtepMac } from "../../src/node-agent/overlay-plan.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

// IPv6 underlay addresses whose derived VTEP MACs are the same (4 bytes of a SHA-256 each): one forwarding entry
// for two peers. n3 (the higher address) is in the cluster first; n2 (the lower) joins. Every node's tunnel
// goes through podnet.vxlan (--overlay=vxlan), so the one L2 segment of the bed is enough.
const fx = useControlPlane();
const [LOW, HIGH] = ["fd00:77::3828", "fd00:77::c366"];
const MAC = "0e:50:bc:e8:32:e0";
let bed: NetBed;
const agents: TestAgent[] = [];
const pods: Pod[] = [];
const cidr = (i: number) => `fd00:10:248:${i}::/64`;
const node = (name: string): BedNode => bed.nodes.find((n) => n.name === name)!;
const overlayRoutes = (ns: string) => ipJson<Array<{ dst: string; dev: string }>>(ns, "-6", "route", "show", "proto", "249").filter((r) => r.dev === "podnet.vxlan").map((r) => r.dst);
const fdb = (ns: string) => (JSON.parse(execFileSync("bridge", ["-n", ns, "-json", "fdb", "show", "dev", "podnet.vxlan"], { encoding: "utf8" }) || "[]") as Array<{ mac: string; dst?: string }>)
  .filter((f) => f.dst).map((f) => `${f.mac} ${f.dst}`);
const routesProgrammed = async (i: number) => (await conditionsOf(fx.api(), cidrObjectName(cidr(i)))).find((c) => c.type === "RoutesProgrammed");

describe.skipIf(!isRoot())("peers whose IPv6 underlay addresses give one VTEP MAC (rung 3)", () => {
  beforeAll(async () => {
    expect(vtepMac(LOW)).toBe(MAC);
    expect(vtepMac(HIGH)).toBe(MAC);
    bed = createNetBed("mc", 3, 77);
    ipIn(node("n2").ns, "-6", "addr", "add", `${LOW}/64`, "dev", "eth0", "nodad");
    ipIn(node("n3").ns, "-6", "addr", "add", `${HIGH}/64`, "dev", "eth0", "nodad");
    await putNodeCidr(fx.api(), "n1", cidr(1), [node("n1").ip6]);
    await putNodeCidr(fx.api(), "n3", cidr(3), [HIGH]);
    for (const name of ["n1", "n3"]) agents.push(await startAgent(fx, node(name), { overlay: "vxlan" }));
    await waitFor("n1 and n3 tunnelled", async () => (overlayRoutes(node("n1").ns).length === 1 && overlayRoutes(node("n3").ns).length === 1) || undefined, 20_000);
    for (const a of agents) await a.agent.syncNow(); // the conflist too: a pass writes it after the routes
    pods.push(addPod(node("n1").ns, agents[0]!.confDir, "mca"), addPod(node("n3").ns, agents[1]!.confDir, "mcc"));
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    for (const a of agents) await a.stop();
    bed?.destroy();
  });

  it("a joining node with the same MAC is left out and reported by every node, naming both nodes and addresses; the node already tunnelled to keeps its pods reachable", async () => {
    const [a, c] = pods;
    expect(ping(a!.ns, c!.ips[0]!)).toBe(true);
    await putNodeCidr(fx.api(), "n2", cidr(2), [LOW]);
    agents.push(await startAgent(fx, node("n2"), { overlay: "vxlan" }));
    const n1Says = await waitFor("n1 reports n2", async () => {
      const cond = await routesProgrammed(1);
      return cond?.message.includes("node n2") ? cond : undefined;
    }, 15_000);
    expect(n1Says).toMatchObject({ status: "False", reason: "NodeUnreachable" });
    expect(n1Says.message).toContain(`node n2 (${cidr(2)}): its VXLAN MAC ${MAC} (derived from ${LOW}) is also node n3's (from ${HIGH}), which keeps the tunnel`);
    // One forwarding entry, still to n3; no route into the tunnel for n2's pods, whose frames would have gone to n3.
    await agents[0]!.agent.syncNow();
    expect(overlayRoutes(node("n1").ns)).toEqual([cidr(3)]);
    expect(fdb(node("n1").ns)).toEqual([`${MAC} ${HIGH}`]);
    expect(ping(a!.ns, c!.ips[0]!)).toBe(true);
    // n2 and n3 each find the other under their own MAC.
    const n3Says = await waitFor("n3 reports n2", async () => {
      const cond = await routesProgrammed(3);
      return cond?.message.includes("node n2") ? cond : undefined;
    }, 15_000);
    expect(n3Says.message).toContain(`its VXLAN MAC ${MAC} (derived from ${LOW}) is also this node's (from ${HIGH})`);
    const n2Says = await waitFor("n2 reports n3", async () => {
      const cond = await routesProgrammed(2);
      return cond?.message.includes("node n3") ? cond : undefined;
    }, 15_000);
    expect(n2Says.message).toContain(`its VXLAN MAC ${MAC} (derived from ${HIGH}) is also this node's (from ${LOW})`);
    // n2 still tunnels to n1, whose MAC it does not share (n1 has no route back to n2's pods: n2 stays cut off).
    expect(overlayRoutes(node("n2").ns)).toEqual([cidr(1)]);
  });
});
