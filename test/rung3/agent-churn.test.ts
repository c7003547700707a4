import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cidrObjectName } from "../../src/lib/cidr.js";
import { mergePatch, podnetResource } from "../../src/lib/k8s.js";
import { createNetBed, ipJson, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

/**
 * Between full resyncs the agent plans against its own record of the kernel, updated from each batch it
 * applies. Churn with event passes only (resync an hour away) must leave the kernel exactly as desired:
 * every route through the right gateway, and no podnet nexthop without a route. Gateways are shared by
 * several nodes' routes, so a nexthop is removed only with its last route.
 */
const fx = useControlPlane();
const nodecidrs = podnetResource("nodecidrs");
let bed: NetBed;
let agent: TestAgent;

const GATEWAYS = Array.from({ length: 6 }, (_, i) => `192.168.79.${100 + i}`);
const routesOf = (ns: string) => ipJson<Array<{ dst: string; gateway?: string }>>(ns, "route", "show", "proto", "249").map((r) => `${r.dst} via ${r.gateway}`).sort();
const nexthopGateways = (ns: string) => ipJson<Array<{ gateway?: string }>>(ns, "nexthop", "show", "proto", "249").map((n) => n.gateway).sort();

describe.skipIf(!isRoot())("node agent under churn between resyncs (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("ch", 1, 79);
    await putNodeCidr(fx.api(), bed.nodes[0]!.name, "10.244.0.0/24", [bed.nodes[0]!.ip]);
    agent = await startAgent(fx, bed.nodes[0]!, { "resync-period": "1h" });
  });
  afterAll(async () => {
    await agent?.stop();
    bed?.destroy();
  });

  it("ends with exactly the desired routes and no orphaned nexthop after 120 random joins, leaves and IP changes", async () => {
    let seed = 11;
    const random = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return Math.floor(seed / 65536) % n; };
    const live = new Map<string, string>(); // cidr → gateway
    let next = 1;
    for (let op = 0; op < 120; op++) {
      const kind = live.size < 5 ? 0 : random(3);
      const gateway = GATEWAYS[random(GATEWAYS.length)]!;
      if (kind === 0) {
        const cidr = `10.244.${next++}.0/24`;
        await putNodeCidr(fx.api(), `peer-${next}`, cidr, [gateway]);
        live.set(cidr, gateway);
      } else {
        const cidr = [...live.keys()][random(live.size)]!;
        const name = cidrObjectName(cidr);
        if (kind === 1) {
          await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name });
          live.delete(cidr);
        } else {
          await fx.api().custom.patchClusterCustomObject({ ...nodecidrs, name, body: { spec: { nodeIPs: [gateway] } } }, mergePatch());
          live.set(cidr, gateway);
        }
      }
      // Some changes land while a pass is running, some coalesce into one pass.
      if (random(3) === 0) await new Promise((r) => setTimeout(r, random(40)));
    }
    const expected = [...live].map(([cidr, gw]) => `${cidr} via ${gw}`).sort();
    // A batch planned against a wrong record of the kernel fails (removing a nexthop also removes the routes
    // still using it, and a later change to those routes finds them gone); the agent would re-read and heal,
    // which hides the mistake from the end state alone.
    const ns = bed.nodes[0]!.ns;
    await waitFor("routes match the records", async () => (JSON.stringify(routesOf(ns)) === JSON.stringify(expected) ? true : undefined), 30_000);
    const routeErrors = (await agent.agent.metrics.errors.get()).values.find((v) => v.labels.step === "routes")?.value ?? 0;
    expect(routeErrors).toBe(0);
    expect(routesOf(ns)).toEqual(expected);
    expect(nexthopGateways(ns)).toEqual([...new Set(live.values())].sort());
    // A full pass reads the kernel afresh: it must find nothing left to change.
    const full = await agent.agent.syncNow();
    expect({ added: full.routes.added, replaced: full.routes.replaced, deleted: full.routes.deleted, error: full.routes.error }).toEqual({ added: 0, replaced: 0, deleted: 0, error: undefined });
    expect(full.routes.installed).toBe(live.size);
  });
});
