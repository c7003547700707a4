import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildBundle } from "../../src/localcluster/bundle.js";
import { AGENT_NODE_FLAGS, CONTROLLER_NODE_FLAGS } from "../../src/localcluster/podnet-cli.js";

const repo = join(import.meta.dirname, "../..");
const work = mkdtempSync(join(tmpdir(), "podnet-image-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// No Docker engine here: what the runtime stage holds (one file, no node_modules) is rebuilt and run as is.
describe("the image's single-file CLI", () => {
  it("runs from a directory with no node_modules: usage, and clear errors for a bad or missing kubeconfig and a missing node name", async () => {
    const built = await buildBundle(join(work, "build", "podnet.mjs"));
    const alone = join(work, "app");
    execFileSync("mkdir", ["-p", alone]);
    copyFileSync(built, join(alone, "podnet.mjs"));
    const help = spawnSync(process.execPath, [join(alone, "podnet.mjs"), "help"], { cwd: alone, encoding: "utf8" });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("usage: podnet");
    const flags = spawnSync(process.execPath, [join(alone, "podnet.mjs"), "agent", "--help"], { cwd: alone, encoding: "utf8" });
    expect([flags.status, flags.stdout]).toEqual([0, expect.stringMatching(/--vxlan-port\s+env PODNET_VXLAN_PORT \(default 8472\)/)]);
    const bad = spawnSync(process.execPath, [join(alone, "podnet.mjs"), "agent", "--node-name=n1", "--kubeconfig=/nonexistent/kubeconfig"], { cwd: alone, encoding: "utf8", timeout: 20_000 });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/podnet: .*nonexistent/);
    expect(bad.stderr).not.toMatch(/Cannot find (module|package)|ERR_MODULE_NOT_FOUND/);
    // Outside a cluster with no kubeconfig at all: say so and stop, rather than retry a made-up localhost.
    const noConfigEnv = { PATH: process.env.PATH ?? "", HOME: join(work, "empty-home") };
    const none = spawnSync(process.execPath, [join(alone, "podnet.mjs"), "controller"], { cwd: alone, encoding: "utf8", timeout: 20_000, env: noConfigEnv });
    expect(none.status).toBe(1);
    expect(none.stderr).toContain("podnet: no kubeconfig: pass --kubeconfig");
    const noNode = spawnSync(process.execPath, [join(alone, "podnet.mjs"), "agent"], { cwd: alone, encoding: "utf8", timeout: 20_000, env: noConfigEnv });
    expect(noNode.status).toBe(2); // a usage error, as an unknown command
    expect(noNode.stderr).toContain("--node-name: node name is required (--node-name or NODE_NAME)");
    // Every module is in the one file, the CRD writer too: loading it (as demo-clean does) must write nothing
    // next to the bundle (in the image that would be /charts on a read-only root).
    // (The writer's target is two levels up from the file, so the copy sits where that is still ours.)
    const deep = join(work, "deep", "app");
    execFileSync("mkdir", ["-p", deep]);
    copyFileSync(built, join(deep, "podnet.mjs"));
    const clean = spawnSync(process.execPath, [join(deep, "podnet.mjs"), "demo-clean"], { cwd: deep, encoding: "utf8", timeout: 20_000 });
    expect(clean.status, clean.stderr).toBe(0); // it ran to the end, not crashed before writing anything
    expect(existsSync(join(work, "charts"))).toBe(false);
    // node-fetch's never-used URL fallback is left out (see bundle.ts), and with it tr46's Unicode tables.
    expect(readFileSync(built, "utf8")).not.toContain("node_modules/tr46");
    // The compile cache the image bakes in: written by one run, read back by the next with the same V8 flags.
    const env = { ...process.env, NODE_COMPILE_CACHE: join(work, "compile-cache"), NODE_DEBUG_NATIVE: "COMPILE_CACHE" };
    for (const flags of [CONTROLLER_NODE_FLAGS, AGENT_NODE_FLAGS]) {
      spawnSync(process.execPath, [...flags, join(alone, "podnet.mjs"), "help"], { cwd: alone, env });
      const again = spawnSync(process.execPath, [...flags, join(alone, "podnet.mjs"), "help"], { cwd: alone, env, encoding: "utf8" });
      expect(again.stdout + again.stderr).toMatch(/reading cache from .* for ESM .*podnet\.mjs.*success/);
    }
  }, 60_000);

  it("the Dockerfile builds that file with the repo's bundle script and runs it as the entrypoint", () => {
    const dockerfile = readFileSync(join(repo, "Dockerfile"), "utf8");
    expect(dockerfile).toMatch(/RUN npx tsx scripts\/bundle\.ts \/src\/dist\/podnet\.mjs/);
    expect(dockerfile).toMatch(/COPY --from=build \/src\/dist\/podnet\.mjs \.\//);
    expect(dockerfile).toContain('ENTRYPOINT ["node", "/app/podnet.mjs"]');
    expect(dockerfile).toMatch(/ENV .*NODE_COMPILE_CACHE=\/app\/compile-cache/);
    // Warmed as root with the agent's V8 flags and as 65532 with the controller's: V8 keys the cache by flags.
    const warm = (flags: string[]) => new RegExp(`^RUN .*node ${flags.join(" ")} /app/podnet\\.mjs help`, "m");
    expect(dockerfile).toMatch(warm(AGENT_NODE_FLAGS));
    expect(dockerfile.split(/^USER 65532/m)[1]).toMatch(warm(CONTROLLER_NODE_FLAGS));
    // The CNI plugins nodes get are built by the script the rung-3 test builds them with (static, upstream).
    expect(dockerfile).toMatch(/^RUN .*bash \/src\/hack\/build-cni-plugins\.sh/m);
    expect(dockerfile).toContain("COPY --from=cni /out/ /opt/cni/bin-src/");
    expect(dockerfile).not.toContain("containernetworking-plugins");
    for (const copied of dockerfile.matchAll(/^COPY (?!--from)(\S+(?: \S+)*) \S+$/gm)) {
      for (const source of copied[1]!.split(" ")) expect(() => readFileSync(join(repo, source.replace(/\/$/, "")))).not.toThrow(/ENOENT/);
    }
  });
});
