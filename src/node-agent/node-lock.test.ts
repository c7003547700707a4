import { spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { processesWithOpen } from "../../test/harness/node-reads.js";
import { holdNodeLock, nodeLockPath, NodeLockHeldError, parseHolder, refusal, takeNodeLock } from "./node-lock.js";

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
    const helper = processesWithOpen(nodeLockPath(dir, "killed"));
    expect(helper.length).toBeGreaterThan(0);
    for (const pid of helper) process.kill(pid, "SIGKILL");
    for (let i = 0; i < 100 && !lost; i++) await new Promise((r) => setTimeout(r, 20));
    expect(lost).toBe(1);
    await (await takeNodeLock(dir, "killed", { role: "agent" })).release();
    await held.release(); // nothing left to end
  });

  const asRoot = it.skipIf(process.getuid?.() !== 0);
  asRoot("keeps the lock file from every other user: 0600 and this user's, anything another user left there replaced", async () => {
    const shared = mkdtempSync(join(tmpdir(), "podnet-lock-0755-"));
    try {
      chmodSync(shared, 0o755); // as kubelet's DirectoryOrCreate makes it
      const path = nodeLockPath(shared, undefined);
      writeFileSync(path, "");
      chownSync(path, 65534, 65534);
      chmodSync(path, 0o666);
      await (await takeNodeLock(shared, undefined, { role: "agent" })).release();
      expect([statSync(shared).mode & 0o7777, statSync(path).mode & 0o777, statSync(path).uid]).toEqual([0o755, 0o600, process.getuid!()]);
      const squat = spawnSync("flock", ["--nonblock", path, "true"], { uid: 65534, gid: 65534, encoding: "utf8" });
      expect(squat.status, squat.stderr).not.toBe(0); // cannot even open it
      rmSync(path);
      mkdirSync(path); // a directory where the file goes
      await (await takeNodeLock(shared, undefined, { role: "agent" })).release();
      expect(statSync(path).isFile()).toBe(true);
    } finally { rmSync(shared, { recursive: true, force: true }); }
  });

  asRoot("refuses, and leaves as it is, a directory another user can write to or owns", async () => {
    const open = mkdtempSync(join(tmpdir(), "podnet-lock-open-"));
    try {
      chmodSync(open, 0o1777); // as /run/lock or /tmp
      await expect(takeNodeLock(open, undefined, { role: "agent" })).rejects.toThrow(`${open} must be a directory owned by uid 0 that no other user can write to (it is mode 1777, owner uid 0)`);
      expect(statSync(open).mode & 0o7777).toBe(0o1777);
      chmodSync(open, 0o700);
      chownSync(open, 65534, 65534);
      await expect(takeNodeLock(open, undefined, { role: "agent" })).rejects.toThrow("owner uid 65534");
    } finally { rmSync(open, { recursive: true, force: true }); }
  });

  it("names the winner to the loser of two takers at once, and no earlier holder", async () => {
    const race = mkdtempSync(join(tmpdir(), "podnet-lock-race-"));
    try {
      for (let round = 0; round < 10; round++) {
        const tries = await Promise.allSettled([takeNodeLock(race, "r", { role: "agent", node: `a${round}` }), takeNodeLock(race, "r", { role: "agent", node: `b${round}` })]);
        const won = tries.findIndex((t) => t.status === "fulfilled");
        const lost = tries[1 - won];
        expect(lost?.status, `round ${round}`).toBe("rejected");
        expect(((lost as PromiseRejectedResult).reason as NodeLockHeldError).holder?.node).toBe(`${won === 0 ? "a" : "b"}${round}`);
        await (tries[won] as PromiseFulfilledResult<{ release(): Promise<void> }>).value.release();
      }
    } finally { rmSync(race, { recursive: true, force: true }); }
  });

  it("keeps its helper out of this process's group: a Ctrl-C to the group does not end the lock before the holder's last pass", async () => {
    const held = await takeNodeLock(dir, "group", { role: "agent" });
    try {
      const session = (pid: number | string) => readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[3];
      const helpers = processesWithOpen(nodeLockPath(dir, "group"));
      expect(helpers.length).toBeGreaterThan(0);
      for (const pid of helpers) expect(session(pid)).not.toBe(session("self"));
    } finally { await held.release(); }
  });

  it("holdNodeLock takes the lock again when its helper is killed, and says so when another process got it first", async () => {
    const events: string[] = [];
    const held = await holdNodeLock(dir, "hold", { role: "agent" }, { retaken: () => events.push("retaken"), gone: (err) => events.push(`gone: ${err.message}`) });
    try {
      const path = nodeLockPath(dir, "hold");
      for (const pid of processesWithOpen(path)) process.kill(pid, "SIGKILL");
      for (let i = 0; i < 100 && events.length < 1; i++) await new Promise((r) => setTimeout(r, 20));
      expect(events).toEqual(["retaken"]);
      expect(spawnSync("flock", ["--nonblock", path, "true"]).status).toBe(1); // held again
      // Another process already waiting for the lock gets it as the helper dies, before a retake can.
      const waiter = spawn("flock", ["--wait", "10", path, "sleep", "2"], { stdio: "ignore" });
      await new Promise((r) => setTimeout(r, 200));
      for (const pid of processesWithOpen(path).filter((p) => p !== waiter.pid)) process.kill(pid, "SIGKILL");
      for (let i = 0; i < 150 && events.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
      expect(events[1]).toMatch(/^gone: another podnet agent runs for this node/);
      await new Promise((r) => waiter.once("exit", r));
    } finally { await held.release(); }
  });
});
