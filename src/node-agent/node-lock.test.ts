import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { nodeLockPath, NodeLockHeldError, parseHolder, refusal, takeNodeLock } from "./node-lock.js";

/** The processes with the file open, as fuser(1) finds them. */
function holdersOf(path: string): number[] {
  return readdirSync("/proc").filter((p) => /^\d+$/.test(p)).map(Number).filter((pid) => {
    try { return readdirSync(`/proc/${pid}/fd`).some((fd) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`) === path; } catch { return false; } }); } catch { return false; }
  });
}

const agent = { role: "agent" as const, pid: 4711, node: "n1", since: "2025-01-02T03:04:05.000Z" };
const dir = mkdtempSync(join(tmpdir(), "podnet-lock-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("node lock", () => {
  it.each([
    [undefined, "/run/podnet/agent-host.lock"],
    ["pnt-1-n1", "/run/podnet/agent-pnt-1-n1.lock"],
  ])("is named after the namespace programmed (%s): agents on the host for different --netns do not collide", (netns, path) => {
    expect(nodeLockPath("/run/podnet", netns)).toBe(path);
  });

  it.each([["x".repeat(201)], ["../etc"], [".hidden"], ["a/b"]])("hashes a namespace name that is too long or could make a path (%s)", (netns) => {
    const path = nodeLockPath("/run/podnet", netns);
    expect(path).toMatch(/^\/run\/podnet\/agent-[0-9a-f]{32}\.lock$/);
  });

  it.each([
    [JSON.stringify(agent), agent],
    [`${JSON.stringify({ role: "cleanup", pid: 9, since: "s" })}\nmore`, { role: "cleanup", pid: 9, since: "s" }],
    ["", undefined],
    ["HTTP/1.1 400 Bad Request", undefined],
    [JSON.stringify({ role: "agent", pid: "9", since: "s" }), undefined],
    [JSON.stringify({ role: "other", pid: 9, since: "s" }), undefined],
  ])("reads the holder's line %j", (text, holder) => {
    expect(parseHolder(text)).toEqual(holder);
  });

  const lock = "/run/podnet/agent-host.lock";
  it.each([
    ["agent", agent, `another podnet agent runs for this node (lock ${lock} held by podnet agent pid 4711 for node n1, since 2025-01-02T03:04:05.000Z); refusing to start a second one`],
    ["agent", { role: "cleanup", pid: 12, since: "t" }, `podnet agent cleanup runs on this node (lock ${lock} held by podnet agent cleanup pid 12, since t); refusing to start until it is done`],
    ["cleanup", agent, `a podnet agent runs on this node (lock ${lock} held by podnet agent pid 4711 for node n1, since 2025-01-02T03:04:05.000Z): a cleanup beside it would be undone within a second; stop the agent first (helm uninstall --wait, or delete the podnet-agent DaemonSet)`],
    ["cleanup", { role: "cleanup", pid: 12, since: "t" }, `another podnet agent cleanup runs on this node (lock ${lock} held by podnet agent cleanup pid 12, since t); not cleaning beside it`],
    ["agent", undefined, `another podnet agent runs for this node (lock ${lock} held by a process that has not said what it is); refusing to start a second one`],
  ] as const)("a %s refused by %j says why", (wanting, holder, message) => {
    expect(refusal(wanting, lock, holder)).toBe(message);
  });

  it("lets one holder in per name, names it to the next, and is free again once released", async () => {
    const netns = `podnet-lock-test-${process.pid}`;
    const first = await takeNodeLock(dir, netns, { role: "agent", node: "n1" });
    try {
      const refused = await takeNodeLock(dir, netns, { role: "cleanup" }).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(NodeLockHeldError);
      expect((refused as NodeLockHeldError).holder).toMatchObject({ role: "agent", pid: process.pid, node: "n1" });
      // Another process (flock(1) as a shell script would use it) is kept out too.
      expect(spawnSync("flock", ["--nonblock", nodeLockPath(dir, netns), "true"]).status).toBe(1);
      const other = await takeNodeLock(dir, `${netns}-other`, { role: "agent" }); // another namespace: its own lock
      await other.release();
    } finally {
      await first.release();
    }
    await (await takeNodeLock(dir, netns, { role: "cleanup" })).release();
  });

  it("tells its holder when the helper holding it is killed, and the lock is free then", async () => {
    let lost = 0;
    const held = await takeNodeLock(dir, "killed", { role: "agent" }, () => lost++);
    const helper = holdersOf(nodeLockPath(dir, "killed"));
    expect(helper.length).toBeGreaterThan(0);
    for (const pid of helper) process.kill(pid, "SIGKILL");
    for (let i = 0; i < 100 && !lost; i++) await new Promise((r) => setTimeout(r, 20));
    expect(lost).toBe(1);
    await (await takeNodeLock(dir, "killed", { role: "agent" })).release();
    await held.release(); // nothing left to end
  });

  it.skipIf(process.getuid?.() !== 0)("keeps the lock directory and file from every other user: 0700 and 0600, a file another user planted replaced", async () => {
    const open = mkdtempSync(join(tmpdir(), "podnet-lock-open-"));
    try {
      chmodSync(open, 0o777); // as kubelet's DirectoryOrCreate (0755), or worse
      const planted = nodeLockPath(open, undefined);
      writeFileSync(planted, "");
      chownSync(planted, 65534, 65534);
      chmodSync(planted, 0o666);
      await (await takeNodeLock(open, undefined, { role: "agent" })).release();
      expect([statSync(open).mode & 0o777, statSync(planted).mode & 0o777, statSync(planted).uid]).toEqual([0o700, 0o600, process.getuid!()]);
      // Another user can now neither reach the file nor lock it.
      const squat = spawnSync("flock", ["--nonblock", planted, "true"], { uid: 65534, gid: 65534, encoding: "utf8" });
      expect(squat.status, squat.stderr).not.toBe(0);
      chownSync(open, 65534, 65534);
      await expect(takeNodeLock(open, undefined, { role: "agent" })).rejects.toThrow(`${open} must be a directory owned by uid 0`);
    } finally { rmSync(open, { recursive: true, force: true }); }
  });
});
