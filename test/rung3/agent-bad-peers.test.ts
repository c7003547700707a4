import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { eventsFor } from "../harness/cluster-objects.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ownRoutes } from "../harness/node-reads.js";

const fx = useControlPlane();
let bed: NetBed;
let agent: TestAgent | undefined;

// A cloud hands a deleted VM's address to a new one while the old Node object lingers: two NodeCIDRs then
// name one node IP, and on the node that owns the address now, the other one's route would point at itself.
describe.skipIf(!isRoot())("bad peers and leftovers: a peer whose node IP is this node's, a foreign VXLAN device (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("bp", 2, 72);
    const [n1, n2] = bed.nodes;
    await putNodeCidr(fx.api(), "bp1", "10.249.1.0/24", [n1!.ip]);
    await putNodeCidr(fx.api(), "bp2", "10.249.2.0/24", [n2!.ip]);
    await putNodeCidr(fx.api(), "bp-gone", "10.249.3.0/24", [n1!.ip]); // the lingering Node had bp1's address
  });
  afterAll(async () => {
    await agent?.stop();
    bed?.destroy();
  });

  it("is reported unreachable and gets no route; the other routes are programmed and no batch fails", async () => {
    const [n1, n2] = bed.nodes;
    agent = await startAgent(fx, n1!, { "node-name": "bp1" });
    const first = await agent.agent.syncNow();
    const second = await agent.agent.syncNow();
    for (const outcome of [first, second]) {
      expect(outcome.routes.error).toBeUndefined();
      expect(outcome.routes.unreachable).toEqual([expect.stringContaining(`node bp-gone (10.249.3.0/24): ${n1!.ip} is an address of this node`)]);
    }
    expect(ownRoutes(n1!.ns)).toEqual([`10.249.2.0/24 via ${n2!.ip}`]);
    const failures = (await agent.agent.metrics.errors.get()).values.filter((v) => v.labels.step === "routes").reduce((s, v) => s + v.value, 0);
    expect(failures).toBe(0);
    const routes = await waitFor("RoutesProgrammed", async () => (await conditionsOf(fx.api(), "10-249-1-0-24")).find((c) => c.type === "RoutesProgrammed"), 10_000);
    expect(routes).toMatchObject({ status: "False", reason: "NodeUnreachable" });
    // One Warning, from RoutesProgrammed: Ready, which only gathers the others, says it on the record, not again as an Event.
    const events = await waitFor("the Warning", async () => { const e = await eventsFor(fx.api(), "NodeCIDR", "10-249-1-0-24"); return e.length ? e : undefined; }, 10_000);
    await new Promise((r) => setTimeout(r, 500));
    expect((await eventsFor(fx.api(), "NodeCIDR", "10-249-1-0-24")).map((e) => `${e.type} ${e.reason} ${e.message?.split(":")[0]}`)).toEqual(["Warning NodeUnreachable RoutesProgrammed"]);
    expect(events).toHaveLength(1);
  });

  // Moving from flannel, whose flannel.1 uses the same VNI (1) and port (8472): the kernel refuses a second
  // VXLAN device for them. With every peer on the node's own subnet nothing needs podnet.vxlan.
  it("a leftover VXLAN device holding podnet's VNI and port (flannel.1) costs no direct route: OverlayUnavailable, not a failed sync", async () => {
    await agent?.stop();
    const [n1, n2] = bed.nodes;
    execFileSync("ip", ["-n", n2!.ns, "link", "add", "flannel.1", "type", "vxlan", "id", "1", "dstport", "8472", "local", n2!.ip, "dev", "eth0", "nolearning"]);
    agent = await startAgent(fx, n2!, { "node-name": "bp2" });
    const outcome = await agent.agent.syncNow();
    expect(outcome.routes.error).toBeUndefined();
    expect(outcome.routes.overlayError).toContain("A VXLAN device with the specified VNI already exists");
    expect(ownRoutes(n2!.ns)).toEqual([`10.249.1.0/24 via ${n1!.ip}`, `10.249.3.0/24 via ${n1!.ip}`]);
    const routes = await waitFor("RoutesProgrammed", async () => (await conditionsOf(fx.api(), "10-249-2-0-24")).find((c) => c.type === "RoutesProgrammed" && c.reason === "OverlayUnavailable"), 10_000);
    expect(routes.message).toContain("a node behind a router would be unreachable");
  });
});
