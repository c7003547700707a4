import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyStatus, podnetResource } from "../../src/lib/k8s.js";
import { addPod, CNI_BIN_DIR, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { conflistText, renderConflist } from "../../src/node-agent/cni-conflist.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

const fx = useControlPlane();
const nodecidrs = podnetResource("nodecidrs");
let bed: NetBed;
let agent: TestAgent;
/** n1's CNI bin dir: the real plugins, and Istio's under its name (a chained plugin is kept only while its binary is there). */
let n1Bin: string;
const pods: Pod[] = [];
const conflistPath = () => join(agent.confDir, "10-podnet.conflist");
type Plugin = { type: string; hairpinMode?: boolean };
const readConflist = () => JSON.parse(readFileSync(conflistPath(), "utf8")) as { plugins: Plugin[] };
/** As an installer writes it: another file in the directory, renamed over the conflist. */
function installerWrites(conflist: object): void {
  const tmp = join(agent.confDir, ".installer-tmp");
  writeFileSync(tmp, JSON.stringify(conflist, null, 4));
  renameSync(tmp, conflistPath());
}
const cniErrors = async () => (await agent.agent.metrics.errors.get()).values.find((v) => v.labels.step === "cni")?.value ?? 0;

// What the agent does with the conflist on disk: one agent, on n1; n2 only holds records.
describe.skipIf(!isRoot())("the podnet conflist on a node (rung 3: real agent and API server)", () => {
  beforeAll(async () => {
    bed = createNetBed("cf", 2, 60);
    await putNodeCidr(fx.api(), "n1", "10.248.1.0/24", [bed.nodes[0]!.ip]);
    await putNodeCidr(fx.api(), "n2", "10.248.2.0/24", [bed.nodes[1]!.ip]);
    n1Bin = mkdtempSync(join(tmpdir(), "podnet-cni-bin-n1-"));
    for (const p of ["bridge", "host-local", "portmap", "loopback"]) symlinkSync(join(CNI_BIN_DIR, p), join(n1Bin, p));
    symlinkSync(join(CNI_BIN_DIR, "tuning"), join(n1Bin, "istio-cni"));
    agent = await startAgent(fx, bed.nodes[0]!, { "cni-bin-dir": n1Bin });
    await waitFor("conflist", async () => (existsSync(conflistPath()) ? true : undefined), 15_000);
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    await agent?.stop();
    bed?.destroy();
    if (n1Bin) rmSync(n1Bin, { recursive: true, force: true });
  });

  it("keeps a plugin Istio chained after podnet's: the file stays as Istio wrote it; a hand edit to podnet's entries is still restored", async () => {
    const podnetOnly = readConflist();
    const istio = { type: "istio-cni", log_level: "info", kubernetes: { kubeconfig: "/etc/cni/net.d/ZZZ-istio-cni-kubeconfig", cni_bin_dir: "/opt/cni/bin" } };
    installerWrites({ ...podnetOnly, plugins: [...podnetOnly.plugins, istio] });
    const written = readFileSync(conflistPath(), "utf8");
    const { mtimeMs, ino } = statSync(conflistPath());
    await agent.agent.syncNow();
    await agent.agent.syncNow();
    expect(agent.agent.lastOutcome!.cni).toMatchObject({ changed: false });
    expect(readFileSync(conflistPath(), "utf8")).toBe(written);
    expect(statSync(conflistPath())).toMatchObject({ mtimeMs, ino });

    const edited = readConflist();
    edited.plugins[0]!.hairpinMode = false;
    installerWrites(edited);
    await agent.agent.syncNow();
    const restored = readConflist();
    expect(restored.plugins.map((p) => p.type)).toEqual(["bridge", "portmap", "istio-cni"]);
    expect(restored.plugins[0]!.hairpinMode).toBe(true);
    expect(restored.plugins[2]).toEqual(istio);

    // The mesh uninstalled (its plugin taken out): podnet's own file, untouched by the agent.
    installerWrites(podnetOnly);
    await agent.agent.syncNow();
    expect(agent.agent.lastOutcome!.cni).toMatchObject({ changed: false });
  });

  it("counts as configured when Multus's 00-multus.conf sorts first and hands pods to podnet's network (saying when it holds a copy); a foreign config first still shadows it", async () => {
    const cniConfigured = async () => (await conditionsOf(fx.api(), "10-248-1-0-24")).find((c) => c.type === "CNIConfigured");
    const multus = join(agent.confDir, "00-multus.conf");
    const cilium = join(agent.confDir, "00-cilium.conflist");
    try {
      writeFileSync(multus, JSON.stringify({ cniVersion: "0.3.1", name: "multus-cni-network", type: "multus-shim", clusterNetwork: "/host/etc/cni/net.d/10-podnet.conflist" }));
      const used = await waitFor("used through Multus", async () => ((await cniConfigured())?.message.includes("used through 00-multus.conf") ? cniConfigured() : undefined), 10_000);
      expect(used).toMatchObject({ status: "True", reason: "Written" });
      expect(used!.message).not.toContain("copy");
      // Multus's thin plugin, its auto-generated config holding a copy of podnet's conflist: podnet's changes wait for Multus.
      writeFileSync(multus, JSON.stringify({ cniVersion: "0.3.1", name: "multus-cni-network", type: "multus", kubeconfig: "/etc/cni/net.d/multus.d/multus.kubeconfig", delegates: [readConflist()] }));
      const copy = await waitFor("used through Multus's copy", async () => ((await cniConfigured())?.message.includes("holds its own copy") ? cniConfigured() : undefined), 10_000);
      expect(copy).toMatchObject({ status: "True", reason: "Written",
        message: `${conflistPath()} in place, used through 00-multus.conf, which holds its own copy: changes reach pods only when Multus rewrites it` });
      writeFileSync(cilium, JSON.stringify({ cniVersion: "0.3.1", name: "cilium", plugins: [{ type: "cilium-cni" }] }));
      await waitFor("shadowed", async () => ((await cniConfigured())?.reason === "CNIConfigShadowed" ? true : undefined), 10_000);
    } finally {
      rmSync(multus, { force: true });
      rmSync(cilium, { force: true });
    }
    await waitFor("in place again", async () => ((await cniConfigured())?.message === `${conflistPath()} in place` ? true : undefined), 10_000);
  });

  it("writes no first conflist while a plugin is missing, and keeps an existing conflist's cniVersion when a VERSION probe fails", async () => {
    const binDir = mkdtempSync(join(tmpdir(), "podnet-cni-bin-"));
    let n2: TestAgent | undefined;
    try {
      for (const p of ["bridge", "host-local", "loopback"]) symlinkSync(join(CNI_BIN_DIR, p), join(binDir, p));
      n2 = await startAgent(fx, bed.nodes[1]!, { "cni-bin-dir": binDir });
      const n2Conflist = join(n2.confDir, "10-podnet.conflist");
      await n2.agent.syncNow();
      expect(n2.agent.lastOutcome!.cni.missingPlugins).toEqual(["portmap"]);
      expect(existsSync(n2Conflist)).toBe(false);

      // A portmap whose VERSION call fails, beside the conflist an agent wrote for plugins older than CNI 1.0.
      writeFileSync(join(binDir, "portmap"), "#!/bin/sh\nexit 1\n");
      chmodSync(join(binDir, "portmap"), 0o755);
      writeFileSync(n2Conflist, conflistText(renderConflist({ cniVersion: "0.4.0", podCidrs: ["10.248.2.0/24"], mtu: 1500, ipamDataDir: join(n2.dir, "ipam") })));
      await n2.agent.syncNow();
      expect(n2.agent.lastOutcome!.cni.missingPlugins).toEqual([]);
      expect(JSON.parse(readFileSync(n2Conflist, "utf8"))).toMatchObject({ cniVersion: "0.4.0" });

      // The real portmap back: the next full pass probes again and takes what all three speak.
      rmSync(join(binDir, "portmap"));
      symlinkSync(join(CNI_BIN_DIR, "portmap"), join(binDir, "portmap"));
      await n2.agent.syncNow();
      expect(JSON.parse(readFileSync(n2Conflist, "utf8"))).toMatchObject({ cniVersion: "1.0.0" });
    } finally {
      await n2?.stop();
      rmSync(binDir, { recursive: true, force: true });
    }
  });

  it("drops a plugin chained after podnet's whose binary is gone, keeps one whose binary is there, and the real plugins add a pod through it", async () => {
    const binDir = mkdtempSync(join(tmpdir(), "podnet-cni-bin-"));
    let n2: TestAgent | undefined;
    let pod: Pod | undefined;
    try {
      for (const p of ["bridge", "host-local", "portmap", "loopback"]) symlinkSync(join(CNI_BIN_DIR, p), join(binDir, p));
      // A mesh plugin under its own name: the real tuning plugin, which passes the result on and sets a sysctl in the pod.
      symlinkSync(join(CNI_BIN_DIR, "tuning"), join(binDir, "mesh-tuning"));
      n2 = await startAgent(fx, bed.nodes[1]!, { "cni-bin-dir": binDir });
      const n2Conflist = join(n2.confDir, "10-podnet.conflist");
      await waitFor("n2's conflist", async () => (existsSync(n2Conflist) ? true : undefined), 15_000);
      const ours = JSON.parse(readFileSync(n2Conflist, "utf8")) as { plugins: Plugin[] };
      // Istio's entry, its installer killed before its cleanup took it out with its binary; the mesh plugin after it.
      const mesh = { type: "mesh-tuning", sysctl: { "net.ipv4.conf.eth0.log_martians": "1" } };
      writeFileSync(n2Conflist, JSON.stringify({ ...ours, plugins: [...ours.plugins, { type: "istio-cni", log_level: "info" }, mesh] }));
      await n2.agent.syncNow();
      expect((JSON.parse(readFileSync(n2Conflist, "utf8")) as { plugins: Plugin[] }).plugins).toEqual([...ours.plugins, mesh]);
      expect(n2.agent.lastOutcome!.cni.droppedChained).toEqual({ plugins: ["istio-cni"], binDir });
      pod = addPod(bed.nodes[1]!.ns, n2.confDir, "cf-chained", [], binDir);
      expect(pod.ips).toEqual([expect.stringMatching(/^10\.248\.2\./)]);
      expect(execFileSync("ip", ["netns", "exec", pod.ns, "cat", "/proc/sys/net/ipv4/conf/eth0/log_martians"]).toString().trim()).toBe("1");
      const cni = await waitFor("named in CNIConfigured", async () => (await conditionsOf(fx.api(), "10-248-2-0-24")).find((c) => c.type === "CNIConfigured" && c.message.includes("istio-cni dropped")), 10_000);
      expect(cni.status).toBe("True");
    } finally {
      if (pod) deletePod(pod);
      await n2?.stop();
      rmSync(binDir, { recursive: true, force: true });
    }
  });

  it("hands out one pod CIDR per family: a second IPv4 record for n1 is left out, and the real plugins still add pods", async () => {
    // Made later, sorting first by name: the older record's range, which pods hold, stays.
    await putNodeCidr(fx.api(), "n1", "10.248.0.0/24", [bed.nodes[0]!.ip]);
    try {
      await waitFor("second CIDR seen", async () => (agent.agent.lastOutcome?.cni.unusedCidrs?.includes("10.248.0.0/24") ? true : undefined), 10_000);
      expect(readConflist().plugins[0]).toMatchObject({ ipam: { ranges: [[{ subnet: "10.248.1.0/24" }]], routes: [{ dst: "0.0.0.0/0" }] } });
      const pod = addPod(bed.nodes[0]!.ns, agent.confDir, "cf-one-range");
      pods.push(pod);
      expect(pod.ips).toEqual([expect.stringMatching(/^10\.248\.1\./)]);
      const cni = await waitFor("named in CNIConfigured", async () => (await conditionsOf(fx.api(), "10-248-1-0-24")).find((c) => c.type === "CNIConfigured" && c.message.includes("10.248.0.0/24")), 10_000);
      expect(cni.status).toBe("True");
    } finally {
      await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: "10-248-0-0-24" });
    }
    deletePod(pods.pop()!);
  });

  // Last: it takes n1's CIDR away.
  it("is kept while the node's old range is only Released, and removed once another node holds that range (not yet routed)", async () => {
    expect(readFileSync(conflistPath(), "utf8")).toContain("10.248.1.0/24");
    await applyStatus(fx.api(), "nodecidrs", "10-248-1-0-24", "NodeCIDR", { phase: "Released" });
    await waitFor("Released seen", async () => (agent.agent.records.cache.get("10-248-1-0-24")?.status?.phase === "Released" ? true : undefined), 10_000);
    await agent.agent.syncNow();
    expect(agent.agent.lastOutcome!.cni.skipped).toBeDefined();
    expect(existsSync(conflistPath())).toBe(true);

    const errorsBefore = await cniErrors();
    await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: "10-248-1-0-24" });
    // n9's node IPs not mirrored yet: no route to it, and it holds the range all the same.
    await putNodeCidr(fx.api(), "n9", "10.248.1.0/24", []);
    await waitFor("conflist removed", async () => (existsSync(conflistPath()) ? undefined : true), 10_000);
    // Counted when the pass ends (nft and sysctls come after the conflist).
    await waitFor("the cni step counted as failed", async () => ((await cniErrors()) > errorsBefore ? true : undefined), 5_000);
    // Gone, it stays gone without another error: the node has no CIDR and no conflist.
    await agent.agent.syncNow();
    expect(agent.agent.lastOutcome!.cni).toMatchObject({ skipped: "no NodeCIDR is allocated to this node yet" });
    expect(agent.agent.lastOutcome!.cni.error).toBeUndefined();
  });
});
