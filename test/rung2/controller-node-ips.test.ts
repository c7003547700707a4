import { describe, expect, it } from "vitest";
import type { V1NodeAddress } from "@kubernetes/client-node";
import { mergePatch } from "../../src/lib/k8s.js";
import type { AllocationController } from "../../src/controllers/controller.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { putNodeCidr } from "../harness/agent-fixture.js";
import { allocated, eventsFor, kubeletReportedStatus } from "../harness/cluster-objects.js";
import { recordsOfNode, startController, stopAndEmptyAfterEach, until } from "../harness/controller-fixture.js";

// Node addresses as providers rewrite them: reordered, InternalIPs dropped, a record from before nodeIPsFrom.
const fx = useControlPlane();
let controller: AllocationController | undefined;
stopAndEmptyAfterEach(fx, () => controller, () => { controller = undefined; });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const internal = (address: string): V1NodeAddress => ({ type: "InternalIP", address });
const external = (address: string): V1NodeAddress => ({ type: "ExternalIP", address });
/** As kubelet or a cloud controller writes them: the whole list replaced (a merge patch replaces a list). */
const putAddresses = (name: string, addresses: V1NodeAddress[]) => fx.api().core.patchNodeStatus({ name, body: { status: { addresses } } }, mergePatch());
const writesOf = async (c: AllocationController, action: string) => (await c.metrics.apiWrites.get()).values.find((v) => v.labels.action === action)?.value ?? 0;
const inConflict = async (c: AllocationController, reason: string) => (await c.metrics.nodesInConflict.get()).values.find((v) => v.labels.reason === reason)?.value;
/** Each record's family with its node IPs and where they came from. */
const mirrored = async (node: string) => allocated(await recordsOfNode(fx, node)).map((r) => `${r.spec.family} ${r.spec.nodeIPs?.join(",")} ${r.spec.nodeIPsFrom}`).sort();

describe("controller on the real API server: node IPs as providers rewrite them", () => {
  it("a Node whose addresses flip order writes nothing; an added address is appended, a removed one dropped", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.244.0.0/16,fd00:10:244::/56", "default-pool": "flip" });
    const c = controller;
    await fx.api().core.createNode({ body: { metadata: { name: "flip-1" } } });
    const [a, b, v6] = [internal("10.0.2.5"), internal("10.1.2.5"), internal("fd00:2::5")];
    await fx.api().core.patchNodeStatus({ name: "flip-1", body: { status: { ...kubeletReportedStatus("flip-1"), addresses: [a, b, v6] } } }, mergePatch());
    const first = ["IPv4 10.0.2.5,10.1.2.5,fd00:2::5 InternalIP", "IPv6 10.0.2.5,10.1.2.5,fd00:2::5 InternalIP"];
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
      ["IPv4 10.0.2.5,fd00:2::5,10.2.2.5 InternalIP", "IPv6 10.0.2.5,fd00:2::5,10.2.2.5 InternalIP"]) || undefined));
  });

  it("after a node-IP patch of the spec, the controller's status catches up with the record's generation (kstatus reads it Current)", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.244.0.0/16", "default-pool": "gen" });
    await fx.api().core.createNode({ body: { metadata: { name: "gen-1" } } });
    await putAddresses("gen-1", [internal("10.0.4.5")]);
    await until("mirrored", async () => ((await mirrored("gen-1"))[0] === "IPv4 10.0.4.5 InternalIP" || undefined));
    await putAddresses("gen-1", [internal("10.0.4.5"), internal("10.0.4.6")]);
    const generations = async () => allocated(await recordsOfNode(fx, "gen-1")).map((r) => {
      const allocatedCondition = r.status?.conditions?.find((x) => x.type === "Allocated");
      return `${r.spec.nodeIPs?.join(",")} generation ${r.metadata?.generation} observed ${r.status?.observedGeneration} Allocated ${allocatedCondition?.observedGeneration} ${allocatedCondition?.reason}`;
    });
    // Before, the status stayed at generation 1 for as long as the record lived.
    expect(await until("observedGeneration caught up", async () => {
      const [line] = await generations();
      return line === "10.0.4.5,10.0.4.6 generation 2 observed 2 Allocated 2 Allocated" ? line : undefined;
    })).toBeDefined();
  });

  it("a Node that loses its InternalIPs but keeps an ExternalIP keeps its records' IPs, with a warning, until an InternalIP is back", async () => {
    controller = await startController(fx, { "cluster-cidr": "10.244.0.0/16", "default-pool": "gone" });
    const c = controller;
    await fx.api().core.createNode({ body: { metadata: { name: "gone-1" } } });
    await putAddresses("gone-1", [internal("10.0.3.5"), external("198.51.100.7"), { type: "Hostname", address: "gone-1" }]);
    await until("InternalIP mirrored", async () => ((await mirrored("gone-1"))[0] === "IPv4 10.0.3.5 InternalIP" || undefined));
    // A cloud controller and kubelet fighting over the list, or a provider upgrade (kubernetes#48760).
    const plans = c.plans;
    await putAddresses("gone-1", [external("198.51.100.7"), { type: "Hostname", address: "gone-1" }]);
    await until("a plan over the new list", async () => (c.plans > plans || undefined));
    await sleep(300);
    expect(await mirrored("gone-1")).toEqual(["IPv4 10.0.3.5 InternalIP"]); // was: 198.51.100.7, every peer's route moved there
    const warning = await until("NodeInternalIPsGone on the Node", async () => (await eventsFor(fx.api(), "Node", "gone-1")).find((e) => e.reason === "NodeInternalIPsGone"));
    expect(warning.type).toBe("Warning");
    expect(warning.message).toBe("node gone-1 lists no InternalIP any more: agents keep routing its pods via 10.0.3.5, its last InternalIPs, not its ExternalIPs "
      + "198.51.100.7 (to route via those, remove spec.nodeIPsFrom from its NodeCIDRs)");
    expect(await inConflict(c, "NodeInternalIPsGone")).toBe(1);
    await putAddresses("gone-1", [internal("10.0.3.6"), external("198.51.100.7")]);
    await until("the new InternalIP mirrored", async () => ((await mirrored("gone-1"))[0] === "IPv4 10.0.3.6 InternalIP" || undefined));
    expect(await until("the warning cleared", async () => ((await inConflict(c, "NodeInternalIPsGone")) === 0 || undefined))).toBe(true);
  });

  it("a Node with ExternalIPs only follows them as they change, and a record from before nodeIPsFrom learns it in one write", async () => {
    await fx.api().core.createNode({ body: { metadata: { name: "ext-1" } } });
    await putAddresses("ext-1", [external("203.0.113.5")]);
    await fx.api().core.createNode({ body: { metadata: { name: "old-1" } } });
    await putAddresses("old-1", [internal("10.0.4.5")]);
    await putNodeCidr(fx.api(), "old-1", "10.244.9.0/24", ["10.0.4.5"]); // as a version before the field wrote it
    controller = await startController(fx, { "cluster-cidr": "10.244.0.0/16", "default-pool": "ext" });
    const c = controller;
    await until("the source recorded", async () => ((await mirrored("old-1"))[0] === "IPv4 10.0.4.5 InternalIP" || undefined));
    await until("ExternalIP mirrored", async () => ((await mirrored("ext-1"))[0] === "IPv4 203.0.113.5 ExternalIP" || undefined));
    await putAddresses("ext-1", [external("203.0.113.9")]);
    await until("the new ExternalIP mirrored", async () => ((await mirrored("ext-1"))[0] === "IPv4 203.0.113.9 ExternalIP" || undefined));
    expect(await writesOf(c, "updateNodeIPs")).toBe(2); // the stamp on old-1, the change on ext-1
    expect(await inConflict(c, "NodeInternalIPsGone")).toBe(0);
  });
});
