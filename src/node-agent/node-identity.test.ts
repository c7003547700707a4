import { describe, expect, it } from "vitest";
import { isPredecessorRecord } from "./node-identity.js";
import type { Record_ } from "./records.js";

const record = (nodeName: string, nodeUID?: string) =>
  ({ metadata: { name: "r" }, spec: { nodeName, cidr: "10.244.1.0/24", family: "IPv4", pool: "default", ...(nodeUID ? { nodeUID } : {}) } }) as Record_;

describe("isPredecessorRecord: a record of this node's name made for an earlier Node of the name", () => {
  it.each([
    ["another uid", record("n1", "old"), "new", true],
    ["this Node's uid", record("n1", "new"), "new", false],
    ["no uid stamped yet (adopted, hand-made): usable as before", record("n1"), "new", false],
    ["this Node's uid not known (its read failed): usable as before", record("n1", "old"), undefined, false],
    ["another node's record", record("n2", "old"), "new", false],
  ] as const)("%s → %s", (_case, r, uid, expected) => {
    expect(isPredecessorRecord(r, "n1", uid)).toBe(expected);
  });
});
