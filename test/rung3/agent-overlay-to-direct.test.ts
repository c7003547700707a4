import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mergePatch, podnetResource } from "../../src/lib/k8s.js";
import { createNetBed, ipJson, isRoot, type BedNode, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

// A peer reached through the tunnel becomes a neighbour (its node IP changed to one on this node's subnet). Only
// n1 runs: the peer is a NodeCIDR, not a namespace, since only n1's kernel is looked at.
const fx = useControlPlane();
let bed: NetBed;
let agent: TestAgent | undefined;
let monitor: ChildProcess | undefined;
const PEER_CIDR = "10.247.2.0/24";
type JsonRoute = { dst: string; gateway?: string; dev: string };
const podnetRoutes = (ns: string) => ipJson<JsonRoute[]>(ns, "route", "show", "proto", "249").map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}`);

/** `ip monitor` lines in the order the kernel reported them. */
function watchKernel(ns: string): { lines: string[]; ready: Promise<void> } {
  const lines: string[] = [];
  monitor = spawn("ip", ["-n", ns, "-o", "monitor", "route", "neigh"], { stdio: ["ignore", "pipe", "ignore"] });
  let partial = "";
  monitor.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    const all = (partial + chunk).split("\n");
    partial = all.pop()!;
    lines.push(...all);
  });
  // No readiness line: give it a moment to subscribe.
  return { lines, ready: new Promise((resolve) => setTimeout(resolve, 300)) };
}

describe.skipIf(!isRoot())("node agent: a peer moving from the overlay to a direct route (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("od", 1, 62);
    const n1 = bed.nodes[0]!;
    await putNodeCidr(fx.api(), n1.name, "10.247.1.0/24", [n1.ip]);
    await putNodeCidr(fx.api(), "peer", PEER_CIDR, ["10.62.0.50"]); // behind a router: through podnet.vxlan
    agent = await startAgent(fx, n1);
    await waitFor("the peer through the tunnel", async () =>
      (podnetRoutes(n1.ns).includes(`${PEER_CIDR} via 10.247.2.0 dev podnet.vxlan`) ? true : undefined), 20_000);
  });
  afterAll(async () => {
    monitor?.kill();
    await agent?.stop();
    bed?.destroy();
  });

  it("moves the route before it removes the tunnel's neighbour entry for it", async () => {
    const n1: BedNode = bed.nodes[0]!;
    expect(ipJson<Array<{ dst: string }>>(n1.ns, "neigh", "show", "dev", "podnet.vxlan").map((n) => n.dst)).toEqual(["10.247.2.0"]);
    const { lines, ready } = watchKernel(n1.ns);
    await ready;
    const peerIp = "192.168.62.50"; // on n1's subnet: a neighbour now
    await fx.api().custom.patchClusterCustomObject({ ...podnetResource("nodecidrs"), name: "10-247-2-0-24", body: { spec: { nodeIPs: [peerIp] } } }, mergePatch());
    await waitFor("the neighbour entry gone", async () => (lines.some((l) => l.startsWith("Deleted 10.247.2.0 dev podnet.vxlan")) ? true : undefined), 15_000);
    expect(podnetRoutes(n1.ns)).toEqual([`${PEER_CIDR} via ${peerIp} dev eth0`]);
    const moved = lines.findIndex((l) => l.startsWith(`${PEER_CIDR} `) && l.includes(`via ${peerIp} dev eth0`));
    // The entry turns FAILED as `neigh del` takes it, just before the deletion is reported.
    const unneighboured = lines.findIndex((l) => /^(Deleted )?10\.247\.2\.0 dev podnet\.vxlan/.test(l));
    expect(moved, lines.join("\n")).toBeGreaterThanOrEqual(0);
    expect(moved, lines.join("\n")).toBeLessThan(unneighboured);
  });
});
