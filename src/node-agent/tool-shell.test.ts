import { afterAll, describe, expect, it } from "vitest";
import { MissingToolError, run } from "./exec.js";
import { runInShell, stopToolShells } from "./tool-shell.js";

afterAll(() => stopToolShells());

// Real /bin/sh, real tools: the framing must survive whatever a tool prints or is fed.
describe("tool shell", () => {
  it("keeps stdout, stderr and the exit status apart, also without a trailing newline", async () => {
    expect(await runInShell(["sh", "-c", "printf out; printf err >&2; exit 3"])).toEqual({ code: 3, stdout: "out", stderr: "err" });
    expect(await runInShell(["sh", "-c", "echo one; echo two"])).toEqual({ code: 0, stdout: "one\ntwo\n", stderr: "" });
  });

  it("feeds input verbatim: quotes, $, backticks and marker look-alikes are not expanded or mistaken", async () => {
    const input = `a'b"c $HOME \`id\` \\n\n__podnet_0123456789abcdef__\nlast line\n`;
    expect((await runInShell(["cat"], { input })).stdout).toBe(input);
    const big = `${"route add 10.0.0.0/24 via 192.168.0.1\n".repeat(30_000)}`; // ≈1 MB, a 20,000-node batch
    expect((await runInShell(["wc", "-c"], { input: big })).stdout.trim()).toBe(String(Buffer.byteLength(big)));
  });

  it("gives a command without input an empty stdin, never the shell's own", async () => {
    expect(await runInShell(["cat"])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect((await runInShell(["echo", "still framed"])).stdout).toBe("still framed\n");
  });

  it("passes environment variables quoted", async () => {
    expect((await runInShell(["sh", "-c", 'printf %s "$CNI_COMMAND"'], { env: { CNI_COMMAND: "VER'SION $x" } })).stdout).toBe("VER'SION $x");
  });

  it("runs parallel commands on separate shells and hands each its own output", async () => {
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => runInShell(["sh", "-c", `sleep 0.0${i % 3}; echo ${i}`])));
    expect(results.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 12 }, (_, i) => String(i)));
  });

  it("reports a missing tool as MissingToolError, as a direct start would", async () => {
    expect((await runInShell(["podnet-no-such-tool"])).code).toBe(127);
    await expect(run("podnet-no-such-tool", [])).rejects.toBeInstanceOf(MissingToolError);
  });

  it("kills a command that overruns its timeout, exit status -1, and the next command runs", async () => {
    const started = Date.now();
    const r = await runInShell(["sleep", "10"], { timeoutMs: 300 });
    expect(r.code).toBe(-1);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect((await runInShell(["echo", "after"])).stdout).toBe("after\n");
  });

  it("starts a new shell after the old ones were killed", async () => {
    stopToolShells();
    expect((await runInShell(["echo", "again"])).stdout).toBe("again\n");
  });
});
