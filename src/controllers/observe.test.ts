import { describe, expect, it } from "vitest";
import type { V1Node } from "@kubernetes/client-node";
import { nodeProjection, plannerNode, releaseState, type NodeCidrObject } from "./observe.js";

// A Node as kubelet registers it: most of its bytes are status the controller never reads.
const kubeletNode = (extra: Partial<V1Node> = {}): V1Node => ({
  metadata: { name: "worker-1", uid: "u1", resourceVersion: "42", labels: { "kubernetes.io/os": "linux" }, creationTimestamp: new Date(0), annotations: { "node.alpha.kubernetes.io/ttl": "0" } },
  spec: { podCIDR: "10.244.1.0/24", podCIDRs: ["10.244.1.0/24"], providerID: "kind://worker-1" },
  status: {
    addresses: [{ type: "InternalIP", address: "172.18.0.3" }, { type: "Hostname", address: "worker-1" }],
    conditions: [{ type: "Ready", status: "True", lastHeartbeatTime: new Date(1) }],
    images: Array.from({ length: 40 }, (_, i) => ({ names: [`registry.example/image-${i}@sha256:${"0".repeat(64)}`], sizeBytes: 1e8 })),
    capacity: { cpu: "2", memory: "8Gi" },
  },
  ...extra,
});

describe("nodeProjection", () => {
  it("keeps everything the planner reads", () => {
    expect(plannerNode(nodeProjection(kubeletNode()))).toEqual(plannerNode(kubeletNode()));
    const deleting = kubeletNode({ metadata: { ...kubeletNode().metadata, deletionTimestamp: new Date(5) } });
    expect(plannerNode(nodeProjection(deleting)).deleting).toBe(true);
  });

  it("drops kubelet's status, so heartbeats and image pulls neither fill the cache nor wake the planner", () => {
    const node = kubeletNode();
    const kept = JSON.stringify(nodeProjection(node)).length;
    expect(kept).toBeLessThan(JSON.stringify(node).length / 10);
    const heartbeat = kubeletNode({ status: { ...node.status, conditions: [{ type: "Ready", status: "True", lastHeartbeatTime: new Date(2) }] } });
    expect(nodeProjection(heartbeat)).toEqual(nodeProjection(node));
  });
});

describe("plannerNode: the Node's podCIDRs as the records spell them", () => {
  it.each([
    [["FD00:10:244:1::/64"], ["fd00:10:244:1::/64"]],
    [["fd00:10:244:1:0::/64", "10.244.1.0/24"], ["fd00:10:244:1::/64", "10.244.1.0/24"]],
    [["10.244.1.7/24", "not-a-cidr"], ["10.244.1.7/24", "not-a-cidr"]], // left as written for the planner to report
  ])("%j → %j", (written, planned) => {
    expect(plannerNode(kubeletNode({ spec: { podCIDRs: written } })).podCIDRs).toEqual(planned);
  });
});

describe("plannerNode: the node IPs agents route via", () => {
  const withAddresses = (list: Array<[string, string]>) => {
    const { nodeIPs, nodeIPsFrom } = plannerNode(kubeletNode({ status: { addresses: list.map(([type, address]) => ({ type, address })) } }));
    return [nodeIPs, nodeIPsFrom];
  };
  it.each([
    ["InternalIPs", [["InternalIP", "172.18.0.3"], ["ExternalIP", "203.0.113.3"], ["Hostname", "worker-1"]], ["172.18.0.3"], "InternalIP"],
    ["ExternalIPs when there is no InternalIP (a cloud registering public addresses only)", [["Hostname", "worker-1"], ["ExternalIP", "203.0.113.3"]], ["203.0.113.3"], "ExternalIP"],
    ["no ExternalIP beside an InternalIP, even of the other family (it could become the tunnel's endpoint)", [["ExternalIP", "203.0.113.3"], ["InternalIP", "fd00::3"]], ["fd00::3"], "InternalIP"],
    ["all ExternalIPs of a Node with no InternalIP", [["ExternalIP", "2001:db8::3"], ["ExternalIP", "203.0.113.3"]], ["2001:db8::3", "203.0.113.3"], "ExternalIP"],
    ["none from a Hostname", [["Hostname", "worker-1"]], [], undefined],
  ] as Array<[string, Array<[string, string]>, string[], string | undefined]>)("%s", (_case, addresses, ips, from) => {
    expect(withAddresses(addresses)).toEqual([ips, from]);
    // The cache keeps what this needs.
    expect(plannerNode(nodeProjection(kubeletNode({ status: { addresses: addresses.map(([type, address]) => ({ type, address })) } }))).nodeIPs).toEqual(ips);
  });
});

describe("releaseState", () => {
  const record = (uid: string, status: NodeCidrObject["status"]): NodeCidrObject =>
    ({ metadata: { name: "10-244-0-0-24", uid }, spec: { nodeName: "a", cidr: "10.244.0.0/24", family: "IPv4", pool: "default" }, status });
  const released = (uid: string, releasedAt: string, extra = {}) => releaseState(record(uid, { phase: "Released", releasedAt, ...extra }));

  it("names one release: the same through other status writes, another when stamped again or for a record made anew", () => {
    expect(released("u1", "2026-01-01T00:00:00.000Z", { conditions: [{ type: "Ready", status: "False", reason: "NodeDeleted", message: "" }] }))
      .toBe(released("u1", "2026-01-01T00:00:00.000Z"));
    expect(released("u1", "2026-01-01T00:00:05.000Z")).not.toBe(released("u1", "2026-01-01T00:00:00.000Z"));
    expect(released("u2", "2026-01-01T00:00:00.000Z")).not.toBe(released("u1", "2026-01-01T00:00:00.000Z"));
    expect(releaseState(record("u1", { phase: "Allocated" }))).toBeUndefined();
  });
});
