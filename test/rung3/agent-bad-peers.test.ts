import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNetBed, ipJson, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { waitFor } from "../../src/localcluster/processes.js";

const fx = useControlPlane();
let bed: NetBed;
let agent: TestAgent | undefined;
const ownRoutes = (ns: string) => ipJson<Array<{ dst: string; gateway?: string }>>(ns, "route", "show", "proto", "249").map((r) => `${r.dst} via ${r.gateway}`).sort();

// A cloud hands a deleted VM's address to a new one while the old Node object lingers: two NodeCIDRs then
// name one node IP, and on the node that owns the address now, the other one's route would point at itself.
describe.skipIf(!isRoot())("a peer whose node IP is an address of this node (rung 3)", () => {
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
  });
});
