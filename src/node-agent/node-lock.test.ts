import { describe, expect, it } from "vitest";
import { nodeLockName, NodeLockHeldError, parseHolder, refusal, takeNodeLock } from "./node-lock.js";

const agent = { role: "agent" as const, pid: 4711, node: "n1", since: "2025-01-02T03:04:05.000Z" };

describe("node lock", () => {
  it.each([
    [undefined, "\0podnet-agent:host"],
    ["pnt-1-n1", "\0podnet-agent:pnt-1-n1"],
  ])("is named after the namespace programmed (%s): agents on the host for different --netns do not collide", (netns, name) => {
    expect(nodeLockName(netns)).toBe(name);
  });

  it("hashes a namespace name too long for an abstract socket address", () => {
    const name = nodeLockName("x".repeat(200));
    expect(name.length).toBeLessThanOrEqual(107);
    expect(name).not.toBe(nodeLockName("x".repeat(199)));
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

  it.each([
    ["agent", agent, "another podnet agent runs for this node (lock @podnet-agent:host held by podnet agent pid 4711 for node n1, since 2025-01-02T03:04:05.000Z); refusing to start a second one"],
    ["agent", { role: "cleanup", pid: 12, since: "t" }, "podnet agent cleanup runs on this node (lock @podnet-agent:host held by podnet agent cleanup pid 12, since t); refusing to start until it is done"],
    ["cleanup", agent, "a podnet agent runs on this node (lock @podnet-agent:host held by podnet agent pid 4711 for node n1, since 2025-01-02T03:04:05.000Z): a cleanup beside it would be undone within a second; stop the agent first (helm uninstall --wait, or delete the podnet-agent DaemonSet)"],
    ["cleanup", { role: "cleanup", pid: 12, since: "t" }, "another podnet agent cleanup runs on this node (lock @podnet-agent:host held by podnet agent cleanup pid 12, since t); not cleaning beside it"],
    ["agent", undefined, "another podnet agent runs for this node (lock @podnet-agent:host held by a process that does not say what it is); refusing to start a second one"],
  ] as const)("a %s refused by %j says why", (wanting, holder, message) => {
    expect(refusal(wanting, undefined, holder)).toBe(message);
  });

  it("lets one holder in per name, names it to the next, and is free again once released", async () => {
    const netns = `podnet-lock-test-${process.pid}`;
    const first = await takeNodeLock(netns, { role: "agent", node: "n1" });
    try {
      const refused = await takeNodeLock(netns, { role: "cleanup" }).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(NodeLockHeldError);
      expect((refused as NodeLockHeldError).holder).toMatchObject({ role: "agent", pid: process.pid, node: "n1" });
      const other = await takeNodeLock(`${netns}-other`, { role: "agent" }); // another namespace: its own lock
      await other.release();
    } finally {
      await first.release();
    }
    await (await takeNodeLock(netns, { role: "cleanup" })).release();
  });
});
