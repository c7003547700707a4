import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kubeBin } from "../../src/localcluster/kube-bins.js";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { freePort, startProcess, stopProcess, waitFor, type ManagedProcess } from "../../src/localcluster/processes.js";
import { putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

const fx = useControlPlane();
const TAINT = "node.kubernetes.io/network-unavailable";
let bed: NetBed;
let kcm: ManagedProcess | undefined;
let agent: TestAgent | undefined;

const taintsOf = async (name: string) => ((await fx.api().core.readNode({ name })).spec?.taints ?? []).map((t) => `${t.key}:${t.effect}`);

// The user-visible effect of clearing NetworkUnavailable: kube-controller-manager's node-lifecycle controller
// (the real one, built from the Kubernetes sources like the apiserver) taints a Node registered with it True,
// so nothing schedules there, and lifts the taint once podnet's agent clears the condition.
describe.skipIf(!isRoot())("the network-unavailable taint, with the real node-lifecycle controller (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("nt", 2, 73);
    for (const [i, n] of bed.nodes.entries()) {
      await fx.api().core.createNode({ body: { metadata: { name: n.name }, status: {
        addresses: [{ type: "InternalIP", address: n.ip }],
        conditions: [{ type: "NetworkUnavailable", status: "True", reason: "NoRouteCreated", message: "Node created without a route", lastTransitionTime: new Date() }],
      } } });
      await putNodeCidr(fx.api(), n.name, `10.248.${i + 1}.0/24`, [n.ip]);
    }
    kcm = startProcess("kube-controller-manager", kubeBin("kube-controller-manager"), [
      `--kubeconfig=${fx.cp.kubeconfig}`, "--controllers=node-lifecycle-controller", "--leader-elect=false",
      "--use-service-account-credentials=false", `--secure-port=${await freePort()}`, "--bind-address=127.0.0.1",
    ], join(fx.cp.dir, "kcm.log"));
  }, 60_000);
  afterAll(async () => {
    await agent?.stop();
    if (kcm) await stopProcess(kcm);
    bed?.destroy();
  });

  it("is lifted from the node whose agent runs, and stays on the node without one", async () => {
    const [n1, n2] = bed.nodes;
    for (const n of [n1!, n2!]) await waitFor(`taint on ${n.name}`, async () => (await taintsOf(n.name)).includes(`${TAINT}:NoSchedule`) || undefined, 30_000);
    agent = await startAgent(fx, n1!);
    await waitFor(`taint lifted from ${n1!.name}`, async () => ((await taintsOf(n1!.name)).includes(`${TAINT}:NoSchedule`) ? undefined : true), 30_000);
    expect(await taintsOf(n2!.name)).toContain(`${TAINT}:NoSchedule`);
  });
});
