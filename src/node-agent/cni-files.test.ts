import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runtimeConfigFiles, shadowingConfigs, writeFileAtomic } from "./cni-files.js";

describe("runtimeConfigFiles / shadowingConfigs", () => {
  const dir = mkdtempSync(join(tmpdir(), "podnet-cni-files-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("lists what libcni would (dotfiles too, not directories or our temp files), in the runtime's order", () => {
    for (const f of [".hidden.conflist", "05-x.conf", ".10-podnet.conflist.tmp-123", "10-podnet.conflist", "99-z.json", "README"]) writeFileSync(join(dir, f), "{}");
    mkdirSync(join(dir, "00-dir.conf"));
    expect(runtimeConfigFiles(dir)).toEqual([".hidden.conflist", "05-x.conf", "10-podnet.conflist", "99-z.json"]);
    // A hidden file sorts before every digit: containerd and CRI-O would load it instead of podnet's.
    expect(shadowingConfigs(dir, "10-podnet.conflist")).toEqual([".hidden.conflist", "05-x.conf"]);
    expect(runtimeConfigFiles(join(dir, "missing"))).toEqual([]);
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
});
