import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyStatus, podnetResource } from "../../src/lib/k8s.js";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

const fx = useControlPlane();
let bed: NetBed;
let agent: TestAgent | undefined;

const unavailable = { type: "NetworkUnavailable", status: "True", reason: "NoRouteCreated", message: "Node created without a route" };
/** kubectl delete node, and the kubelet registers it again: a new uid, NetworkUnavailable as a cloud sets it. */
async function registerAgain(node: { name: string; ip: string }): Promise<string> {
  await fx.api().core.deleteNode({ name: node.name });
  const created = await fx.api().core.createNode({ body: { metadata: { name: node.name }, status: {
    addresses: [{ type: "InternalIP", address: node.ip }], conditions: [{ ...unavailable, lastTransitionTime: new Date() }] } } });
  return created.metadata!.uid!;
}
const heldGauge = async (a: TestAgent) => (await a.agent.metrics.removalsHeld.get()).values[0]?.value;
const networkUnavailable = async (name: string) =>
  (await fx.api().core.readNode({ name })).status?.conditions?.find((c) => c.type === "NetworkUnavailable")?.status;
const routes = (ns: string) => execFileSync("ip", ["-n", ns, "-4", "route", "show", "proto", "249"], { encoding: "utf8" });

// A Node deleted and registered again under its name while no controller runs: its predecessor's NodeCIDR still
// names it, Allocated, with the old Node's uid. The agent must not network pods from it (the controller releases
// it once back, and every pod started from it would be cut off), and takes the record made for this Node.
describe.skipIf(!isRoot())("a predecessor's NodeCIDR on a node registered again (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("pr", 3, 83);
    for (const n of bed.nodes) {
      await fx.api().core.createNode({ body: { metadata: { name: n.name }, status: {
        addresses: [{ type: "InternalIP", address: n.ip }],
        conditions: [{ ...unavailable, lastTransitionTime: new Date() }],
      } } });
    }
  }, 60_000);
  afterAll(async () => {
    await agent?.stop();
    bed?.destroy();
  });

  it("writes no conflist, status or NetworkUnavailable from it, routes its peers, and uses the record made for this Node once it comes", async () => {
    const [n1, n2] = bed.nodes;
    const uid = (await fx.api().core.readNode({ name: n1!.name })).metadata!.uid!;
    const old = await putNodeCidr(fx.api(), n1!.name, "10.247.1.0/24", ["192.168.83.99"], "default", "uid-of-the-node-deleted-before");
    await putNodeCidr(fx.api(), n2!.name, "10.247.2.0/24", [n2!.ip]);
    agent = await startAgent(fx, n1!);
    await waitFor("route to the peer", async () => (routes(n1!.ns).includes("10.247.2.0/24") ? true : undefined), 15_000);
    for (let i = 0; i < 3; i++) await agent.agent.syncNow();
    const conflist = join(agent.confDir, "10-podnet.conflist");
    expect(existsSync(conflist)).toBe(false);
    expect(routes(n1!.ns)).not.toContain("10.247.1.0/24");
    expect((await conditionsOf(fx.api(), old)).map((c) => c.type)).toEqual([]);
    expect(await networkUnavailable(n1!.name)).toBe("True");

    // The controller is back: it releases the predecessor's record and gives this Node its own.
    await applyStatus(fx.api("podnet-controller"), "nodecidrs", old, "NodeCIDR", { phase: "Released", releasedAt: new Date().toISOString() });
    const own = await putNodeCidr(fx.api(), n1!.name, "10.247.3.0/24", [n1!.ip], "default", uid);
    await waitFor("conflist from the Node's own record", async () => (existsSync(conflist) && readFileSync(conflist, "utf8").includes("10.247.3.0/24") ? true : undefined), 15_000);
    expect(readFileSync(conflist, "utf8")).not.toContain("10.247.1.0/24");
    await waitFor("NetworkUnavailable cleared", async () => ((await networkUnavailable(n1!.name)) === "False" ? true : undefined), 15_000);
    await waitFor("conditions on the Node's own record", async () => ((await conditionsOf(fx.api(), own)).some((c) => c.type === "CNIConfigured" && c.status === "True") ? true : undefined), 15_000);
    expect((await conditionsOf(fx.api(), old)).map((c) => c.type)).toEqual([]);
  }, 60_000);

  it("learns the new uid when its own Node is registered again while it runs, and takes the record made for the new Node", async () => {
    const [, n2] = bed.nodes;
    await agent?.stop();
    await fx.api().custom.deleteClusterCustomObject({ ...podnetResource("nodecidrs"), name: "10-247-2-0-24" }); // the first test's, with no uid
    const uidOf = async () => (await fx.api().core.readNode({ name: n2!.name })).metadata!.uid!;
    const first = await putNodeCidr(fx.api(), n2!.name, "10.247.4.0/24", [n2!.ip], "default", await uidOf());
    agent = await startAgent(fx, n2!);
    const conflist = join(agent.confDir, "10-podnet.conflist");
    await waitFor("conflist from the first Node's record", async () => (existsSync(conflist) && readFileSync(conflist, "utf8").includes("10.247.4.0/24") ? true : undefined), 15_000);
    // kubectl delete node, and the kubelet registers it again: a new uid. The controller releases the first record
    // and makes one for the new Node.
    await fx.api().core.deleteNode({ name: n2!.name });
    await fx.api().core.createNode({ body: { metadata: { name: n2!.name }, status: { addresses: [{ type: "InternalIP", address: n2!.ip }] } } });
    await applyStatus(fx.api("podnet-controller"), "nodecidrs", first, "NodeCIDR", { phase: "Released", releasedAt: new Date().toISOString() });
    await putNodeCidr(fx.api(), n2!.name, "10.247.5.0/24", [n2!.ip], "default", await uidOf());
    await waitFor("conflist from the new Node's record", async () => (readFileSync(conflist, "utf8").includes("10.247.5.0/24") ? true : undefined), 15_000);
  }, 60_000);

  // The controller is down from here on: nothing releases n3's first record.
  it("an agent restarted on a node registered again removes the conflist it wrote from the earlier Node's record, and holds nothing", async () => {
    const n3 = bed.nodes[2]!;
    await agent?.stop();
    await putNodeCidr(fx.api(), n3.name, "10.247.6.0/24", [n3.ip], "default", (await fx.api().core.readNode({ name: n3.name })).metadata!.uid!);
    const before = await startAgent(fx, n3);
    const conflist = join(before.confDir, "10-podnet.conflist");
    await waitFor("conflist from the first Node's record", async () => (existsSync(conflist) ? true : undefined), 15_000);
    await before.agent.stop(); // its directories stay: the node's disk
    await registerAgain(n3);
    agent = await startAgent(fx, n3, { "cni-conf-dir": before.confDir, "ipam-data-dir": join(before.dir, "ipam") });
    await waitFor("the earlier Node's conflist removed", async () => (existsSync(conflist) ? undefined : true), 15_000);
    for (let i = 0; i < 2; i++) await agent.agent.syncNow();
    expect(existsSync(conflist)).toBe(false);
    expect(await heldGauge(agent)).toBe(0); // the controller's state is there: no "gone without a release" hold
    expect(await networkUnavailable(n3.name)).toBe("True");
    await before.stop();
  }, 60_000);

  it("an agent running through its Node's re-registration stops using the earlier Node's record at once", async () => {
    const n3 = bed.nodes[2]!;
    await agent?.stop();
    await fx.api().custom.deleteClusterCustomObject({ ...podnetResource("nodecidrs"), name: "10-247-6-0-24" });
    await putNodeCidr(fx.api(), n3.name, "10.247.7.0/24", [n3.ip], "default", (await fx.api().core.readNode({ name: n3.name })).metadata!.uid!);
    agent = await startAgent(fx, n3);
    const conflist = join(agent.confDir, "10-podnet.conflist");
    await waitFor("conflist and NetworkUnavailable cleared", async () => (existsSync(conflist) && (await networkUnavailable(n3.name)) === "False" ? true : undefined), 15_000);
    await registerAgain(n3);
    await waitFor("the earlier Node's conflist removed", async () => (existsSync(conflist) ? undefined : true), 15_000);
    for (let i = 0; i < 2; i++) await agent.agent.syncNow();
    await new Promise((r) => setTimeout(r, 1_500)); // past a resync period: a status write would have gone out
    expect(await networkUnavailable(n3.name)).toBe("True"); // the new Node's, not cleared from the earlier one's record
    expect(await heldGauge(agent)).toBe(0);
  }, 60_000);
});
