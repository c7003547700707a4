import { execFileSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { crdSources, renderCrdYaml } from "../../src/crds/generate.js";
import { applyStatus, installCrds, podnetResource } from "../../src/lib/k8s.js";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { createNetBed, ipJson, isRoot, type BedNode, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping } from "../../src/localcluster/udp-probe.js";
import { HOLD_DOWN_MS } from "../../src/node-agent/record-hold.js";
import { putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

/**
 * A NodeCIDR that vanishes while Allocated (deleted by hand, with its CRD, by an uninstall) is no departure: the
 * controller retires a gone Node's record by marking it Released first. Agents must not tear pod networking down
 * for such an absence: everything here is encapsulated (--overlay=vxlan), so podnet.vxlan, its entries and the
 * nft VXLAN filter are at stake as well as the routes.
 */
const fx = useControlPlane();
const nodecidrs = podnetResource("nodecidrs");
let bed: NetBed;
const agents = new Map<string, TestAgent>();
const pods: Pod[] = [];
const FLAGS = { overlay: "vxlan" };
const cidrOf = (i: number) => `10.243.${i}.0/24`;
const routes = (n: BedNode) => ipJson<Array<{ dst: string }>>(n.ns, "route", "show", "proto", "249").map((r) => r.dst).sort();
const hasVxlan = (n: BedNode) => ipJson<unknown[]>(n.ns, "link", "show", "type", "vxlan").length === 1;
const fdb = (n: BedNode) => (JSON.parse(execFileSync("bridge", ["-n", n.ns, "-json", "fdb", "show", "dev", "podnet.vxlan"], { encoding: "utf8" }) || "[]") as Array<{ dst?: string }>)
  .flatMap((f) => (f.dst ? [f.dst] : [])).sort();
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const node = (i: number) => bed.nodes[i - 1]!;
const deleteRecord = (cidr: string) => fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: cidr.replace(/[.:/]/g, "-") });

/** Polls n1's routes until `stop()`; every poll in which `dst` was missing is counted. */
function watchRoute(n: BedNode, dst: string): { stop(): Promise<{ polls: number; missing: number }> } {
  let on = true;
  const seen = { polls: 0, missing: 0 };
  const loop = (async () => {
    while (on) {
      seen.polls++;
      if (!routes(n).includes(dst)) seen.missing++;
      await pause(5);
    }
  })();
  return { stop: async () => { on = false; await loop; return seen; } };
}

async function passes(agent: TestAgent, count: number): Promise<void> {
  const target = agent.agent.syncs + count;
  await waitFor(`${count} passes`, async () => (agent.agent.syncs >= target ? true : undefined), 15_000);
}

describe.skipIf(!isRoot())("node agent: NodeCIDRs that vanish without a release (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("vh", 3, 57);
    for (const i of [1, 2, 3]) await putNodeCidr(fx.api(), node(i).name, cidrOf(i), [node(i).ip]);
    for (const i of [1, 2]) agents.set(node(i).name, await startAgent(fx, node(i), FLAGS));
    await waitFor("routes and conflists on n1 and n2", async () => ([1, 2].every((i) => routes(node(i)).length === 2
      && existsSync(join(agents.get(node(i).name)!.confDir, "10-podnet.conflist"))) ? true : undefined), 20_000);
    for (const i of [1, 2]) pods.push(addPod(node(i).ns, agents.get(node(i).name)!.confDir, `vh-${i}`));
    expect(ping(pods[0]!.ns, pods[1]!.ips[0]!)).toBe(true);
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    for (const a of agents.values()) await a.stop();
    bed?.destroy();
  });

  it("keeps a peer's route while its hand-deleted record is restored within the hold-down: no withdrawal seen in the kernel", async () => {
    const watch = watchRoute(node(1), cidrOf(2));
    await deleteRecord(cidrOf(2));
    await pause(300); // the controller takes milliseconds; an agent's pass follows an event within ~10 ms
    await putNodeCidr(fx.api(), node(2).name, cidrOf(2), [node(2).ip]);
    await pause(1_000);
    const seen = await watch.stop();
    expect(seen.polls).toBeGreaterThan(20);
    expect(seen.missing).toBe(0);
    expect(fdb(node(1))).toContain(node(2).ip);
  });

  it("removes a Released peer's route at once, as before, and a deleted one not restored after the hold-down", async () => {
    const released = performance.now();
    await applyStatus(fx.api(), "nodecidrs", cidrOf(3).replace(/[.:/]/g, "-"), "NodeCIDR", { phase: "Released" });
    await waitFor("Released peer's route gone", async () => (routes(node(1)).includes(cidrOf(3)) ? undefined : true), 10_000);
    expect(performance.now() - released).toBeLessThan(HOLD_DOWN_MS);
    await deleteRecord(cidrOf(3)); // the cooldown's end: nothing more to do

    await putNodeCidr(fx.api(), "gone", cidrOf(4), ["192.168.57.50"]); // nodes that are not in the bed
    await waitFor("the departing peer's route", async () => (routes(node(1)).includes(cidrOf(4)) ? true : undefined), 10_000);
    const deleted = performance.now();
    await deleteRecord(cidrOf(4));
    await pause(HOLD_DOWN_MS - 1_500);
    expect(routes(node(1))).toContain(cidrOf(4));
    await waitFor("deleted peer's route gone after the hold-down", async () => (routes(node(1)).includes(cidrOf(4)) ? undefined : true), 10_000);
    expect(performance.now() - deleted).toBeGreaterThanOrEqual(HOLD_DOWN_MS);
    expect(routes(node(1))).toEqual([cidrOf(2)]);
    expect(fdb(node(1))).toEqual([node(2).ip]);
  });

  it("keeps routes, podnet.vxlan and pod traffic while the CRDs are deleted, and converges once they and the records are back", async () => {
    for (const name of ["nodecidrs.podnet.io", "podcidrpools.podnet.io"]) await fx.api().apiext.deleteCustomResourceDefinition({ name });
    await waitFor("CRDs gone and the agents' caches empty", async () => {
      const left = (await fx.api().apiext.listCustomResourceDefinition()).items.length;
      return left === 0 && [...agents.values()].every((a) => a.agent.records.cache.size === 0) ? true : undefined;
    }, 30_000);
    for (const a of agents.values()) await passes(a, 3); // resync 1 s: full passes among them
    for (const i of [1, 2]) {
      expect(routes(node(i))).toEqual([cidrOf(3 - i)]);
      expect(hasVxlan(node(i))).toBe(true);
      expect((await agents.get(node(i).name)!.agent.metrics.removalsHeld.get()).values[0]?.value).toBe(1);
    }
    expect(ping(pods[0]!.ns, pods[1]!.ips[0]!)).toBe(true);

    await installCrds(fx.api(), crdSources.map(renderCrdYaml));
    for (const i of [1, 2]) await putNodeCidr(fx.api(), node(i).name, cidrOf(i), [node(i).ip]);
    await waitFor("agents list the records again", async () => ([...agents.values()].every((a) => a.agent.records.cache.size === 2) ? true : undefined), 60_000);
    await waitFor("removals resume", async () => ([...agents.values()].every((a) => a.agent.hold.wakeAt === undefined && a.agent.lastOutcome?.routes.desired === 1) ? true : undefined), 15_000);
    expect(routes(node(1))).toEqual([cidrOf(2)]);
    expect(ping(pods[0]!.ns, pods[1]!.ips[0]!)).toBe(true);
  }, 120_000);

  it("keeps the routes present when restarted with an empty NodeCIDR list and its conflist on disk, and removes what stays unnamed once its own record is back", async () => {
    await putNodeCidr(fx.api(), "stale", cidrOf(5), ["192.168.57.51"]);
    await waitFor("the stale peer's route", async () => (routes(node(1)).includes(cidrOf(5)) ? true : undefined), 10_000);
    const before = routes(node(1));
    // The agent restarts; the node's disk stays, and its conflist says this node had a pod CIDR.
    const previous = agents.get(node(1).name)!;
    await previous.agent.stop();
    agents.delete(node(1).name);
    // An uninstall without the cleanup, its CRDs deleted and reinstalled: no NodeCIDR at all.
    const all = await fx.api().custom.listClusterCustomObject(nodecidrs) as { items: Array<{ metadata: { name: string } }> };
    for (const r of all.items) await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: r.metadata.name });
    const agent = await startAgent(fx, node(1), { ...FLAGS, "cni-conf-dir": previous.confDir, "ipam-data-dir": join(previous.dir, "ipam") });
    agents.set(node(1).name, { ...agent, stop: async () => { await agent.stop(); rmSync(previous.dir, { recursive: true, force: true }); } });
    await passes(agent, 3);
    expect(agent.agent.records.cache.size).toBe(0);
    expect(routes(node(1))).toEqual(before);
    expect(before).toEqual(expect.arrayContaining([cidrOf(2), cidrOf(5)]));
    expect(hasVxlan(node(1))).toBe(true);
    expect(ping(pods[0]!.ns, pods[1]!.ips[0]!)).toBe(true);

    // The controller comes up: this node's record first, its peer's a second later. No withdrawal meanwhile.
    const watch = watchRoute(node(1), cidrOf(2));
    await putNodeCidr(fx.api(), node(1).name, cidrOf(1), [node(1).ip]);
    await pause(1_000);
    await putNodeCidr(fx.api(), node(2).name, cidrOf(2), [node(2).ip]);
    await waitFor("the record nobody restored loses its route", async () => (routes(node(1)).includes(cidrOf(5)) ? undefined : true), HOLD_DOWN_MS + 10_000);
    expect((await watch.stop()).missing).toBe(0);
    expect(routes(node(1))).toEqual([cidrOf(2)]);
    expect(ping(pods[0]!.ns, pods[1]!.ips[0]!)).toBe(true);
  }, 60_000);
});
