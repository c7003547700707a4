import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { connectivityMatrix } from "../../src/demo/matrix.js";
import { LocalCluster } from "../../src/localcluster/cluster.js";
import { isRoot } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";

let cluster: LocalCluster;

describe.skipIf(!isRoot())("local cluster on two subnets behind a router, dual-stack: direct routes and VXLAN (rung 4)", () => {
  beforeAll(async () => {
    cluster = await LocalCluster.start({ nodes: 3, segments: 2, dualStack: true, tag: "e2r", segment: 81, releaseCooldown: "3s", resyncPeriod: "2s" });
    await cluster.waitReady(90_000);
  }, 150_000);
  afterAll(async () => { await cluster?.stop(); }, 60_000);
  afterEach((ctx) => { if (ctx.task.result?.state === "fail") console.error(cluster.logs()); });

  it("routes neighbours directly and the other subnet through VXLAN, in both families", () => {
    // node-1 and node-3 share 192.168.81.0/24; node-2 is alone on 192.168.82.0/24
    const routes = cluster.ownRoutes("node-1");
    expect(routes.filter((r) => r.endsWith("(vxlan)"))).toHaveLength(2); // node-2's IPv4 and IPv6 CIDRs
    expect(routes.filter((r) => r.includes("via 192.168.81.13") || r.includes("via fd00:81::13"))).toHaveLength(2);
    expect(cluster.ownRoutes("node-2").every((r) => r.endsWith("(vxlan)"))).toBe(true);
  });

  it("connects all pod pairs over IPv4 and IPv6 across the router without NAT", async () => {
    for (const n of cluster.nodes.keys()) for (const i of [1, 2]) cluster.addPod(n, `${n}-r${i}`);
    const matrix = await connectivityMatrix(cluster.pods);
    expect(matrix.cells).toHaveLength(24);
    expect(matrix.cells.flatMap((c) => c.families)).toHaveLength(48);
    expect(matrix.cells.filter((c) => !c.ok)).toEqual([]);
  });

  it("a node joining on the far subnet is reached through the overlay from every node; its agent reports its overlay routes", async () => {
    await cluster.addNode("node-4"); // round-robin: lands on 192.168.82.0/24 with node-2
    await cluster.waitReady(60_000);
    const cidr = (await cluster.nodeCidrs()).find((r) => r.spec.nodeName === "node-4" && r.spec.family === "IPv4")!.spec.cidr;
    expect(cluster.ownRoutes("node-1")).toContain(`${cidr} via ${cidr.replace("/24", "")} (vxlan)`);
    expect(cluster.ownRoutes("node-2").find((r) => r.startsWith(`${cidr} `))).toMatch(/via 192\.168\.82\.\d+$/);
    const own = await waitFor("node-4 status", async () => (await cluster.nodeCidrs()).find((r) => r.spec.cidr === cidr && r.status?.agent?.overlayRoutes !== undefined), 20_000);
    expect(own.status!.agent!.overlayRoutes).toBe(4); // node-1 and node-3, both families
  });
});
