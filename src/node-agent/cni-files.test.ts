import { linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { conflistText, renderConflist } from "./cni-conflist.js";
import { configPrecedence, delegatesToPodnet, runtimeConfigFiles, writeFileAtomic } from "./cni-files.js";

describe("runtimeConfigFiles / configPrecedence", () => {
  const dir = mkdtempSync(join(tmpdir(), "podnet-cni-files-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("lists what libcni would (dotfiles too, not directories or our temp files), in the runtime's order", () => {
    for (const f of [".hidden.conflist", "05-x.conf", ".10-podnet.conflist.tmp-123", "10-podnet.conflist", "99-z.json", "README"]) writeFileSync(join(dir, f), "{}");
    mkdirSync(join(dir, "00-dir.conf"));
    expect(runtimeConfigFiles(dir)).toEqual([".hidden.conflist", "05-x.conf", "10-podnet.conflist", "99-z.json"]);
    // A hidden file sorts before every digit: containerd and CRI-O would load it instead of podnet's.
    expect(configPrecedence(dir, "10-podnet.conflist")).toEqual({ shadowedBy: [".hidden.conflist", "05-x.conf"] });
    expect(runtimeConfigFiles(join(dir, "missing"))).toEqual([]);
  });
});

const podnet = JSON.parse(conflistText(renderConflist({ cniVersion: "1.0.0", podCidrs: ["10.244.1.0/24"], mtu: 1500 }))) as object;
// As Multus writes them (its docs and generated files): the thick plugin's shim config, the thin plugin's
// auto-generated config with the primary conflist copied in, the thin one naming the primary network.
const thickMultus = (clusterNetwork: string) => ({ capabilities: { portMappings: true }, cniVersion: "0.3.1", logLevel: "verbose", logToStderr: true,
  name: "multus-cni-network", clusterNetwork, type: "multus-shim" });
const thinMultus = (delegates: object[], extra: object = {}) => ({ cniVersion: "0.3.1", name: "multus-cni-network", type: "multus",
  capabilities: { portMappings: true }, kubeconfig: "/etc/cni/net.d/multus.d/multus.kubeconfig", delegates, ...extra });
const flannel = { cniVersion: "0.3.1", name: "cbr0", plugins: [{ type: "flannel", delegate: { hairpinMode: true, isDefaultGateway: true } }, { type: "portmap", capabilities: { portMappings: true } }] };
const cilium = { cniVersion: "0.3.1", name: "cilium", plugins: [{ type: "cilium-cni", "enable-debug": false, "log-file": "/var/run/cilium/cilium-cni.log" }] };

describe("delegatesToPodnet: a config that sorts first but hands pods to podnet's network does not shadow it", () => {
  // reference: Multus reads podnet's file (or network) at each ADD; copy: podnet's changes wait for Multus to rewrite its file.
  it.each([
    ["thick Multus naming podnet's conflist as its container sees it", thickMultus("/host/etc/cni/net.d/10-podnet.conflist"), "reference"],
    ["thick Multus on OpenShift's auto-config path", thickMultus("/host/run/multus/cni/net.d/10-podnet.conflist"), "reference"],
    ["thin Multus with podnet's conflist copied in as the first delegate", thinMultus([podnet]), "copy"],
    ["thin Multus renamed after the primary network (--rename-conf)", thinMultus([podnet], { name: "podnet" }), "copy"],
    ["thin Multus naming podnet's network in clusterNetwork", thinMultus([], { clusterNetwork: "podnet" }), "reference"],
    ["thin Multus naming podnet's conflist in clusterNetwork beside a stale copy (clusterNetwork wins)", thinMultus([podnet], { clusterNetwork: "/etc/cni/net.d/10-podnet.conflist" }), "reference"],
    ["Multus as a conflist", { cniVersion: "0.3.1", name: "multus-cni-network", plugins: [{ ...thickMultus("/etc/cni/net.d/10-podnet.conflist"), name: undefined }] }, "reference"],
    ["thick Multus delegating to another primary", thickMultus("/host/etc/cni/net.d/10-calico.conflist"), undefined],
    ["thin Multus with podnet as a second delegate only", thinMultus([flannel, podnet]), undefined],
    ["thin Multus whose clusterNetwork names another network (it wins over delegates)", thinMultus([podnet], { clusterNetwork: "/etc/cni/net.d/05-cilium.conflist" }), undefined],
    ["a foreign primary network's conflist", cilium, undefined],
    ["flannel's conflist", flannel, undefined],
  ])("%s → %s", (_name, conf, expected) => {
    expect(delegatesToPodnet(JSON.stringify(conf), "podnet", "10-podnet.conflist")).toBe(expected);
  });

  it("reads nothing into broken or odd JSON", () => {
    for (const text of ["{", "null", "[1]", '"podnet"', '{"delegates": "podnet"}', '{"delegates": [null]}']) expect(delegatesToPodnet(text, "podnet", "10-podnet.conflist")).toBeUndefined();
  });

  it("the runtime's pick decides: Multus first is podnet used through it; a foreign config first shadows, a later Multus or not", () => {
    const dir = mkdtempSync(join(tmpdir(), "podnet-cni-multus-"));
    try {
      writeFileSync(join(dir, "10-podnet.conflist"), JSON.stringify(podnet));
      writeFileSync(join(dir, "00-multus.conf"), JSON.stringify(thickMultus("/host/etc/cni/net.d/10-podnet.conflist")));
      writeFileSync(join(dir, "05-cilium.conflist"), JSON.stringify(cilium));
      expect(configPrecedence(dir, "10-podnet.conflist")).toEqual({ shadowedBy: [], usedThrough: "00-multus.conf" });
      writeFileSync(join(dir, "00-multus.conf"), JSON.stringify(thinMultus([podnet])));
      expect(configPrecedence(dir, "10-podnet.conflist")).toEqual({ shadowedBy: [], usedThrough: "00-multus.conf", usedThroughCopy: true });
      writeFileSync(join(dir, "00-cilium.conflist"), JSON.stringify(cilium));
      expect(configPrecedence(dir, "10-podnet.conflist")).toEqual({ shadowedBy: ["00-cilium.conflist", "00-multus.conf", "05-cilium.conflist"] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("writeFileAtomic", () => {
  const dir = mkdtempSync(join(tmpdir(), "podnet-cni-write-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("never writes through a planted temp-file symlink: the file lands as a regular file, the symlink's target is untouched", () => {
    const conf = join(dir, "net.d");
    mkdirSync(conf);
    const victim = join(dir, "victim");
    writeFileSync(victim, "precious");
    // The names the agent used before (pid 1 in its container) and a leftover of a killed run.
    for (const pid of [1, process.pid]) symlinkSync(victim, join(conf, `.10-podnet.conflist.tmp-${pid}`));
    expect(writeFileAtomic(conf, "10-podnet.conflist", "{}\n")).toBe(true);
    expect(readFileSync(victim, "utf8")).toBe("precious");
    expect(lstatSync(join(conf, "10-podnet.conflist")).isFile()).toBe(true);
    expect(readdirSync(conf)).toEqual(["10-podnet.conflist"]);
    expect(writeFileAtomic(conf, "10-podnet.conflist", "{}\n")).toBe(false);
  });

  it("replaces the file by rename: a reader holding the old file keeps reading it whole, the name gives the new one", () => {
    const conf = join(dir, "replace");
    mkdirSync(conf);
    const target = join(conf, "10-podnet.conflist");
    writeFileSync(target, "old\n");
    // The runtime's reader mid-read, as the kernel sees it: the old inode, held by another name.
    const held = join(dir, "held-old");
    linkSync(target, held);
    expect(writeFileAtomic(conf, "10-podnet.conflist", "new\n")).toBe(true);
    // Written in place, the old inode would now hold the new text, or part of it while the write was under way.
    expect(readFileSync(held, "utf8")).toBe("old\n");
    expect(readFileSync(target, "utf8")).toBe("new\n");
    expect(lstatSync(target).ino).not.toBe(lstatSync(held).ino);
    expect(readdirSync(conf)).toEqual(["10-podnet.conflist"]);
  });

  it("says the same when the directory refuses the write again: the message, not the temp file's random name", () => {
    // sysfs creates no files, for root either (a read-only mount or SELinux refuses the same way).
    const refused = () => { try { writeFileAtomic("/sys/kernel", "10-podnet.conflist", "{}\n"); return "written"; } catch (err) { return (err as Error).message; } };
    const first = refused();
    expect(first).toMatch(/^cannot write \/sys\/kernel\/10-podnet\.conflist: E[A-Z]+: .*'\/sys\/kernel\/\.10-podnet\.conflist\.tmp-\*'$/);
    expect(refused()).toBe(first);
  });
});
