import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runtimeConfigFiles, shadowingConfigs } from "./cni-files.js";

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
