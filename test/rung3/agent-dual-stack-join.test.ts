import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { podnetResource } from "../../src/lib/k8s.js";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

const fx = useControlPlane();
let bed: NetBed;
const agents: TestAgent[] = [];
const GRACE_MS = 4_000;
const logs: Array<{ level: number; msg: string; node?: string }> = [];
const createNodeMarkedUnavailable = (name: string) => fx.api().core.createNode({ body: { metadata: { name }, status: { conditions: [
  { type: "NetworkUnavailable", status: "True", reason: "NoRouteCreated", message: "set by the cloud's route controller", lastTransitionTime: new Date() },
] } } });
const networkUnavailable = async (name: string) => (await fx.api().core.readNodeStatus({ name })).status?.conditions?.find((c) => c.type === "NetworkUnavailable")?.status;
const conflistOf = (a: TestAgent) => join(a.confDir, "10-podnet.conflist");
/** The subnets the conflist's host-local hands out, one range set per family. */
const subnets = (a: TestAgent) => (JSON.parse(readFileSync(conflistOf(a), "utf8")) as { plugins: Array<{ ipam?: { ranges: Array<Array<{ subnet: string }>> } }> })
  .plugins[0]!.ipam!.ranges.flatMap((r) => r.map((x) => x.subnet));
const condition = async (record: string, type: string) => (await conditionsOf(fx.api(), record)).find((c) => c.type === type);

// A dual-stack join: the controller creates the node's IPv4 and IPv6 NodeCIDRs in two writes, and the agent may
// see the first alone. Pods started on a one-family conflist keep one family for life.
describe.skipIf(!isRoot())("a dual-stack node's first conflist waits for both families (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("ds", 2, 74);
    await fx.api().custom.createClusterCustomObject({ ...podnetResource("podcidrpools"), body: {
      apiVersion: "podnet.io/v1alpha1", kind: "PodCIDRPool", metadata: { name: "dual" },
      spec: { ipv4: { cidrs: ["10.246.0.0/16"], nodeMaskSize: 24 }, ipv6: { cidrs: ["fd00:10:246::/56"], nodeMaskSize: 64 } },
    } });
    const log = pino({ level: "info" }, { write: (line: string) => { logs.push(JSON.parse(line) as (typeof logs)[number]); } });
    for (const n of bed.nodes) {
      await createNodeMarkedUnavailable(n.name);
      agents.push(await startAgent(fx, n, { "family-grace-period": `${GRACE_MS}ms` }, {}, log));
    }
  });
  afterAll(async () => {
    for (const a of agents) await a.stop();
    bed?.destroy();
  });

  it("writes no conflist and keeps NetworkUnavailable while only the IPv4 record is in; the IPv6 record brings a conflist with both ranges", async () => {
    const [n1] = bed.nodes;
    const a = agents[0]!;
    const v4 = await putNodeCidr(fx.api(), n1!.name, "10.246.1.0/24", [n1!.ip, n1!.ip6], "dual");
    await waitFor("the agent's report on the IPv4 record", async () => condition(v4, "CNIConfigured"), 10_000);
    expect(existsSync(conflistOf(a))).toBe(false);
    expect(await networkUnavailable(n1!.name)).toBe("True");
    expect(await condition(v4, "CNIConfigured")).toMatchObject({ status: "False", reason: "FamilyPending" });
    expect(await condition(v4, "FamiliesComplete")).toMatchObject({ status: "False", reason: "FamilyPending" });

    const created = performance.now();
    await putNodeCidr(fx.api(), n1!.name, "fd00:10:246:1::/64", [n1!.ip, n1!.ip6], "dual");
    await waitFor("conflist", async () => existsSync(conflistOf(a)) || undefined, 10_000);
    expect(performance.now() - created).toBeLessThan(GRACE_MS); // written on the record's arrival, not at the grace period's end
    expect(subnets(a)).toEqual(["10.246.1.0/24", "fd00:10:246:1::/64"]);
    await waitFor("NetworkUnavailable cleared", async () => (await networkUnavailable(n1!.name)) === "False" || undefined, 10_000);
    expect(await condition(v4, "FamiliesComplete")).toMatchObject({ status: "True", reason: "AllFamilies" });
  });

  it("with IPv6 never coming (its range exhausted), writes an IPv4 conflist after the grace period and says FamilyMissing; the IPv6 record later completes it", async () => {
    const [, n2] = bed.nodes;
    const a = agents[1]!;
    const started = performance.now();
    const v4 = await putNodeCidr(fx.api(), n2!.name, "10.246.2.0/24", [n2!.ip, n2!.ip6], "dual");
    await waitFor("the agent's report on the IPv4 record", async () => condition(v4, "CNIConfigured"), 10_000);
    expect(existsSync(conflistOf(a))).toBe(false);
    expect(await networkUnavailable(n2!.name)).toBe("True");

    await waitFor("conflist after the grace period", async () => existsSync(conflistOf(a)) || undefined, GRACE_MS + 10_000);
    expect(performance.now() - started).toBeGreaterThanOrEqual(GRACE_MS - 500);
    expect(subnets(a)).toEqual(["10.246.2.0/24"]);
    const missing = await waitFor("FamilyMissing", async () => ((await condition(v4, "FamiliesComplete"))?.reason === "FamilyMissing" ? condition(v4, "FamiliesComplete") : undefined), 10_000);
    expect(missing!.message).toMatch(/^node n2 has no IPv6 pod CIDR though pool dual serves IPv4 and IPv6: pods here get IPv4 only/);
    expect(await condition(v4, "CNIConfigured")).toMatchObject({ status: "True" });
    // The node networks pods with what it has: a taint for the missing family would be worse.
    await waitFor("NetworkUnavailable cleared", async () => (await networkUnavailable(n2!.name)) === "False" || undefined, 10_000);
    expect(logs.find((l) => l.level === 40 && l.node === n2!.name && l.msg.includes("has no IPv6 pod CIDR"))).toBeDefined();

    await putNodeCidr(fx.api(), n2!.name, "fd00:10:246:2::/64", [n2!.ip, n2!.ip6], "dual");
    await waitFor("conflist with both", async () => subnets(a).length === 2 || undefined, 10_000);
    expect(subnets(a)).toEqual(["10.246.2.0/24", "fd00:10:246:2::/64"]);
    await waitFor("FamiliesComplete", async () => (await condition(v4, "FamiliesComplete"))?.status === "True" || undefined, 10_000);
  });
});
