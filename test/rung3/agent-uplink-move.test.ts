import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { createNetBed, ipJson, isRoot, type BedNode, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping } from "../../src/localcluster/udp-probe.js";
import { putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

// The node's address moves to another interface while the agent runs: the user bridges eth0 into br0 (for VMs,
// say). Direct routes and their nexthops must follow the address; the kernel keeps a nexthop object on eth0.
const fx = useControlPlane();
let bed: NetBed;
const agents: TestAgent[] = [];
const pods: Pod[] = [];
const cidrs = (i: number) => [`10.246.${i}.0/24`, `fd00:10:246:${i}::/64`];
type JsonRoute = { dst: string; gateway?: string; dev: string };
const podnetRoutes = (ns: string) => [4, 6].flatMap((f) => ipJson<JsonRoute[]>(ns, `-${f}`, "route", "show", "proto", "249"))
  .map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}`).sort();
const nexthopDevices = (ns: string) => [...new Set(ipJson<Array<{ dev?: string }>>(ns, "nexthop", "show").map((n) => n.dev))];

/** One `ip -batch`, so no pass sees the address half-moved (such a pass would route the peer another way first). */
function bridgeUplink(n: BedNode): void {
  const script = [
    "link add br0 type bridge", "link set br0 up",
    `addr add ${n.ip}/24 dev br0`, `addr add ${n.ip6}/64 dev br0 nodad`,
    `addr del ${n.ip}/24 dev eth0`, `addr del ${n.ip6}/64 dev eth0`,
    "link set eth0 master br0",
  ].join("\n");
  execFileSync("ip", ["-n", n.ns, "-batch", "-"], { input: `${script}\n` });
}

describe.skipIf(!isRoot())("node agent: direct routes follow the node's address to another interface (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("um", 2, 63);
    for (const [i, n] of bed.nodes.entries()) for (const c of cidrs(i + 1)) await putNodeCidr(fx.api(), n.name, c, [n.ip, n.ip6]);
    for (const n of bed.nodes) agents.push(await startAgent(fx, n));
    await waitFor("routes and a conflist on both nodes", async () =>
      (bed.nodes.every((n) => podnetRoutes(n.ns).length === 2) && agents.every((a) => existsSync(join(a.confDir, "10-podnet.conflist"))) ? true : undefined), 20_000);
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    for (const a of agents) await a.stop();
    bed?.destroy();
  });

  it("moves n1's routes and nexthops from eth0 to br0 once eth0 is bridged, and pods reach each other again, both families", async () => {
    const [n1, n2] = bed.nodes as [BedNode, BedNode];
    const a = addPod(n1.ns, agents[0]!.confDir, "uma");
    const b = addPod(n2.ns, agents[1]!.confDir, "umb");
    pods.push(a, b);
    expect(podnetRoutes(n1.ns)).toEqual([`10.246.2.0/24 via ${n2.ip} dev eth0`, `fd00:10:246:2::/64 via ${n2.ip6} dev eth0`]);
    for (const ip of b.ips) expect(ping(a.ns, ip)).toBe(true);

    bridgeUplink(n1);
    await agents[0]!.agent.syncNow(); // a resync, besides the passes the address events wake
    const moved = [`10.246.2.0/24 via ${n2.ip} dev br0`, `fd00:10:246:2::/64 via ${n2.ip6} dev br0`];
    await waitFor("n1's routes on br0", async () => (JSON.stringify(podnetRoutes(n1.ns)) === JSON.stringify(moved) ? true : undefined), 15_000)
      .catch(() => expect(podnetRoutes(n1.ns)).toEqual(moved));
    expect(nexthopDevices(n1.ns)).toEqual(["br0"]); // none left behind on eth0
    for (const ip of b.ips) expect(ping(a.ns, ip)).toBe(true);
    for (const ip of a.ips) expect(ping(b.ns, ip)).toBe(true);
    // Converged: a further pass plans nothing (the device read back matches the one planned).
    expect((await agents[0]!.agent.syncNow()).routes).toMatchObject({ added: 0, replaced: 0, deleted: 0, installed: 2 });
  });
});
