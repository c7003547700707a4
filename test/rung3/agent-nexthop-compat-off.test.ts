import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNetBed, ipJson, isRoot, type BedNode, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

// net.ipv4.nexthop_compat_mode=0 (per namespace, both families; the kernel's default is 1, some hosts set 0): the
// kernel lists a route through a nexthop object by its id alone, no gateway, no device. n1 and n2 share a subnet,
// n3 sits behind a router: n1 holds direct and overlay routes, IPv4 and IPv6.
const fx = useControlPlane();
let bed: NetBed;
const agents: TestAgent[] = [];
const cidrs = (i: number) => [`10.251.${i}.0/24`, `fd00:10:251:${i}::/64`];
const node = (name: string): BedNode => bed.nodes.find((n) => n.name === name)!;

/** podnet's routes as "dst via gateway dev device", each resolved through the nexthop object it names. */
function podnetRoutes(ns: string): string[] {
  const nexthops = new Map(ipJson<Array<{ id: number; gateway?: string; dev?: string }>>(ns, "nexthop", "show").map((n) => [n.id, n]));
  return [4, 6].flatMap((f) => ipJson<Array<{ dst: string; nhid?: number; gateway?: string; dev?: string }>>(ns, `-${f}`, "route", "show", "proto", "249"))
    .map((r) => { const nh = r.nhid === undefined ? r : nexthops.get(r.nhid); return `${r.dst} via ${nh?.gateway} dev ${nh?.dev}`; }).sort();
}

describe.skipIf(!isRoot())("node agent on a host with nexthop_compat_mode=0 (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("nc", 0, 88, 2);
    bed.addNode("n1", 0);
    bed.addNode("n2", 0);
    bed.addNode("n3", 1);
    for (const n of bed.nodes) execFileSync("ip", ["netns", "exec", n.ns, "sysctl", "-qw", "net.ipv4.nexthop_compat_mode=0"]);
    for (const [i, n] of bed.nodes.entries()) for (const c of cidrs(i + 1)) await putNodeCidr(fx.api(), n.name, c, [n.ip, n.ip6]);
    for (const n of bed.nodes) agents.push(await startAgent(fx, n));
    await waitFor("routes on every node", async () => (bed.nodes.every((n) => podnetRoutes(n.ns).length === 4) ? true : undefined), 20_000);
  });
  afterAll(async () => {
    for (const a of agents) await a.stop();
    bed?.destroy();
  });

  it("lists routes by nexthop id only here, and a full pass after the first replaces nothing (both families, direct and overlay)", async () => {
    const n1 = node("n1");
    const listed = ipJson<Array<{ dst: string; nhid?: number; gateway?: string; dev?: string }>>(n1.ns, "-6", "route", "show", "proto", "249");
    expect(listed.every((r) => r.nhid !== undefined && r.gateway === undefined && r.dev === undefined)).toBe(true);
    await agents[0]!.agent.syncNow();
    const again = await agents[0]!.agent.syncNow();
    expect(again.routes).toMatchObject({ added: 0, replaced: 0, deleted: 0, installed: 4 });
    expect(again.routes.error).toBeUndefined();
    expect(podnetRoutes(n1.ns)).toEqual([
      `10.251.2.0/24 via ${node("n2").ip} dev eth0`,
      "10.251.3.0/24 via 10.251.3.0 dev podnet.vxlan",
      `fd00:10:251:2::/64 via ${node("n2").ip6} dev eth0`,
      "fd00:10:251:3::/64 via fd00:10:251:3:: dev podnet.vxlan",
    ]);
  });
});
