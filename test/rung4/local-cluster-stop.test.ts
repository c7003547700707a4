import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { LocalCluster } from "../../src/localcluster/cluster.js";
import { isRoot, runNamespaces } from "../../src/localcluster/netbed.js";

/**
 * A stopped cluster refuses new nodes and pods: `make demo` went on to start node-4 while Ctrl-C tore it down,
 * and a node added after the teardown would leave its namespace, or a run dir recreated by mkdir, behind.
 */
describe.skipIf(!isRoot())("local cluster stopped (rung 4)", () => {
  it("refuses a node or a pod once stop() has begun, and creates nothing for them", async () => {
    const cluster = await LocalCluster.start({ nodes: 1, tag: "lcs", segment: 85 });
    const stopped = cluster.stop();
    await expect(cluster.addNode("node-late")).rejects.toThrow("node node-late not added: the cluster is stopping");
    expect(() => cluster.addPod("node-1", "node-1-late")).toThrow("pod node-1-late not added: the cluster is stopping");
    await stopped;
    await expect(cluster.addNode("node-later")).rejects.toThrow(/the cluster is stopping/);
    expect(runNamespaces().filter((n) => n.pid === process.pid && n.name.includes("-lcs-"))).toEqual([]);
    expect(existsSync(cluster.dir)).toBe(false);
  }, 120_000);
});
