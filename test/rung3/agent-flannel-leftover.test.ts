import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { createNetBed, ipIn, ipJson, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping } from "../../src/localcluster/udp-probe.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

const fx = useControlPlane();
let bed: NetBed;
const agents: TestAgent[] = [];
const pods: Pod[] = [];
const RECORD = "10-232-1-0-24";

const condition = async (type: string) => (await conditionsOf(fx.api(), RECORD)).find((c) => c.type === type);
const networkUnavailable = async (node: string) => (await fx.api().core.readNode({ name: node })).status?.conditions?.find((c) => c.type === "NetworkUnavailable")?.status;
const routeDevice = (ns: string, ip: string) => ipJson<Array<{ dev?: string }>>(ns, "route", "get", ip)[0]?.dev;

// A node moved from flannel while it runs: podnet adopts node.spec.podCIDRs, so the node keeps its range, and
// flannel's bridge cni0 keeps the range's gateway address and connected route. The first pod gives podnet0 the
// same gateway, and the kernel keeps sending the range to cni0.
describe.skipIf(!isRoot())("a node with another plugin's bridge holding its pod CIDR (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("fm", 2, 82);
    const [n1, n2] = bed.nodes;
    // flannel's leftovers on n1: cni0 with the range's gateway, an old pod's veth keeping its carrier up.
    ipIn(n1!.ns, "link", "add", "cni0", "type", "bridge");
    ipIn(n1!.ns, "addr", "add", "10.232.1.1/24", "dev", "cni0");
    ipIn(n1!.ns, "link", "add", "vethfmold", "type", "veth", "peer", "name", "fmoldpod");
    ipIn(n1!.ns, "link", "set", "vethfmold", "master", "cni0", "up");
    ipIn(n1!.ns, "link", "set", "fmoldpod", "up");
    ipIn(n1!.ns, "link", "set", "cni0", "up");
    for (const [i, n] of [n1!, n2!].entries()) {
      // Registered with NetworkUnavailable True, as a cloud route controller does: podnet must not clear it on n1.
      await fx.api().core.createNode({ body: { metadata: { name: n.name }, status: {
        addresses: [{ type: "InternalIP", address: n.ip }],
        conditions: [{ type: "NetworkUnavailable", status: "True", reason: "NoRouteCreated", message: "Node created without a route", lastTransitionTime: new Date() }],
      } } });
      await putNodeCidr(fx.api(), n.name, `10.232.${i + 1}.0/24`, [n.ip]);
    }
    // Resync an hour away: only the agent's start and the link watch bring full passes.
    for (const n of [n1!, n2!]) agents.push(await startAgent(fx, n, { "resync-period": "1h" }));
  }, 60_000);
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    for (const a of agents) await a.stop();
    bed?.destroy();
  });

  it("reports CNIConfigured=False naming cni0 and keeps NetworkUnavailable; once cni0 is deleted it clears and pods reach the other node", async () => {
    const [n1, n2] = bed.nodes;
    const held = await waitFor("CNIConfigured=False on n1", async () => {
      const c = await condition("CNIConfigured");
      return c?.status === "False" ? c : undefined;
    }, 15_000);
    expect(held.reason).toBe("PodCIDRHeldByDevice");
    expect(held.message).toContain("by cni0 (route 10.232.1.0/24, address 10.232.1.1/24)");
    expect(held.message).toContain("ip link delete cni0");
    expect(await condition("Ready")).toMatchObject({ status: "False", reason: "PodCIDRHeldByDevice" });
    const events = await fx.api().core.listNamespacedEvent({ namespace: "default", fieldSelector: `involvedObject.name=${RECORD}` });
    expect(events.items.some((e) => e.reason === "PodCIDRHeldByDevice" && e.type === "Warning")).toBe(true);

    // The harm is real: a pod started now gets podnet0's gateway, but the kernel routes its address to cni0.
    const p1 = addPod(n1!.ns, agents[0]!.confDir, "fm-p1");
    const p2 = addPod(n2!.ns, agents[1]!.confDir, "fm-p2");
    pods.push(p1, p2);
    expect(routeDevice(n1!.ns, p1.ips[0]!)).toBe("cni0");
    expect(ping(p2.ns, p1.ips[0]!)).toBe(false);
    await waitFor("n2's NetworkUnavailable cleared", async () => (await networkUnavailable(n2!.name)) === "False" || undefined, 15_000);
    expect(await networkUnavailable(n1!.name)).toBe("True");
    expect(ipJson(n1!.ns, "link", "show", "dev", "cni0")).toHaveLength(1); // not podnet's device: left alone

    // The admin deletes flannel's bridge: the link watch brings a full pass, with no resync due for an hour.
    ipIn(n1!.ns, "link", "del", "cni0");
    await waitFor("CNIConfigured=True on n1", async () => ((await condition("CNIConfigured"))?.status === "True" || undefined), 15_000);
    expect(await condition("Ready")).toMatchObject({ status: "True" });
    await waitFor("n1's NetworkUnavailable cleared", async () => (await networkUnavailable(n1!.name)) === "False" || undefined, 15_000);
    expect(routeDevice(n1!.ns, p1.ips[0]!)).toBe("podnet0");
    expect(ping(p2.ns, p1.ips[0]!)).toBe(true);
    expect(ping(p1.ns, p2.ips[0]!)).toBe(true);
    expect(ping(n1!.ns, p1.ips[0]!)).toBe(true);
  });

  it("clears at once when a holding route is deleted as told, not at the resync an hour away", async () => {
    const [n1] = bed.nodes;
    // Another plugin's per-pod route inside n1's range (Calico's shape), found by the full pass a restart makes.
    ipIn(n1!.ns, "route", "add", "10.232.1.77/32", "dev", "eth0");
    await agents[0]!.stop();
    agents[0] = await startAgent(fx, n1!, { "resync-period": "1h" });
    const held = await waitFor("CNIConfigured=False", async () => { const c = await condition("CNIConfigured"); return c?.status === "False" ? c : undefined; }, 15_000);
    expect(held).toMatchObject({ reason: "PodCIDRHeldByDevice", message: expect.stringContaining("10.232.1.77") });
    ipIn(n1!.ns, "route", "del", "10.232.1.77/32", "dev", "eth0");
    await waitFor("CNIConfigured=True again", async () => ((await condition("CNIConfigured"))?.status === "True" || undefined), 5_000);
  });
});
