import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { podnetResource, apiMessage, apiStatus, applyStatus, installCrds } from "../../src/lib/k8s.js";
import { renderCrdYaml } from "../../src/crds/generate.js";
import { nodeCidrCrd } from "../../src/crds/nodecidr.js";
import { kubeBin } from "../../src/localcluster/kube-bins.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { until } from "../harness/controller-fixture.js";

const fx = useControlPlane();
const nodecidrs = podnetResource("nodecidrs");
const pools = podnetResource("podcidrpools");

const nameFor = (cidr: string) => cidr.replaceAll(".", "-").replaceAll(":", "-").replaceAll("/", "-");
function nodeCidr(cidr: string, overrides: Record<string, unknown> = {}, name = nameFor(cidr)) {
  const family = cidr.includes(":") ? "IPv6" : "IPv4";
  return {
    apiVersion: "podnet.io/v1alpha1", kind: "NodeCIDR", metadata: { name },
    spec: { nodeName: "node-a", cidr, family, pool: "default", nodeIPs: ["192.168.10.11"], ...overrides },
  };
}

async function createRejection(plural: typeof nodecidrs, body: object): Promise<string> {
  try {
    await fx.api().custom.createClusterCustomObject({ ...plural, body });
  } catch (err) {
    expect(apiStatus(err)).toBe(422);
    return apiMessage(err);
  }
  throw new Error("the API server accepted an object it should reject");
}

describe("NodeCIDR validation on the real API server", () => {
  it("accepts a canonical IPv4 and IPv6 NodeCIDR named after its CIDR", async () => {
    for (const cidr of ["10.244.1.0/24", "fd00:10:244:1::/64"]) {
      const created = await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: nodeCidr(cidr) });
      expect(created.spec.cidr).toBe(cidr);
    }
  });

  it.each([
    ["host bits", nodeCidr("10.244.2.5/24"), "must not have host bits"],
    ["not a CIDR", nodeCidr("10.244.300.0/24"), "must be a CIDR"],
    ["non-canonical IPv6", nodeCidr("fd00:0010:244:2::/64"), "must be written canonically"],
    ["uncompressed IPv6 (a second spelling of fd00:10:244:a::/64)", nodeCidr("fd00:10:244:a:0:0:0:0/64"), "must be written canonically"],
    ["family mismatch", nodeCidr("10.244.3.0/24", { family: "IPv6" }), "family must match"],
    ["name not derived from CIDR (the message names the one to use)", nodeCidr("10.244.4.0/24", {}, "my-cidr"), "metadata.name must be 10-244-4-0-24: spec.cidr with"],
    ["IPv6 name not derived from CIDR", nodeCidr("fd00:10:244:4::/64", {}, "fd00-10-244-4-64"), "metadata.name must be fd00-10-244-4---64"],
    ["loopback node IP", nodeCidr("10.244.5.0/24", { nodeIPs: ["127.0.0.1"] }), "must be a unicast node address"],
    ["unparsable node IP", nodeCidr("10.244.6.0/24", { nodeIPs: ["node-a"] }), "must be an IP address"],
    // The controller leaves these out (isGlobalUnicastIp); a create carrying one failed and was planned again for good.
    ["IPv4-mapped IPv6 node IP", nodeCidr("10.244.7.0/24", { nodeIPs: ["::ffff:192.168.10.11"] }), "must be an IP address"],
    ["node IPs from an address type podnet does not mirror", nodeCidr("10.244.8.0/24", { nodeIPsFrom: "Hostname" }), 'supported values: "InternalIP", "ExternalIP"'],
    ["a host route (every agent would route that address to one node)", nodeCidr("192.168.1.1/32"), "must be at most /30 (IPv4) or /126 (IPv6)"],
    ["a /127", nodeCidr("fd00:10:244:7::/127"), "must be at most /30"],
    ["the cloud metadata range", nodeCidr("169.254.169.0/24"), "must not overlap a special-purpose range"],
    ["the whole IPv4 space", nodeCidr("0.0.0.0/0"), "must not overlap a special-purpose range"],
    ["IPv6 link-local", nodeCidr("fe80::/64"), "must not overlap a special-purpose range"],
  ])("rejects %s with a clear message", async (_case, body, message) => {
    expect(await createRejection(nodecidrs, body)).toContain(message);
  });

  it.each([
    ["host bits", nodeCidr("10.244.2.5/24", {}, "10-244-2-0-24"), "must not have host bits"],
    ["not a CIDR", nodeCidr("10.244.2.0", {}, "x"), "must be a CIDR"],
    ["non-canonical IPv6", nodeCidr("FD00:10:244:2::/64", {}, "fd00-10-244-2---64"), "must be written canonically"],
  ])("names no expected object name beside a spec.cidr error (%s): the name rule would advise a name from a bad CIDR", async (_case, body, message) => {
    const refused = await createRejection(nodecidrs, body);
    expect(refused).toContain(message);
    expect(refused).not.toContain("metadata.name must be");
  });

  it("refuses a status write made on a version that changed since (how an agent's late write cannot undo a release)", async () => {
    const created = (await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: nodeCidr("10.244.31.0/24") })) as { metadata: { resourceVersion: string } };
    const seen = created.metadata.resourceVersion;
    await applyStatus(fx.api("podnet-controller"), "nodecidrs", "10-244-31-0-24", "NodeCIDR", { phase: "Released" });
    const late = await applyStatus(fx.api("podnet-agent"), "nodecidrs", "10-244-31-0-24", "NodeCIDR", { conditions: [] }, seen).then(() => undefined, (e: unknown) => e);
    expect(apiStatus(late)).toBe(409);
  });

  it("refuses a second holder of the same CIDR: the object name is the CIDR", async () => {
    await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: nodeCidr("10.244.7.0/24") });
    const err = await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: nodeCidr("10.244.7.0/24", { nodeName: "node-b" }) })
      .then(() => undefined, (e: unknown) => e);
    expect(apiStatus(err)).toBe(409);
  });

  it("keeps spec.cidr and spec.nodeName immutable", async () => {
    await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: nodeCidr("10.244.8.0/24") });
    const current = await fx.api().custom.getClusterCustomObject({ ...nodecidrs, name: "10-244-8-0-24" });
    const err = await fx.api().custom.replaceClusterCustomObject({
      ...nodecidrs, name: "10-244-8-0-24", body: { ...current, spec: { ...current.spec, nodeName: "node-z" } },
    }).then(() => undefined, (e: unknown) => e);
    expect(apiStatus(err)).toBe(422);
    expect(apiMessage(err)).toContain("nodeName is immutable");
  });

  it("selects a node's NodeCIDRs by the spec.nodeName field", async () => {
    await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: nodeCidr("10.244.9.0/24", { nodeName: "node-sel" }) });
    const list = await fx.api().custom.listClusterCustomObject({ ...nodecidrs, fieldSelector: "spec.nodeName=node-sel" });
    expect(list.items.map((i: { spec: { cidr: string } }) => i.spec.cidr)).toEqual(["10.244.9.0/24"]);
  });
});

describe("PodCIDRPool validation on the real API server", () => {
  const pool = (name: string, spec: object) => ({ apiVersion: "podnet.io/v1alpha1", kind: "PodCIDRPool", metadata: { name }, spec });

  it("accepts a dual-stack pool and lets it grow by a range", async () => {
    await fx.api().custom.createClusterCustomObject({ ...pools, body: pool("grow", {
      ipv4: { cidrs: ["10.244.0.0/16"], nodeMaskSize: 24 }, ipv6: { cidrs: ["fd00:10:244::/56"], nodeMaskSize: 64 },
    }) });
    const current = await fx.api().custom.getClusterCustomObject({ ...pools, name: "grow" });
    current.spec.ipv4.cidrs.push("10.245.0.0/16");
    const updated = await fx.api().custom.replaceClusterCustomObject({ ...pools, name: "grow", body: current });
    expect(updated.spec.ipv4.cidrs).toEqual(["10.244.0.0/16", "10.245.0.0/16"]);
    updated.spec.ipv4.cidrs = ["10.245.0.0/16"];
    const err = await fx.api().custom.replaceClusterCustomObject({ ...pools, name: "grow", body: updated }).then(() => undefined, (e: unknown) => e);
    expect(apiMessage(err)).toContain("can be added but not removed");
  });

  it("gives a family without nodeMaskSize the size its description names: /24 for IPv4, /64 for IPv6", async () => {
    const created = await fx.api().custom.createClusterCustomObject({ ...pools, body: pool("nomask", { ipv4: { cidrs: ["10.252.0.0/16"] }, ipv6: { cidrs: ["fd00:10:252::/48"] } }) });
    expect([created.spec.ipv4.nodeMaskSize, created.spec.ipv6.nodeMaskSize]).toEqual([24, 64]);
    // Defaulted before the rules run: a range narrower than the default slice is refused by the nodeMaskSize rule.
    expect(await createRejection(pools, pool("nomask-narrow", { ipv4: { cidrs: ["10.252.0.0/26"] } }))).toContain("nodeMaskSize must be at least");
  });

  it("accepts the short IPv6 ranges (fd00::/8, fc00::/7 is 8 characters) the flags take", async () => {
    const created = await fx.api().custom.createClusterCustomObject({ ...pools, body: pool("short", { ipv6: { cidrs: ["fd00::/8"], nodeMaskSize: 64 } }) });
    expect(created.spec.ipv6.cidrs).toEqual(["fd00::/8"]);
  });

  it.each([
    ["node slice larger than its range", { ipv4: { cidrs: ["10.244.0.0/16"], nodeMaskSize: 8 } }, "nodeMaskSize must be at least"],
    ["IPv6 range under ipv4", { ipv4: { cidrs: ["fd00::/56"], nodeMaskSize: 24 } }, "ipv4.cidrs must all be IPv4"],
    ["no family at all", { nodeSelector: { zone: "a" } }, "a pool needs ipv4 or ipv6"],
    ["host bits in a range", { ipv4: { cidrs: ["10.244.1.0/16"], nodeMaskSize: 24 } }, "must not have host bits"],
    ["IPv4 slices of one address (no room for pods next to the bridge)", { ipv4: { cidrs: ["10.244.0.0/16"], nodeMaskSize: 32 } }, "should be less than or equal to 30"],
    ["IPv6 slices of one address", { ipv6: { cidrs: ["fd00::/112"], nodeMaskSize: 128 } }, "should be less than or equal to 126"],
  ])("rejects a pool with %s", async (_case, spec, message) => {
    expect(await createRejection(pools, pool(`bad-${Math.random().toString(36).slice(2, 8)}`, spec))).toContain(message);
  });

  // A selector no Node can match left the pool Valid and serving nothing, silently (the key "bad key!" was accepted).
  const v4 = { cidrs: ["10.244.0.0/16"], nodeMaskSize: 24 };
  it("accepts every label key and value syntax a Node can carry", async () => {
    const nodeSelector = { "topology.kubernetes.io/zone": "eu-1a", "node.example.com/role": "", "a": "b", [`${"p".repeat(253)}/${"n".repeat(63)}`]: "v".repeat(63), "x_y.z-1": "A_b.c-9" };
    const created = await fx.api().custom.createClusterCustomObject({ ...pools, body: pool("labels", { ipv4: v4, nodeSelector }) });
    expect(created.spec.nodeSelector).toEqual(nodeSelector);
  });

  it.each([
    ["a key with a space and a '!'", { "bad key!": "r1", "rack": "r1" }, "spec.nodeSelector: Invalid value: keys must be label keys"],
    ["a key with an upper-case prefix", { "Example.com/zone": "a" }, "keys must be label keys"],
    ["a key of two slashes", { "a/b/c": "a" }, "keys must be label keys"],
    ["a key whose name is 64 characters", { ["n".repeat(64)]: "a" }, "keys must be label keys"],
    ["a key whose prefix is 254 characters", { [`${"p".repeat(254)}/zone`]: "a" }, "keys must be label keys"],
    ["an empty key", { "": "a" }, "keys must be label keys"],
    ["a value with a space", { rack: "r 1" }, 'spec.nodeSelector[rack]: Invalid value: "r 1": must be a label value'],
    ["a value ending in '-'", { rack: "r1-" }, "must be a label value"],
    ["33 labels (the bound that keeps the rules' cost within the API server's budget)", Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"])), "must have at most 32 items"],
  ])("rejects a nodeSelector with %s", async (_case, nodeSelector, message) => {
    expect(await createRejection(pools, pool(`sel-${Math.random().toString(36).slice(2, 8)}`, { ipv4: v4, nodeSelector }))).toContain(message);
  });
});

describe("a podnet newer than the CRDs on the cluster (helm upgrade does not update them)", () => {
  it("a status write with a field the installed CRD lacks is refused, and the message says to apply the new CRDs", async () => {
    const older = parse(renderCrdYaml(nodeCidrCrd)) as { spec: { versions: Array<{ schema: { openAPIV3Schema: { properties: { status: { properties: { agent: { properties: Record<string, unknown> } } } } } } }> } };
    delete older.spec.versions[0]!.schema.openAPIV3Schema.properties.status.properties.agent.properties.overlayRoutes; // as before 5f2a0ac
    const admin = fx.api();
    await installCrds(admin, [stringify(older)]);
    try {
      await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: nodeCidr("10.244.60.0/24") });
      const err = await applyStatus(fx.api("podnet-agent"), "nodecidrs", "10-244-60-0-24", "NodeCIDR", { agent: { overlayRoutes: 1 } }).then(() => undefined, (e: unknown) => e);
      expect(apiStatus(err)).toBe(500);
      expect(apiMessage(err)).toMatch(/field not declared in schema .*apply charts\/podnet\/crds/);
    } finally {
      await installCrds(admin, [renderCrdYaml(nodeCidrCrd)]);
    }
  });
});

describe("kubectl explain on the real API server", () => {
  const explain = async (path: string) => (await promisify(execFile)(kubeBin("kubectl"), [`--kubeconfig=${fx.cp.kubeconfig}`, "explain", path])).stdout;

  it.each([
    "nodecidr", "nodecidr.spec", "nodecidr.status", "nodecidr.status.conditions", "nodecidr.status.agent",
    "podcidrpool", "podcidrpool.spec", "podcidrpool.spec.ipv4", "podcidrpool.spec.ipv6", "podcidrpool.status", "podcidrpool.status.ipv4",
    "podcidrpool.status.ipv6", "podcidrpool.status.conditions",
  ])("describes %s and every field under it", async (path) => {
    // The API server publishes a new CRD's OpenAPI a moment after it is created.
    const text = await until(`explain ${path}`, () => explain(path).catch(() => undefined));
    expect(text).not.toMatch(/<empty>|<no description>/);
  });
});

describe("kubectl get on the real API server", () => {
  const kubectl = async (...args: string[]) => (await promisify(execFile)(kubeBin("kubectl"), [`--kubeconfig=${fx.cp.kubeconfig}`, ...args])).stdout;
  /** One row of a kubectl table by column name; columns start where their header does (a value may be empty). */
  const columns = (table: string, row: string) => {
    const [header, ...rows] = table.trimEnd().split("\n");
    const line = rows.find((l) => l.startsWith(`${row} `))!;
    const starts = [...header!.matchAll(/\S+/g)].map((m) => [m[0], m.index] as const);
    return Object.fromEntries(starts.map(([name, at], i) => [name, line.slice(at, starts[i + 1]?.[1]).trim()]));
  };

  it("shows a NodeCIDR's first node IP as an address, and the whole list with -o wide", async () => {
    await fx.api().custom.createClusterCustomObject({ ...nodecidrs, body: nodeCidr("10.244.70.0/24", { nodeName: "node-cols", nodeIPs: ["192.168.70.1", "fd00:70::1"] }) });
    const table = await kubectl("get", "nodecidrs", "--field-selector=spec.nodeName=node-cols");
    expect(columns(table, "10-244-70-0-24")).toMatchObject({ NODE: "node-cols", CIDR: "10.244.70.0/24", "NODE-IP": "192.168.70.1" });
    expect(table).not.toContain("NODE-IPS");
    const wide = await kubectl("get", "nodecidrs", "--field-selector=spec.nodeName=node-cols", "-o", "wide");
    expect(columns(wide, "10-244-70-0-24")).toMatchObject({ "NODE-IP": "192.168.70.1", "NODE-IPS": '["192.168.70.1","fd00:70::1"]' });
  });

  it("shows a pool's free IPv6 slices by default, and --sort-by orders the free counts as numbers (they are strings)", async () => {
    const family = (free: string) => ({ size: free, allocated: 0, free });
    for (const [name, free] of [["cols-a", "4294967296"], ["cols-b", "65536"]] as const) {
      await fx.api().custom.createClusterCustomObject({ ...pools, body: { apiVersion: "podnet.io/v1alpha1", kind: "PodCIDRPool", metadata: { name },
        spec: { ipv4: { cidrs: [name === "cols-a" ? "10.253.0.0/16" : "10.254.0.0/16"] }, ipv6: { cidrs: [name === "cols-a" ? "fd00:a::/32" : "fd00:b::/48"] }, nodeSelector: { cols: name } } } });
      await applyStatus(fx.api("podnet-controller"), "podcidrpools", name, "PodCIDRPool", { ipv4: family("256"), ipv6: family(free) });
    }
    expect(columns(await kubectl("get", "podcidrpools", "cols-a"), "cols-a")).toMatchObject({ "V4-FREE": "256", "V6-FREE": "4294967296" });
    // Text order would put "4294967296" first; kubectl compares strings that read as quantities by value.
    const sorted = (await kubectl("get", "podcidrpools", "--sort-by=.status.ipv6.free", "-o", "name")).split("\n").filter((l) => l.includes("cols-"));
    expect(sorted).toEqual(["podcidrpool.podnet.io/cols-b", "podcidrpool.podnet.io/cols-a"]);
  });
});
