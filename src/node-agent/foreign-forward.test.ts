import { describe, expect, it } from "vitest";
import { foreignForwardHookChains, judgeForwardChain, type ForwardHookChain } from "./foreign-forward.js";
import { parseNftTable } from "./nft-forward-path.js";

// Rules as `nft -j` writes them, built from a few pieces.
type Expr = object;
const is = (left: object, right: unknown, op = "==") => ({ match: { op, left, right } });
const iif = (name: string | string[], op = "==") => is({ meta: { key: "iifname" } }, Array.isArray(name) ? { set: name } : name, op);
const oif = (name: string) => is({ meta: { key: "oifname" } }, name);
const prefix = (cidr: string) => ({ prefix: { addr: cidr.split("/")[0], len: Number(cidr.split("/")[1]) } });
const saddr = (cidr: string, protocol = "ip") => is({ payload: { protocol, field: "saddr" } }, cidr.startsWith("@") ? cidr : prefix(cidr));
const ctState = (...states: string[]) => is({ ct: { key: "state" } }, states.length > 1 ? states : states[0], "in");
const ctDnat = is({ ct: { key: "status" } }, "dnat", "in");
const dport = (port: number) => is({ payload: { protocol: "tcp", field: "dport" } }, port);
const accept = { accept: null };
const reject = { reject: { type: "icmpx", expr: "admin-prohibited" } };
const drop = { drop: null };
const jump = (target: string) => ({ jump: { target } });
const goto = (target: string) => ({ goto: { target } });
const counter = { counter: { packets: 0, bytes: 0 } };

interface ChainSpec { hook?: string; policy?: string; rules: Expr[][] }
const table = (family: string, name: string, chains: Record<string, ChainSpec>, sets: Record<string, unknown[]> = {}) => JSON.stringify({ nftables: [
  { metainfo: { version: "1.0.6", json_schema_version: 1 } },
  { table: { family, name, handle: 1 } },
  ...Object.entries(sets).map(([set, elem]) => ({ set: { family, table: name, name: set, type: "ipv4_addr", flags: ["interval"], elem } })),
  ...Object.entries(chains).map(([chain, c]) => ({ chain: { family, table: name, name: chain, ...(c.hook ? { type: "filter", hook: c.hook, prio: 10, policy: c.policy ?? "accept" } : {}) } })),
  ...Object.entries(chains).flatMap(([chain, c]) => c.rules.map((expr, i) => ({ rule: { family, table: name, chain, handle: 100 + i, expr } }))),
] });

// firewalld 1.x's forward layout (as its test suite lists it): a base chain that ends in a reject, dispatch by the
// ingress zone (interface or source), then by the egress zone, to <in>_to_<out> chains that jump to the ingress
// zone's chain and reject. eth0 is in public, the default zone; `trusted` holds what it is given.
function firewalld(trusted: { interfaces?: string[]; sources?: string[]; defaultZone?: string } = {}): string {
  const zones = ["public", "trusted"];
  const zoneOfIf = [["eth0", "public"], ...(trusted.interfaces ?? []).map((i) => [i, "trusted"])];
  const defaultZone = trusted.defaultZone ?? "public";
  const chains: Record<string, ChainSpec> = {
    filter_FORWARD: { hook: "forward", rules: [[ctState("established", "related"), accept], [ctDnat, accept], [iif("lo"), accept], [ctState("invalid"), drop],
      [is({ payload: { protocol: "ip6", field: "daddr" } }, { set: [prefix("::/96"), prefix("2002::/24")] }), reject], [jump("filter_FORWARD_dispatch")], [reject]] },
    filter_FORWARD_dispatch: { rules: [
      ...(trusted.sources ?? []).map((s) => [saddr(s, s.includes(":") ? "ip6" : "ip"), jump("filter_FWD_trusted_dispatch_stage2")]),
      ...zoneOfIf.map(([i, z]) => [iif(i!), jump(`filter_FWD_${z}_dispatch_stage2`)]),
      [jump(`filter_FWD_${defaultZone}_dispatch_stage2`)]] },
    filter_FWD_public: { rules: [[jump("filter_FWD_public_allow")]] },
    filter_FWD_public_allow: { rules: [[oif("eth0"), accept]] }, // intra-zone forwarding
    filter_FWD_trusted: { rules: [[counter, accept]] },
  };
  for (const from of zones) {
    chains[`filter_FWD_${from}_dispatch_stage2`] = { rules: [...zoneOfIf.map(([i, z]) => [oif(i!), jump(`filter_FWD_${from}_to_${z}`)]), [jump(`filter_FWD_${from}_to_${defaultZone}`)]] };
    for (const to of zones) chains[`filter_FWD_${from}_to_${to}`] = { rules: [[jump(`filter_FWD_${from}`)], [reject]] };
  }
  return table("inet", "firewalld", chains);
}

const hook: ForwardHookChain = { family: "inet", table: "firewalld", chain: "filter_FORWARD" };
const judge = (json: string, ranges = ["10.244.0.0/16"], on = hook) => judgeForwardChain(on, parseNftTable(json), ranges);
const [sameNode, out, into] = ["IPv4 between pods of this node", "IPv4 from this node's pods to other nodes", "IPv4 from other nodes to this node's pods"];

describe("another table's forward-hook chain that drops by default, judged for pod traffic", () => {
  it.each([
    // The review's reproduction: established, DNAT'd and loopback traffic accepted, the rest rejected.
    ["a firewalld-like chain that rejects the rest", table("inet", "firewalld", { filter_FORWARD: { hook: "forward", rules: [[ctState("established", "related"), accept], [ctDnat, accept], [iif("lo"), accept], [reject]] } }),
      [sameNode, out, into], []],
    // Pods' own packets fall to the default zone; only intra-zone forwarding out through eth0 might pass.
    ["firewalld with the pod network in no zone", firewalld(), [sameNode, into], [out]],
    // What arrives from another node comes in through eth0, in public: public's chain decides, and rejects it.
    ["firewalld with podnet0 alone in the trusted zone", firewalld({ interfaces: ["podnet0"] }), [into], []],
    ["firewalld with podnet0 and the pod network as a source in the trusted zone", firewalld({ interfaces: ["podnet0"], sources: ["10.244.0.0/16"] }), [], []],
    // Everything else is trusted, but eth0 stays in public: if that is the uplink, what comes in from other nodes is rejected.
    ["firewalld whose default zone is trusted", firewalld({ defaultZone: "trusted" }), [], [into]],
    // A source that is one node's CIDR, not the whole pod network: may or may not be a pod's.
    ["firewalld with only this node's CIDR as a trusted source", firewalld({ interfaces: ["podnet0"], sources: ["10.244.1.0/24"] }), [], [into]],
    // podnet* holds the bridge, and may hold what comes in from other nodes (podnet.vxlan does).
    ["a wildcard naming the bridge in the trusted zone", firewalld({ interfaces: ["podnet*"] }), [], [into]],
  ])("%s", (_case, json, dropped, mayDrop) => {
    const judged = judge(json);
    expect(judged?.dropped ?? []).toEqual(dropped);
    expect(judged?.mayDrop ?? []).toEqual(mayDrop);
  });

  const inetFilter = (...rules: Expr[][]) => table("inet", "filter", { forward: { hook: "forward", policy: "drop", rules: [[ctState("established", "related"), accept], ...rules] } });
  const filterHook: ForwardHookChain = { family: "inet", table: "filter", chain: "forward" };
  it.each([
    ["policy drop, the bridge accepted both ways", inetFilter([iif("podnet0"), accept], [oif("podnet0"), accept]), ["10.244.0.0/16"], [], []],
    // eth1 may be the uplink other nodes' pods come in through; out to another interface is dropped.
    ["policy drop, into the bridge from itself or eth1", inetFilter([iif(["podnet0", "eth1"]), oif("podnet0"), accept]), ["10.244.0.0/16"], [out], [into]],
    ["policy drop, a port: may drop every kind, not certain", inetFilter([dport(80), accept]), ["10.244.0.0/16"], [], [sameNode, out, into]],
    ["policy drop, a negated interface", inetFilter([iif("podnet0", "!="), accept]), ["10.244.0.0/16"], [sameNode, out], []],
    ["dual-stack: the IPv4 range accepted, IPv6 dropped", inetFilter([saddr("10.244.0.0/16"), accept]), ["10.244.0.0/16", "fd00:10::/56"],
      ["IPv6 between pods of this node", "IPv6 from this node's pods to other nodes", "IPv6 from other nodes to this node's pods"], []],
    ["a named set holding the pod network", table("inet", "filter", { forward: { hook: "forward", policy: "drop", rules: [[saddr("@nets"), accept]] } }, { nets: [prefix("10.0.0.0/8")] }), ["10.244.0.0/16"], [], []],
    ["a named set it cannot see", table("inet", "filter", { forward: { hook: "forward", policy: "drop", rules: [[saddr("@gone"), accept]] } }), ["10.244.0.0/16"], [], [sameNode, out, into]],
    ["a verdict map: anything may happen", table("inet", "filter", { forward: { hook: "forward", policy: "drop", rules: [[{ vmap: { key: { meta: { key: "iifname" } }, data: "@m" } }]] } }), ["10.244.0.0/16"], [], [sameNode, out, into]],
    ["a goto'd chain that returns: the policy", table("inet", "filter", { forward: { hook: "forward", policy: "drop", rules: [[goto("zones")], [accept]] }, zones: { rules: [[oif("eth9"), accept]] } }),
      ["10.244.0.0/16"], [sameNode, into], [out]],
  ])("%s", (_case, json, ranges, dropped, mayDrop) => {
    const judged = judge(json, ranges, filterHook);
    expect(judged?.dropped ?? []).toEqual(dropped);
    expect(judged?.mayDrop ?? []).toEqual(mayDrop);
  });

  // 14 deep: the kernel's jump stack holds 16.
  it("follows a chain reached from many rules once: 4^14 ways through a fan-out of jumps are judged at once", () => {
    const chains: Record<string, ChainSpec> = { forward: { hook: "forward", policy: "drop", rules: [[jump("c0")]] }, c14: { rules: [[reject]] } };
    for (let i = 0; i < 14; i++) chains[`c${i}`] = { rules: [1, 2, 3, 4].map((port) => [dport(port), jump(`c${i + 1}`)]) };
    const started = performance.now();
    expect(judge(table("inet", "filter", chains), ["10.244.0.0/16"], { family: "inet", table: "filter", chain: "forward" })?.dropped).toEqual([sameNode, out, into]);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it("judges only the ranges of the chain's family", () => {
    const v6Only = table("ip6", "filter6", { fwd: { hook: "forward", policy: "drop", rules: [] } });
    expect(judge(v6Only, ["10.244.0.0/16"], { family: "ip6", table: "filter6", chain: "fwd" })).toBeUndefined();
    expect(judge(v6Only, ["10.244.0.0/16", "fd00:10::/56"], { family: "ip6", table: "filter6", chain: "fwd" })?.ranges).toEqual(["fd00:10::/56"]);
  });

  it("lists the forward-hook base chains but iptables-nft's FORWARD and podnet's own", () => {
    const chain = (family: string, t: string, name: string, hookName?: string) => ({ chain: { family, table: t, name, handle: 1, ...(hookName ? { type: "filter", hook: hookName, prio: 0, policy: "accept" } : {}) } });
    const listing = JSON.stringify({ nftables: [{ metainfo: {} }, chain("ip", "filter", "FORWARD", "forward"), chain("ip6", "filter", "FORWARD", "forward"), chain("inet", "podnet", "forward", "forward"),
      chain("inet", "firewalld", "filter_FORWARD", "forward"), chain("inet", "firewalld", "filter_FORWARD_dispatch"), chain("ip", "kube-proxy", "filter-input", "input"),
      chain("inet", "filter", "FORWARD", "forward"), chain("bridge", "filter", "forward", "forward")] });
    expect(foreignForwardHookChains(listing)).toEqual([
      { family: "inet", table: "firewalld", chain: "filter_FORWARD" },
      { family: "inet", table: "filter", chain: "FORWARD" }, // inet: not iptables-nft's
    ]);
  });
});
