import { describe, expect, it } from "vitest";
import { FORWARD_ACCEPT_COMMENT, forwardAcceptScript, parseForwardChain, planForwardAccepts } from "./forward-accept.js";

// `nft -j list chain ip filter FORWARD` on a host where Docker set the policy (abridged from a real listing).
const listing = (policy: string, rules: object[]) => JSON.stringify({ nftables: [
  { metainfo: { version: "1.0.6", json_schema_version: 1 } },
  { chain: { family: "ip", table: "filter", name: "FORWARD", handle: 1, type: "filter", hook: "forward", prio: 0, policy } },
  ...rules.map((rule) => ({ rule: { family: "ip", table: "filter", chain: "FORWARD", ...rule } })),
] });
const ours = (handle: number, field: string, addr: string, len: number) => ({ handle, comment: FORWARD_ACCEPT_COMMENT,
  expr: [{ match: { op: "==", left: { payload: { protocol: "ip", field } }, right: { prefix: { addr, len } } } }, { counter: { packets: 0, bytes: 0 } }, { accept: null }] });
const docker = { handle: 2, expr: [{ xt: { type: "match", name: "conntrack" } }, { counter: { packets: 0, bytes: 0 } }, { accept: null }] };

describe("the host firewall's FORWARD chain", () => {
  it("reads the policy and podnet's own rules", () => {
    const chain = parseForwardChain(listing("drop", [ours(4, "daddr", "10.244.0.0", 16), docker]));
    expect(chain.policy).toBe("drop");
    expect(chain.rules).toEqual([{ handle: 4, comment: FORWARD_ACCEPT_COMMENT, direction: "daddr", cidr: "10.244.0.0/16" }, { handle: 2 }]);
  });

  it.each([
    ["a drop policy: accepts from and to each range", "drop", [docker], ["10.244.0.0/16"], [["saddr", "10.244.0.0/16"], ["daddr", "10.244.0.0/16"]], []],
    ["already in place: nothing", "drop", [ours(4, "daddr", "10.244.0.0", 16), ours(5, "saddr", "10.244.0.0", 16), docker], ["10.244.0.0/16"], [], []],
    ["a range gone from the pools: its rules go", "drop", [ours(4, "daddr", "10.99.0.0", 16), ours(5, "saddr", "10.244.0.0", 16)], ["10.244.0.0/16"], [["daddr", "10.244.0.0/16"]], [4]],
    ["an accept policy: podnet's rules go, nothing is added", "accept", [ours(4, "daddr", "10.244.0.0", 16), docker], ["10.244.0.0/16"], [], [4]],
  ])("%s", (_case, policy, rules, ranges, insert, deleteHandles) => {
    const plan = planForwardAccepts(parseForwardChain(listing(policy, rules)), ranges);
    expect(plan.insert.map((r) => [r.direction, r.cidr])).toEqual(insert);
    expect(plan.deleteHandles).toEqual(deleteHandles);
  });

  it("leaves a rule that is not podnet's alone even when it matches a pod range", () => {
    const theirs = { ...ours(7, "saddr", "10.244.0.0", 16), comment: "by hand" };
    expect(planForwardAccepts(parseForwardChain(listing("accept", [theirs])), ["10.244.0.0/16"])).toEqual({ insert: [], deleteHandles: [] });
  });

  it("writes one nft script per family, in the iptables-nft chain", () => {
    expect(forwardAcceptScript(6, { insert: [{ direction: "saddr", cidr: "fd00:10::/56" }], deleteHandles: [9] })).toBe(
      `delete rule ip6 filter FORWARD handle 9\nadd rule ip6 filter FORWARD ip6 saddr fd00:10::/56 counter accept comment "${FORWARD_ACCEPT_COMMENT}"\n`);
  });
});
