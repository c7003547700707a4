import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNetBed, ipIn, ipJson, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { linkEventDevice } from "../../src/node-agent/link-watch.js";
import { putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

const fx = useControlPlane();
let bed: NetBed;
const agents: TestAgent[] = [];
const routes = (ns: string) => ipJson<Array<{ dst: string }>>(ns, "route", "show", "proto", "249").map((r) => r.dst).sort();

describe("linkEventDevice", () => {
  it.each([
    ["3: eth0@if7: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state LOWERLAYERDOWN", "eth0"],
    ["2: ens5: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 qdisc mq state UP", "ens5"],
    ["Deleted 9: veth1a2b3c4d@if2: <BROADCAST,MULTICAST> mtu 1500", "veth1a2b3c4d"],
    ["    link/ether 9e:12:1d:49:b5:46 brd ff:ff:ff:ff:ff:ff", undefined],
  ])("%s → %s", (line, device) => expect(linkEventDevice(line)).toBe(device));
});

// The kernel flushes nexthop objects, and the routes through them, from a device that loses its carrier, and does
// not restore them with the carrier. The resync is an hour away here: only the link watch can bring them back.
describe.skipIf(!isRoot())("node agent across an uplink carrier flap (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("lf", 2, 68);
    for (const [i, n] of bed.nodes.entries()) await putNodeCidr(fx.api(), n.name, `10.244.${90 + i}.0/24`, [n.ip]);
    for (const n of bed.nodes) agents.push(await startAgent(fx, n, { "resync-period": "1h" }));
    await waitFor("routes", async () => (bed.nodes.every((n) => routes(n.ns).length === 1) ? true : undefined), 15_000);
  });
  afterAll(async () => {
    for (const a of agents) await a.stop();
    bed?.destroy();
  });

  it("has its routes back moments after the carrier returns, and reports them missing meanwhile", async () => {
    const [n1] = bed.nodes;
    // The switch's end of n1's cable: n1's eth0 loses its carrier, as when a switch port or NIC resets.
    ipIn(bed.switches[0]!, "link", "set", "p1", "down");
    await waitFor("routes flushed by the kernel", async () => (routes(n1!.ns).length === 0 ? true : undefined), 5_000);
    await waitFor("reported", async () => (agents[0]!.agent.lastOutcome?.routes.error ? true : undefined), 5_000);
    ipIn(bed.switches[0]!, "link", "set", "p1", "up");
    await waitFor("routes back", async () => (routes(n1!.ns).length === 1 ? true : undefined), 5_000);
    await waitFor("clean pass", async () => (agents[0]!.agent.lastOutcome?.routes.error === undefined ? true : undefined), 5_000);
    expect(routes(n1!.ns)).toEqual(["10.244.91.0/24"]);
  });
});
