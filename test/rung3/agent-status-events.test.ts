import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AdmissionregistrationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { eventsFor } from "../harness/cluster-objects.js";

/**
 * A condition's Warning goes out once, when the status write turns it. If that Event's create fails (an
 * admission rule, a quota, the API server gone between the two calls), the next pass finds the condition
 * turned already and said nothing again: the Warning was lost for good, while `kubectl describe` is where
 * on-call looks first.
 */
const fx = useControlPlane();
let bed: NetBed;
let agent: TestAgent | undefined;
const OWN = "10-244-120-0-24";
const POLICY = "deny-agent-events";
const admission = () => fx.api().kc.makeApiClient(AdmissionregistrationV1Api);
const shadowedEvents = async () => (await eventsFor(fx.api(), "NodeCIDR", OWN)).filter((e) => e.reason === "CNIConfigShadowed");

async function denyEvents(): Promise<void> {
  await admission().createValidatingAdmissionPolicy({ body: { metadata: { name: POLICY }, spec: {
    failurePolicy: "Fail",
    matchConstraints: { resourceRules: [{ apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["events"] }] },
    validations: [{ expression: "object.involvedObject.kind != 'NodeCIDR'", message: "no NodeCIDR Events (test policy)" }],
  } } });
  await admission().createValidatingAdmissionPolicyBinding({ body: { metadata: { name: POLICY }, spec: { policyName: POLICY, validationActions: ["Deny"] } } });
  // In force once a probe Event is refused by it (the API server loads policies asynchronously).
  await waitFor("the policy in force", async () => {
    try {
      const created = await fx.api().core.createNamespacedEvent({ namespace: "default", body: {
        metadata: { generateName: "probe." }, involvedObject: { kind: "NodeCIDR", name: "probe" }, reason: "Probe", message: "probe",
      } });
      await fx.api().core.deleteNamespacedEvent({ namespace: "default", name: created.metadata!.name! });
      return undefined;
    } catch (err) { return String((err as Error).message).includes("test policy") ? true : undefined; }
  }, 30_000, 200);
}

async function allowEvents(): Promise<void> {
  await admission().deleteValidatingAdmissionPolicyBinding({ name: POLICY }).catch(() => undefined);
  await admission().deleteValidatingAdmissionPolicy({ name: POLICY }).catch(() => undefined);
}

describe.skipIf(!isRoot())("node agent whose Warning Event is refused (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("ev", 1, 81);
    const n1 = bed.nodes[0]!;
    await putNodeCidr(fx.api(), n1.name, "10.244.120.0/24", [n1.ip]);
    agent = await startAgent(fx, n1, { "resync-period": "1s" });
  });
  afterAll(async () => {
    await allowEvents();
    await agent?.stop();
    bed?.destroy();
  });

  it("sends a condition's Warning once Events go through again, though the condition was written meanwhile", async () => {
    const a = agent!;
    await waitFor("Ready written", async () => ((await conditionsOf(fx.api(), OWN)).some((c) => c.type === "Ready" && c.status === "True") ? true : undefined), 20_000);
    await denyEvents();

    const other = join(a.confDir, "00-other.conflist");
    writeFileSync(other, JSON.stringify({ cniVersion: "1.0.0", name: "other", plugins: [{ type: "bridge" }] }));
    await waitFor("CNIConfigShadowed written", async () =>
      ((await conditionsOf(fx.api(), OWN)).some((c) => c.type === "CNIConfigShadowed" && c.status === "True") ? true : undefined), 20_000);
    await new Promise((r) => setTimeout(r, 3_000)); // three resyncs, each finding the condition written already
    expect(await shadowedEvents()).toEqual([]);

    await allowEvents();
    // Resync 1 s: the kept Warning goes with a pass once the API server has dropped the policy.
    const events = await waitFor("the Warning sent", async () => { const e = await shadowedEvents(); return e.length ? e : undefined; }, 30_000, 200);
    expect(events).toHaveLength(1);
    // From this node's agent: kubectl's FROM column reads "podnet-agent, <node>", not one of many agents alike.
    const node = bed.nodes[0]!.name;
    expect(events[0]).toMatchObject({ type: "Warning", message: expect.stringContaining("00-other.conflist"), reportingInstance: node, source: { component: "podnet-agent", host: node } });
    rmSync(other);
  });
});
