import { describe, expect, it } from "vitest";
import { recordLabels } from "./record-labels.js";

describe("recordLabels: only names that are valid label values", () => {
  const long = `node-${"a".repeat(60)}`; // 65 characters: a valid Node name, too long for a label value
  it.each([
    ["both short", "node-1", "default", { "podnet.io/node": "node-1", "podnet.io/pool": "default" }],
    ["a Node name over 63 characters", long, "default", { "podnet.io/pool": "default" }],
    ["exactly 63 characters", "n".repeat(63), "p", { "podnet.io/node": "n".repeat(63), "podnet.io/pool": "p" }],
    ["a pool name over 63 characters", "node-1", long, { "podnet.io/node": "node-1" }],
  ])("%s", (_, node, pool, labels) => expect(recordLabels(node, pool)).toEqual(labels));
});
