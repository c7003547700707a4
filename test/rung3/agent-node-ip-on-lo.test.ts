import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNetBed, ipIn, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

// Routing to the host: the node IP is a /32 on the loopback (announced by BGP), the traffic comes in on the
// uplinks. The pods' MTU is the default route's device's, not lo's 65536 (which no conflist may carry) nor
// another network's bridge's.
const fx = useControlPlane();
let bed: NetBed;
let agent: TestAgent | undefined;

describe.skipIf(!isRoot())("a node IP on the loopback (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("lo", 2, 67);
    const [n1, n2] = bed.nodes;
    ipIn(n1!.ns, "addr", "add", "10.66.0.1/32", "dev", "lo");
    ipIn(n1!.ns, "link", "set", "eth0", "mtu", "1400");
    ipIn(n1!.ns, "route", "add", "default", "via", "192.168.67.254", "dev", "eth0", "onlink");
    // Another network's bridge with a smaller MTU (docker0, a VPN's tunnel): not where the traffic arrives.
    ipIn(n1!.ns, "link", "add", "other0", "mtu", "1300", "type", "veth", "peer", "name", "other1");
    ipIn(n1!.ns, "addr", "add", "172.17.0.1/16", "dev", "other0");
    await putNodeCidr(fx.api(), "lo1", "10.250.1.0/24", ["10.66.0.1"]);
    await putNodeCidr(fx.api(), "lo2", "10.250.2.0/24", [n2!.ip]);
  });
  afterAll(async () => {
    await agent?.stop();
    bed?.destroy();
  });

  it("writes the conflist with the uplink's MTU and routes to the other node", async () => {
    const [n1] = bed.nodes;
    agent = await startAgent(fx, n1!, { "node-name": "lo1" });
    const outcome = await agent.agent.syncNow();
    expect(outcome.cni.error).toBeUndefined();
    const conflist = JSON.parse(readFileSync(join(agent.confDir, "10-podnet.conflist"), "utf8")) as { plugins: Array<{ type: string; mtu?: number }> };
    expect(conflist.plugins.find((p) => p.type === "bridge")!.mtu).toBe(1400);
    expect(outcome.routes.installed).toBe(1);
  });
});
