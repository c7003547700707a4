import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { podnetResource } from "../../src/lib/k8s.js";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

/**
 * A node that lost its pod CIDR removes its conflist once another node holds the range (agent-conflist.test.ts).
 * The new holder's record arrives Allocated before its node IPs are mirrored, which wakes no agent that has a
 * range of its own; this one must not wait for its resync (a minute here) while pods take the holder's addresses.
 */
const fx = useControlPlane();
let bed: NetBed;
let agent: TestAgent;

describe.skipIf(!isRoot())("a node without a pod CIDR, when another node takes its old range (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("ch2", 1, 59);
    await putNodeCidr(fx.api(), "n1", "10.249.1.0/24", [bed.nodes[0]!.ip]);
    agent = await startAgent(fx, bed.nodes[0]!, { "resync-period": "60s" });
    await waitFor("conflist", async () => (existsSync(join(agent.confDir, "10-podnet.conflist")) ? true : undefined), 15_000);
  });
  afterAll(async () => {
    await agent?.stop();
    bed?.destroy();
  });

  it("removes its conflist within seconds when the holder's record has no node IPs yet, not at its next resync", async () => {
    await fx.api().custom.deleteClusterCustomObject({ ...podnetResource("nodecidrs"), name: "10-249-1-0-24" });
    await waitFor("the deletion seen", async () => (agent.agent.records.cache.has("10-249-1-0-24") ? undefined : true), 10_000);
    await new Promise((r) => setTimeout(r, 500)); // the pass the deletion brought: no range of its own, nobody else's yet
    expect(existsSync(join(agent.confDir, "10-podnet.conflist"))).toBe(true);
    await putNodeCidr(fx.api(), "n9", "10.249.1.0/24", []);
    await waitFor("conflist removed", async () => (existsSync(join(agent.confDir, "10-podnet.conflist")) ? undefined : true), 10_000);
  });
});
