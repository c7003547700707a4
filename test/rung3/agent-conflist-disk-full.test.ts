import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { isRoot } from "../../src/localcluster/netbed.js";

// A disk that fills part-way through the conflist: the old file must stay whole and the write must fail by name.
// The tmpfs lives in a private mount namespace of a child process, so a crashed run leaves no mount behind.
const home = mkdtempSync(join(tmpdir(), "podnet-disk-full-"));
const script = join(home, "write.ts");
const cniFiles = resolve("src/node-agent/cni-files.ts");
const oldText = JSON.stringify({ cniVersion: "1.0.0", name: "podnet", plugins: [{ type: "bridge", pad: "o".repeat(8000) }] });
const newText = JSON.stringify({ cniVersion: "1.0.0", name: "podnet", plugins: [{ type: "bridge", pad: "n".repeat(6000) }] });

writeFileSync(script, `
import { closeSync, ftruncateSync, fstatSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from ${JSON.stringify(cniFiles)};
const dir = process.argv[2]!;
writeFileSync(join(dir, "10-podnet.conflist"), ${JSON.stringify(oldText)});
// Fill the tmpfs, then give back exactly one page: the next file gets 4 KiB before ENOSPC.
const fd = openSync(join(dir, "filler"), "w");
const chunk = Buffer.alloc(4096, 1);
try { for (let i = 0; i < 1_000; i++) writeSync(fd, chunk); } catch { /* full */ }
ftruncateSync(fd, fstatSync(fd).size - 4096);
closeSync(fd);
let error = "";
try { writeFileAtomic(dir, "10-podnet.conflist", ${JSON.stringify(newText)}); } catch (err) { error = (err as Error).message; }
const onDisk = readFileSync(join(dir, "10-podnet.conflist"), "utf8");
console.log(JSON.stringify({ error, onDisk }));
`);

describe.skipIf(!isRoot())("conflist write on a disk that fills part-way", () => {
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  it("keeps the old conflist whole and fails naming ENOSPC, instead of renaming a cut-off file over it", () => {
    const dir = join(home, "net.d");
    const tsx = resolve("node_modules/.bin/tsx");
    const shell = `mkdir -p ${dir} && mount -t tmpfs -o size=64k podnet-test ${dir} && exec ${tsx} ${script} ${dir}`;
    const run = spawnSync("unshare", ["--mount", "--propagation", "private", "sh", "-c", shell], { encoding: "utf8", timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    const { error, onDisk } = JSON.parse(run.stdout.trim().split("\n").pop()!) as { error: string; onDisk: string };
    expect(onDisk.length).toBe(oldText.length);
    expect(onDisk).toBe(oldText);
    expect(error).toMatch(/^cannot write .*10-podnet\.conflist: ENOSPC/);
  });
});
