import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

// The CLI as a user runs it: what it prints where, and the exit code scripts and kubelet's restarts see.
const run = async (args: string[], env: Record<string, string> = {}) => {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
};

describe("podnet CLI: help and usage errors", () => {
  it("prints help on stdout with exit 0, the command's flags with their env vars and defaults", async () => {
    const top = await run(["--help"]);
    expect([top.code, top.stdout]).toEqual([0, expect.stringMatching(/^usage: podnet <command>/)]);
    const agent = await run(["agent", "--help"]);
    expect(agent.code).toBe(0);
    expect(agent.stdout).toMatch(/--node-name\s+env PODNET_NODE_NAME or NODE_NAME\n/);
    expect(agent.stdout).toMatch(/--resync-period\s+env PODNET_RESYNC_PERIOD \(default 30s\)/);
    expect(agent.stdout).toMatch(/--no-masquerade-cidrs\s+env PODNET_NO_MASQUERADE_CIDRS \(default empty\)/);
    expect((await run(["agent", "cleanup", "-h"])).stdout).not.toMatch(/--overlay/);
  });

  it.each([
    ["an unknown command", ["frob"], {}, /unknown command "frob"/],
    ["an unknown flag", ["controller", "--bogus=1"], {}, /Unknown option '--bogus' \(podnet controller --help lists the flags\)/],
    ["a flag agent cleanup does not take", ["agent", "cleanup", "--overlay=vxlan"], {}, /Unknown option '--overlay' \(podnet agent cleanup --help lists the flags\)/],
    ["a bad value", ["agent", "--node-name=n", "--mtu=12"], {}, /--mtu: must be 0 \(the node's own\) or 576 to 65535/],
    ["an unknown log level", ["controller"], { PODNET_LOG_LEVEL: "loud" }, /PODNET_LOG_LEVEL: must be one of trace, .*not "loud"/],
    ["a bad listen address", ["controller", "--metrics-address=bogus"], {}, /--metrics-address: invalid listen address "bogus"/],
    ["a listen port out of range", ["agent", "--node-name=n", "--metrics-address=:99999"], {}, /--metrics-address: invalid listen address ":99999"/],
  ])("exits 2 with one line on stderr for %s", async (_what, args, env, message) => {
    const r = await run(args, env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
