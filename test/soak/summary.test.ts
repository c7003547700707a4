import { describe, expect, it } from "vitest";
import { median, summarize, summaryLine } from "./summary.js";
import { unexplainedErrors } from "./log-lines.js";

describe("median", () => {
  it.each([[[], 0], [[5], 5], [[3, 1, 2], 2], [[4, 1, 3, 2], 2]])("%j → %i", (values, expected) => {
    expect(median(values)).toBe(expected);
  });
});

describe("summarize", () => {
  it("counts rounds, operations by kind, convergence and violations (sampled ones included)", () => {
    const s = summarize([
      { round: 1, operations: ["join", "podAdd"], convergeMs: 2000, violations: [] },
      { round: 2, operations: ["podAdd"], convergeMs: 500, violations: ["x"] },
      { round: 3, operations: ["agentKill"], convergeMs: 1200, violations: [] },
    ], 2);
    expect(s).toEqual({ rounds: 3, operations: { join: 1, podAdd: 2, agentKill: 1 }, maxConvergeMs: 2000, p50ConvergeMs: 1200, violations: 3, sampledIssues: 2 });
    expect(summaryLine(7, s)).toBe("SUMMARY seed=7 rounds=3 operations: agentKill=1 join=1 podAdd=2; convergence max 2.0 s, p50 1.2 s; violations=3 (2 seen by the sampler)");
  });
});

describe("unexplainedErrors", () => {
  const line = (o: object) => JSON.stringify(o);
  it.each([
    ["an API call refused while the apiserver was down", line({ level: "error", msg: "sync failed; retrying", err: "connect ECONNREFUSED 127.0.0.1:6443" }), []],
    ["a status write to an apiserver just restarted", line({ level: 50, msg: "could not write NodeCIDR status: the request has been made before all known HTTP paths have been installed, please try again" }), []],
    ["info lines", line({ level: "info", msg: "allocated" }), []],
    ["text that is not JSON (a stack trace)", "    at foo (bar.js:1:1)", []],
    ["an error the faults do not explain", line({ level: "error", msg: "cleanup: route not removed", err: "RTNETLINK answers: Invalid argument" }),
      ["error cleanup: route not removed: RTNETLINK answers: Invalid argument"]],
    ["a line without err", line({ level: "error", msg: "default pool not created" }), ["error default pool not created"]],
    ["a fatal line, whatever its cause", line({ level: "fatal", msg: "crashed", err: "ECONNRESET" }), ["fatal crashed: ECONNRESET"]],
    ["pino's numeric levels", line({ level: 50, msg: "cleanup failed", err: "EPERM" }), ["error cleanup failed: EPERM"]],
    ["a rejoined node's agent removing the conflist of the earlier Node's range", line({ level: 50, path: "/x/10-podnet.conflist",
      msg: "removed /x/10-podnet.conflist: this node has no pod CIDR and the conflist handed out 10.244.2.0/24 (an earlier Node node-3's 10.244.2.0/24, which the controller releases); no pod starts here" }), []],
    ["a conflist of a range another node holds now", line({ level: 50,
      msg: "removed /x/10-podnet.conflist: this node has no pod CIDR and the conflist handed out 10.244.2.0/24 (now node node-4's 10.244.2.0/24); no pod starts here" }),
      ["error removed /x/10-podnet.conflist: this node has no pod CIDR and the conflist handed out 10.244.2.0/24 (now node node-4's 10.244.2.0/24); no pod starts here"]],
  ])("%s", (_what, text, expected) => {
    expect(unexplainedErrors(`${text}\n${text}`)).toEqual(expected);
  });
});
