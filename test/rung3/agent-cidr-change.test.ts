import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { podnetResource } from "../../src/lib/k8s.js";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { createNetBed, ipJson, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping } from "../../src/localcluster/udp-probe.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { ownRoutes } from "../harness/node-reads.js";

const fx = useControlPlane();
const nodecidrs = podnetResource("nodecidrs");
let bed: NetBed;
const agents: TestAgent[] = [];
const pods: Pod[] = [];
const bridgeAddresses = (ns: string) => ipJson<Array<{ addr_info: Array<{ local: string; prefixlen: number; scope: string }> }>>(ns, "addr", "show", "dev", "podnet0")
  .flatMap((l) => l.addr_info.filter((a) => a.scope === "global").map((a) => `${a.local}/${a.prefixlen}`));

// A Node deleted and registered again under its name (a re-created VM) gets a new CIDR once its old one is
// released. The bridge plugin never removes the old gateway address from the bridge: flannel users know
// the result as "cni0 already has an IP address different from …" on every pod start, and the old range's
// connected route would shadow the route to that range's next owner.
describe.skipIf(!isRoot())("a node whose pod CIDR changes (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("cc", 2, 74);
    await putNodeCidr(fx.api(), "cc1", "10.247.1.0/24", [bed.nodes[0]!.ip]);
    await putNodeCidr(fx.api(), "cc2", "10.247.2.0/24", [bed.nodes[1]!.ip]);
    // Resync an hour away: only event-driven passes run, so what the agent keeps between passes must stay true.
    agents.push(await startAgent(fx, bed.nodes[0]!, { "node-name": "cc1", "resync-period": "1h" }), await startAgent(fx, bed.nodes[1]!, { "node-name": "cc2", "resync-period": "1h" }));
    await Promise.all(agents.map((a) => a.agent.syncNow()));
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    for (const a of agents) await a.stop();
    bed?.destroy();
  });

  it("drops the old gateway from podnet's bridge: new pods start in the new range, and the old range routes to its next owner", async () => {
    const [n1, n2] = bed.nodes;
    const [a1, a2] = agents;
    const before = addPod(n1!.ns, a1!.confDir, "cc-before");
    expect(bridgeAddresses(n1!.ns)).toEqual(["10.247.1.1/24"]);
    deletePod(before);
    // A pod that lives through the change keeps its address of the old range, which no node routes here any more.
    const stranded = addPod(n1!.ns, a1!.confDir, "cc-stranded");
    pods.push(stranded);
    await a1!.agent.syncNow(); // a full pass: the agent's kept view of the kernel now holds the bridge's connected route
    expect((await conditionsOf(fx.api(), "10-247-1-0-24")).find((c) => c.type === "CNIConfigured")?.reason).toBe("Written");

    await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: "10-247-1-0-24" });
    await putNodeCidr(fx.api(), "cc1", "10.247.3.0/24", [n1!.ip]);
    await waitFor("conflist for 10.247.3.0/24", async () => readFileSync(join(a1!.confDir, "10-podnet.conflist"), "utf8").includes("10.247.3.0/24") || undefined, 10_000);
    // The released range goes to another node, whose pods are reached through it.
    await putNodeCidr(fx.api(), "cc9", "10.247.1.0/24", [n2!.ip]);
    await waitFor("route to the old range's next owner", async () => ownRoutes(n1!.ns).includes(`10.247.1.0/24 via ${n2!.ip}`) || undefined, 10_000);
    expect(bridgeAddresses(n1!.ns)).toEqual([]);

    const after = addPod(n1!.ns, a1!.confDir, "cc-after");
    const peer = addPod(n2!.ns, a2!.confDir, "cc-peer");
    pods.push(after, peer);
    expect(after.ips[0]).toMatch(/^10\.247\.3\./);
    expect(bridgeAddresses(n1!.ns)).toEqual(["10.247.3.1/24"]);
    expect(ping(after.ns, peer.ips[0]!)).toBe(true);

    const events = await fx.api().core.listNamespacedEvent({ namespace: "default", fieldSelector: "involvedObject.name=10-247-3-0-24" });
    expect(events.items.find((e) => e.reason === "StaleBridgeAddressRemoved")?.message).toContain("10.247.1.1/24");

    // The pod left in the old range is named, with a Warning, until it is gone.
    const cni = async () => (await conditionsOf(fx.api(), "10-247-3-0-24")).find((c) => c.type === "CNIConfigured");
    await waitFor("CNIConfigured naming the stranded pod", async () => ((await cni())?.reason === "PodAddressesOutsideCIDR" ? true : undefined), 10_000);
    expect(await cni()).toMatchObject({ status: "True", message: expect.stringContaining(`${stranded.ips[0]} (container cc-stranded)`) });
    expect(stranded.ips[0]).toMatch(/^10\.247\.1\./);
    await waitFor("a Warning naming it", async () => (await fx.api().core.listNamespacedEvent({ namespace: "default", fieldSelector: "involvedObject.name=10-247-3-0-24" }))
      .items.find((e) => e.reason === "PodAddressesOutsideCIDR" && e.type === "Warning" && e.message?.includes(stranded.ips[0]!)), 10_000);
    deletePod(pods.splice(pods.indexOf(stranded), 1)[0]!);
    await a1!.agent.syncNow();
    await waitFor("CNIConfigured back to Written", async () => ((await cni())?.reason === "Written" ? true : undefined), 10_000);
  });
});
