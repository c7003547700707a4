import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNetBed, ipIn, ipJson, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

// What the agent logs when the kernel refuses its route batch: not "routes synced" with the planned counts.
const fx = useControlPlane();
let bed: NetBed;
let agent: TestAgent | undefined;
const lines: Array<{ msg: string; level: number }> = [];
const log = pino({ level: "info" }, new Writable({ write(chunk: Buffer, _enc, done) { lines.push(JSON.parse(chunk.toString()) as { msg: string; level: number }); done(); } }));
const routes = (ns: string) => ipJson<Array<{ dst: string }>>(ns, "route", "show", "proto", "249").map((r) => r.dst);

describe.skipIf(!isRoot())("node agent whose route batch the kernel refuses (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("rb", 2, 66);
    for (const [i, n] of bed.nodes.entries()) await putNodeCidr(fx.api(), n.name, `10.244.${80 + i}.0/24`, [n.ip]);
  });
  afterAll(async () => {
    await agent?.stop();
    bed?.destroy();
  });

  it("says the batch was refused (warn, with the kernel's words) until the link is up, then that routes are synced", async () => {
    const [n1] = bed.nodes;
    ipIn(n1!.ns, "link", "set", "eth0", "down"); // its address stays: the peer looks on-link, the route is refused
    agent = await startAgent(fx, n1!, {}, {}, log);
    const record = "10-244-80-0-24";
    const failed = await waitFor("RouteSyncFailed", async () => (await conditionsOf(fx.api(), record)).find((c) => c.type === "RoutesProgrammed" && c.reason === "RouteSyncFailed"), 20_000);
    expect(failed.status).toBe("False");
    expect(routes(n1!.ns)).toEqual([]);
    const refused = lines.filter((l) => l.msg === "route batch partly refused; will retry");
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]).toMatchObject({ level: 40, installed: 0, planned: { added: 1 } });
    expect(lines.filter((l) => l.msg === "routes synced")).toEqual([]);

    ipIn(n1!.ns, "link", "set", "eth0", "up");
    await waitFor("the route in place", async () => (routes(n1!.ns).length === 1 ? true : undefined), 20_000);
    await waitFor("routes synced said", async () => (lines.some((l) => l.msg === "routes synced") ? true : undefined), 5_000);
  });
});
