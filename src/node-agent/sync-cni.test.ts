import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { agentConfigSchema } from "../config.js";
import { conflistText, renderConflist } from "./cni-conflist.js";
import type { DesiredNodeState } from "./desired-state.js";
import { agentConditions, type SyncOutcome } from "./report.js";
import { CNI_PLUGINS, syncCni } from "./sync-cni.js";
import type { SyncInput } from "./sync.js";

// syncCni on temp dirs: stub plugins that answer VERSION, no kernel and no namespace.
const root = mkdtempSync(join(tmpdir(), "podnet-sync-cni-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function stubPlugin(binDir: string, type: string): void {
  writeFileSync(join(binDir, type), `#!/bin/sh\necho '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}'\n`);
  chmodSync(join(binDir, type), 0o755);
}

const withCidr: DesiredNodeState = { ownCidrs: ["10.244.1.0/24"], unusedOwnCidrs: [], podNetwork: ["10.244.0.0/16"], routes: [], othersLive: [], rejected: [], ownWithheld: [], families: [4] };

function node(name: string, state = withCidr, flags: Record<string, string> = {}, familyWait?: SyncInput["familyWait"]) {
  const dir = join(root, name);
  const confDir = join(dir, "net.d");
  const binDir = join(dir, "bin");
  mkdirSync(confDir, { recursive: true });
  mkdirSync(binDir);
  for (const p of CNI_PLUGINS) stubPlugin(binDir, p);
  const logs: Array<{ level: number; msg: string } & Record<string, unknown>> = [];
  const log = pino({ level: "info" }, { write: (line: string) => { logs.push(JSON.parse(line) as (typeof logs)[number]); } });
  const config = agentConfigSchema.parse({ "node-name": name, "cni-conf-dir": confDir, "cni-bin-dir": binDir, "ipam-data-dir": join(dir, "ipam"), ...flags });
  const path = join(confDir, "10-podnet.conflist");
  return {
    binDir, confDir, path, logs,
    sync: (linkMtu: number | "unknown" = 1500) => syncCni({ config, state, log, full: true, familyWait }, linkMtu === "unknown" ? undefined : linkMtu),
    mtu: () => (JSON.parse(readFileSync(path, "utf8")) as { plugins: Array<{ type: string; mtu?: number }> }).plugins.find((p) => p.type === "bridge")?.mtu,
    plugins: () => (JSON.parse(readFileSync(path, "utf8")) as { plugins: Array<{ type: string }> }).plugins.map((p) => p.type),
  };
}

const cniConfigured = (cni: SyncOutcome["cni"]) => agentConditions({
  routes: { desired: 0, installed: 0, overlay: 0, overlayChanges: 0, added: 0, replaced: 0, deleted: 0, conflicts: [], unreachable: [] },
  cni, masquerade: { enabled: true }, sysctls: {}, rejected: [],
}).find((c) => c.type === "CNIConfigured")!;

describe("syncCni: plugins chained after podnet's are kept only while the runtime can run them", () => {
  it("drops one whose binary is not in the CNI bin dir, names it while it stays missing, and keeps one whose binary is there", async () => {
    const n = node("chained");
    await n.sync();
    const ours = JSON.parse(readFileSync(n.path, "utf8")) as { plugins: object[] };
    stubPlugin(n.binDir, "mesh-ok");
    // Istio's plugin, its installer killed before its cleanup took out its binary and its entry; a hand-added one whose binary is there.
    const istio = { type: "istio-cni", log_level: "info" };
    writeFileSync(n.path, JSON.stringify({ ...ours, plugins: [...ours.plugins, istio, { type: "mesh-ok" }] }));

    const first = await n.sync();
    expect(n.plugins()).toEqual(["bridge", "portmap", "mesh-ok"]);
    expect(first).toMatchObject({ changed: true, droppedChained: { plugins: ["istio-cni"], binDir: n.binDir } });
    expect(n.logs.find((l) => l.level === 40 && l.msg.startsWith("dropped plugins chained"))).toMatchObject({ plugins: ["istio-cni"], binDir: n.binDir });
    expect(cniConfigured(first)).toMatchObject({ status: "True", reason: "Written" });
    expect(cniConfigured(first).message).toContain(`istio-cni dropped from the plugins chained after podnet's: not in ${n.binDir}, so every pod's CNI ADD would fail on it`);

    // The file no longer names it; the condition still does while the binary is missing, then no longer.
    const again = await n.sync();
    expect(again).toMatchObject({ changed: false, droppedChained: { plugins: ["istio-cni"] } });
    stubPlugin(n.binDir, "istio-cni");
    expect((await n.sync()).droppedChained).toBeUndefined();
  });

  it("drops a type libcni would refuse or not find: a path, a directory", async () => {
    const n = node("odd-types");
    await n.sync();
    const ours = JSON.parse(readFileSync(n.path, "utf8")) as { plugins: object[] };
    mkdirSync(join(n.binDir, "a-dir"));
    writeFileSync(n.path, JSON.stringify({ ...ours, plugins: [...ours.plugins, { type: "../bin/bridge" }, { type: "a-dir" }] }));
    expect((await n.sync()).droppedChained?.plugins).toEqual(["../bin/bridge", "a-dir"]);
    expect(n.plugins()).toEqual(["bridge", "portmap"]);
  });
});

describe("syncCni: the pods' MTU follows the node's link, and stays as it was while the link's is unknown", () => {
  it("rewrites the conflist when the link's MTU changes, and keeps the MTU pods already get when it cannot be read", async () => {
    const n = node("mtu-follows");
    expect(await n.sync(1400)).toMatchObject({ changed: true });
    expect(n.mtu()).toBe(1400);
    // Jumbo frames turned on: new pods get them, not the MTU written before.
    expect(await n.sync(9000)).toMatchObject({ changed: true });
    expect(n.mtu()).toBe(9000);
    // The node IP's link not found (its address just moved): no fall back to 1500 under pods started at 9000.
    expect(await n.sync("unknown")).toMatchObject({ changed: false });
    expect(n.mtu()).toBe(9000);
  });

  it("with no link and no conflist yet: Ethernet's 1500, less VXLAN's 50 bytes when everything is encapsulated", async () => {
    const plain = node("mtu-fallback");
    await plain.sync("unknown");
    expect(plain.mtu()).toBe(1500);
    const vxlan = node("mtu-fallback-vxlan", withCidr, { overlay: "vxlan" });
    await vxlan.sync("unknown");
    expect(vxlan.mtu()).toBe(1450);
  });

  it("--mtu wins over the link's", async () => {
    const n = node("mtu-flag", withCidr, { mtu: "1380" });
    await n.sync(9000);
    expect(n.mtu()).toBe(1380);
  });
});

describe("syncCni on a node without a pod CIDR whose range another node holds", () => {
  const n9Holds: DesiredNodeState = { ...withCidr, ownCidrs: [], families: [], othersLive: [{ dst: "10.244.1.0/24", nodeName: "n9" }] };

  it("in a dry run, keeps the file and logs at info what it would remove: no error, so nothing counted in podnet_agent_errors_total", async () => {
    const n = node("dry-run", n9Holds, { "dry-run": "true" });
    writeFileSync(n.path, conflistText(renderConflist({ cniVersion: "1.0.0", podCidrs: ["10.244.1.0/24"], mtu: 1500 })));
    for (let pass = 0; pass < 2; pass++) {
      const cni = await n.sync();
      expect(cni.error).toBeUndefined();
      expect(cni.skipped).toBe("no NodeCIDR is allocated to this node yet");
    }
    expect(existsSync(n.path)).toBe(true);
    expect(n.logs.filter((l) => l.level >= 50)).toEqual([]);
    expect(n.logs.filter((l) => l.msg.startsWith("dry-run: would remove"))).toEqual([
      expect.objectContaining({ level: 30, msg: expect.stringContaining("hands out 10.244.1.0/24 (now node n9's 10.244.1.0/24)") }),
      expect.objectContaining({ level: 30 }),
    ]);
  });

  it("says that a thin Multus config's own copy of the conflist goes on handing out the range", async () => {
    const n = node("multus-copy", n9Holds);
    const ours = renderConflist({ cniVersion: "1.0.0", podCidrs: ["10.244.1.0/24"], mtu: 1500 });
    writeFileSync(n.path, conflistText(ours));
    writeFileSync(join(n.confDir, "00-multus.conf"), JSON.stringify({ cniVersion: "0.3.1", name: "multus-cni-network", type: "multus", delegates: [ours] }));
    const cni = await n.sync();
    expect(existsSync(n.path)).toBe(false);
    expect(cni).toMatchObject({ usedThrough: "00-multus.conf", usedThroughCopy: true });
    expect(cni.error).toContain("but 00-multus.conf holds its own copy of it, which the runtime goes on using until Multus rewrites it");
  });
});

describe("syncCni: a dual-stack node's first conflist waits for its second family", () => {
  const gap = { pools: ["dual"], expected: [4, 6] as Array<4 | 6>, missing: [6] as Array<4 | 6> };
  it("writes none within the grace period (CNIConfigured=False, FamilyPending), then one with what the node has", async () => {
    const held = node("family-held", withCidr, {}, { gap, waitedMs: 1_000, graceMs: 10_000 });
    expect(await held.sync()).toMatchObject({ changed: false, awaitingFamilies: [6] });
    expect(existsSync(held.path)).toBe(false);
    expect(cniConfigured(await held.sync())).toMatchObject({ status: "False", reason: "FamilyPending" });
    const late = node("family-late", withCidr, {}, { gap, waitedMs: 10_000, graceMs: 10_000 });
    expect(await late.sync()).toMatchObject({ changed: true });
    expect(readFileSync(late.path, "utf8")).toContain("10.244.1.0/24");
  });

  it("does not hold back a node whose conflist is there already (an agent restart)", async () => {
    const n = node("family-restart", withCidr, {}, { gap, waitedMs: 0, graceMs: 10_000 });
    writeFileSync(n.path, conflistText(renderConflist({ cniVersion: "1.0.0", podCidrs: ["10.244.1.0/24"], mtu: 1500, ipamDataDir: "/var/lib/cni/networks" })));
    const cni = await n.sync();
    expect(cni.awaitingFamilies).toBeUndefined();
    expect(existsSync(n.path)).toBe(true);
  });
});
