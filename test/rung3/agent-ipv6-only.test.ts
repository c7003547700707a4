import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { createNetBed, ipIn, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping, sourceSeenBy } from "../../src/localcluster/udp-probe.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { cidrObjectName } from "../../src/lib/cidr.js";
import { mergePatch, podnetResource } from "../../src/lib/k8s.js";
import { ownRoutes as ownRoutesOf } from "../harness/node-reads.js";

const fx = useControlPlane();
let bed: NetBed;
const agents: TestAgent[] = [];
const pods: Pod[] = [];
const ownRoutes = (ns: string) => ownRoutesOf(ns, "-6");
const cidr = (i: number) => `fd00:10:245:${i}::/64`;

// Single-stack IPv6: Nodes with only an IPv6 InternalIP and only an IPv6 pod CIDR (no IPv4 anywhere in podnet's view).
describe.skipIf(!isRoot())("node agent in an IPv6-only cluster (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("v6", 3, 73);
    for (const [i, n] of bed.nodes.entries()) await putNodeCidr(fx.api(), n.name, cidr(i + 1), [n.ip6]);
    for (const n of bed.nodes) agents.push(await startAgent(fx, n));
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    for (const a of agents) await a.stop();
    bed?.destroy();
  });

  it("routes every other node's IPv6 pod CIDR via its IPv6 address and reports Ready", async () => {
    const [n1, n2, n3] = bed.nodes;
    await waitFor("IPv6 routes on n1", async () => (ownRoutes(n1!.ns).length === 2 ? true : undefined), 15_000);
    expect(ownRoutes(n1!.ns)).toEqual([`${cidr(2)} via ${n2!.ip6}`, `${cidr(3)} via ${n3!.ip6}`]);
    const conds = await waitFor("Ready", async () => {
      const c = await conditionsOf(fx.api(), "fd00-10-245-1---64");
      return c.some((x) => x.type === "Ready" && x.status === "True") ? c : undefined;
    }, 15_000);
    expect(conds.find((c) => c.type === "SysctlsReady")?.status).toBe("True");
    expect(ipIn(n1!.ns, "-6", "netconf", "show", "dev", "eth0")).toContain("forwarding on");
  });

  it("gives pods IPv6 addresses only; they ping across nodes and the receiver sees the pod's own address", async () => {
    const [n1, n2] = bed.nodes;
    const a = addPod(n1!.ns, agents[0]!.confDir, "a");
    const b = addPod(n2!.ns, agents[1]!.confDir, "b");
    pods.push(a, b);
    expect(a.ips).toEqual([expect.stringMatching(/^fd00:10:245:1::/)]);
    expect(b.ips).toEqual([expect.stringMatching(/^fd00:10:245:2::/)]);
    expect(ping(a.ns, b.ips[0]!)).toBe(true);
    expect(await sourceSeenBy(b.ns, b.ips[0]!, a.ns)).toBe(a.ips[0]);
  });

  it("masquerades pod traffic to a node address (outside the pod network) behind the sending node's IPv6 address", async () => {
    const [n1, , n3] = bed.nodes;
    expect(await sourceSeenBy(n3!.ns, n3!.ip6, pods[0]!.ns, 7781)).toBe(n1!.ip6);
  });

  it("takes a node IP in another IPv6 spelling as the same address: a second full pass changes nothing", async () => {
    const [n1, , n3] = bed.nodes;
    // The schema takes any spelling of an address; the kernel prints one. Compared as written, every full pass
    // replaced this route and its nexthop.
    const spelled = n3!.ip6.toUpperCase().replace("::", ":0::"); // fd00:73::13 → FD00:73:0::13
    expect(spelled).not.toBe(n3!.ip6);
    await fx.api().custom.patchClusterCustomObject({ ...podnetResource("nodecidrs"), name: cidrObjectName(cidr(3)), body: { spec: { nodeIPs: [spelled] } } }, mergePatch());
    await agents[0]!.agent.syncNow();
    expect(ownRoutes(n1!.ns)).toContain(`${cidr(3)} via ${n3!.ip6}`);
    const again = await agents[0]!.agent.syncNow();
    expect({ added: again.routes.added, replaced: again.routes.replaced, deleted: again.routes.deleted }).toEqual({ added: 0, replaced: 0, deleted: 0 });
  });
});
