import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cidrObjectName } from "../../src/lib/cidr.js";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { createNetBed, ipJson, isRoot, type BedNode, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping, sourceSeenBy } from "../../src/localcluster/udp-probe.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

// IPv6-only nodes on two subnets behind a router: VXLAN over an IPv6 underlay (the device's source is local6).
const fx = useControlPlane();
let bed: NetBed;
const agents: TestAgent[] = [];
const pods: Pod[] = [];
const cidr = (i: number) => `fd00:10:247:${i}::/64`;
const node = (name: string): BedNode => bed.nodes.find((n) => n.name === name)!;
const overlayRoutes = (ns: string) => ipJson<Array<{ dst: string; dev: string }>>(ns, "-6", "route", "show", "proto", "249").filter((r) => r.dev === "podnet.vxlan").map((r) => r.dst);
const routesProgrammed = async (name: string) => (await conditionsOf(fx.api(), name)).find((c) => c.type === "RoutesProgrammed");
const deviceIndex = (ns: string) => ipJson<Array<{ ifindex: number }>>(ns, "link", "show", "podnet.vxlan")[0]?.ifindex;

describe.skipIf(!isRoot())("node agent overlay over an IPv6 underlay (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("v6o", 0, 69, 2);
    bed.addNode("n1", 0);
    bed.addNode("n2", 1);
    for (const [i, n] of bed.nodes.entries()) await putNodeCidr(fx.api(), n.name, cidr(i + 1), [n.ip6]);
    for (const n of bed.nodes) agents.push(await startAgent(fx, n)); // resync every second: many full passes
    await waitFor("overlay routes", async () => (bed.nodes.every((n) => overlayRoutes(n.ns).length === 1) ? true : undefined), 20_000);
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    for (const a of agents) await a.stop();
    bed?.destroy();
  });

  it("keeps the device and its routes across full passes (it was re-created on every pass, its routes gone every other one)", async () => {
    const ns = node("n1").ns;
    const index = deviceIndex(ns);
    const passes = agents[0]!.agent.syncs;
    for (let sample = 0; sample < 8; sample++) {
      await new Promise((r) => setTimeout(r, 400));
      expect(overlayRoutes(ns), `sample ${sample}`).toEqual([cidr(2)]);
    }
    expect(agents[0]!.agent.syncs - passes).toBeGreaterThanOrEqual(2);
    expect(deviceIndex(ns)).toBe(index);
    const [link] = ipJson<Array<{ linkinfo: { info_data: { local6?: string } } }>>(ns, "-d", "link", "show", "podnet.vxlan");
    expect(link!.linkinfo.info_data.local6).toBe(node("n1").ip6);
  });

  it("carries pod traffic across the router, without NAT", async () => {
    const a = addPod(node("n1").ns, agents[0]!.confDir, "v6o-a");
    const b = addPod(node("n2").ns, agents[1]!.confDir, "v6o-b");
    pods.push(a, b);
    expect(ping(a.ns, b.ips[0]!)).toBe(true);
    expect(await sourceSeenBy(b.ns, b.ips[0]!, a.ns)).toBe(a.ips[0]);
  });

  it("an agent restarted with another VXLAN port re-creates the device and has its routes at once, not a resync later", async () => {
    await agents[0]!.agent.stop(); // the device and routes stay, as on a rolling update
    const index = deviceIndex(node("n1").ns);
    const restarted = await startAgent(fx, node("n1"), { "vxlan-port": "4789", "resync-period": "1h" });
    agents.push(restarted);
    await waitFor("first pass", async () => (restarted.agent.syncs > 0 ? true : undefined), 10_000);
    expect(deviceIndex(node("n1").ns)).not.toBe(index);
    expect(overlayRoutes(node("n1").ns)).toEqual([cidr(2)]);
  });

  it("a dual-stack node behind the router is reported unreachable from both ends, not routed to an endpoint it never listens on", async () => {
    // n3 sends and receives VXLAN on its IPv4 address; n1 has none. n1 used to route n3's pods through n3's IPv6
    // address, under a MAC n3's device does not have: a black hole while every condition said True.
    const n3 = bed.addNode("n3", 1);
    const n3Record = await putNodeCidr(fx.api(), "n3", cidr(3), [n3.ip, n3.ip6]);
    agents.push(await startAgent(fx, n3));
    const n1Routes = await waitFor("n1 reports n3", async () => {
      const c = await routesProgrammed(cidrObjectName(cidr(1)));
      return c?.message.includes("n3") ? c : undefined;
    }, 15_000);
    expect(n1Routes).toMatchObject({ status: "False", reason: "NodeUnreachable" });
    expect(n1Routes.message).toContain(`node n3 sends VXLAN from its IPv4 node IP ${n3.ip}, and this node has none`);
    const n3Routes = await waitFor("n3 reports n1", async () => {
      const c = await routesProgrammed(n3Record);
      return c?.reason === "NodeUnreachable" ? c : undefined;
    }, 15_000);
    expect(n3Routes.message).toContain("node n1 has no IPv4 node IP for the VXLAN underlay");
    expect(overlayRoutes(node("n1").ns)).toEqual([cidr(2)]);
    // n2 shares n3's segment: routed directly, whatever the underlay families.
    const n3Kernel = ipJson<Array<{ dst: string; gateway?: string; dev: string }>>(n3.ns, "-6", "route", "show", "proto", "249");
    expect(n3Kernel.map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}`)).toEqual([`${cidr(2)} via ${node("n2").ip6} dev eth0`]);
  });
});

