import { describe, expect, it } from "vitest";
import type { V1NodeAddress } from "@kubernetes/client-node";
import { mergePatch } from "../../src/lib/k8s.js";
import type { AllocationController } from "../../src/controllers/controller.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { allocated, kubeletReportedStatus } from "../harness/cluster-objects.js";
import { recordsOfNode, startController, stopAndEmptyAfterEach, until } from "../harness/controller-fixture.js";

// Node addresses as providers rewrite them.
const fx = useControlPlane();
let controller: AllocationController | undefined;
stopAndEmptyAfterEach(fx, () => controller, () => { controller = undefined; });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const internal = (address: string): V1NodeAddress => ({ type: "InternalIP", address });
/** As kubelet or a cloud controller writes them: the whole list replaced (a merge patch replaces a list). */
const putAddresses = (name: string, addresses: V1NodeAddress[]) => fx.api().core.patchNodeStatus({ name, body: { status: { addresses } } }, mergePatch());
const writesOf = async (c: AllocationController, action: string) => (await c.metrics.apiWrites.get()).values.find((v) => v.labels.action === action)?.value ?? 0;
/** Each record's family with its node IPs. */
const mirrored = async (node: string) => allocated(await recordsOfNode(fx, node)).map((r) => `${r.spec.family} ${r.spec.nodeIPs?.join(",")}`).sort();

describe("controller on the real API server: node IPs as providers rewrite them", () => {
  it("a Node whose addresses flip order writes nothing; an added address is appended, a removed one dropped", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.244.0.0/16,fd00:10:244::/56", "default-pool": "flip" });
    const c = controller;
    await fx.api().core.createNode({ body: { metadata: { name: "flip-1" } } });
    const [a, b, v6] = [internal("10.0.2.5"), internal("10.1.2.5"), internal("fd00:2::5")];
    await fx.api().core.patchNodeStatus({ name: "flip-1", body: { status: { ...kubeletReportedStatus("flip-1"), addresses: [a, b, v6] } } }, mergePatch());
    const first = ["IPv4 10.0.2.5,10.1.2.5,fd00:2::5", "IPv6 10.0.2.5,10.1.2.5,fd00:2::5"];
    await until("both records mirrored", async () => (JSON.stringify(await mirrored("flip-1")) === JSON.stringify(first) || undefined));
    const writes = await writesOf(c, "updateNodeIPs");
    // kubelet and a cloud controller each writing their own order (kubernetes#109793), ten times.
    for (let i = 0; i < 10; i++) {
      const plans = c.plans;
      await putAddresses("flip-1", i % 2 ? [a, b, v6] : [b, a, v6]);
      await until("a plan over the new order", async () => (c.plans > plans || undefined));
    }
    await sleep(300);
    expect(await writesOf(c, "updateNodeIPs") - writes).toBe(0); // 20 before records kept their order
    expect(await mirrored("flip-1")).toEqual(first);
    await putAddresses("flip-1", [internal("10.2.2.5"), a, v6]);
    await until("the new address appended, the gone one dropped", async () => (JSON.stringify(await mirrored("flip-1")) === JSON.stringify(
      ["IPv4 10.0.2.5,fd00:2::5,10.2.2.5", "IPv6 10.0.2.5,fd00:2::5,10.2.2.5"]) || undefined));
  });
});
