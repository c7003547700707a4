import { describe, expect, it } from "vitest";
import { acceptedRanges, FORWARD_ACCEPT_COMMENT, forwardAcceptScript, parseForwardChain, planForwardAccepts } from "./forward-accept.js";
import { agentConditions, passLeftWorkUndone, sysctlsAfterPass, type SyncOutcome } from "./report.js";

// `nft -j list chain ip filter FORWARD` on a host where Docker set the policy (abridged from a real listing).
const listing = (policy: string, rules: object[]) => JSON.stringify({ nftables: [
  { metainfo: { version: "1.0.6", json_schema_version: 1 } },
  { chain: { family: "ip", table: "filter", name: "FORWARD", handle: 1, type: "filter", hook: "forward", prio: 0, policy } },
  ...rules.map((rule) => ({ rule: { family: "ip", table: "filter", chain: "FORWARD", ...rule } })),
] });
const ours = (handle: number, field: string, addr: string, len: number) => ({ handle, comment: FORWARD_ACCEPT_COMMENT,
  expr: [{ match: { op: "==", left: { payload: { protocol: "ip", field } }, right: { prefix: { addr, len } } } }, { counter: { packets: 0, bytes: 0 } }, { accept: null }] });
const docker = { handle: 2, expr: [{ xt: { type: "match", name: "conntrack" } }, { counter: { packets: 0, bytes: 0 } }, { accept: null }] };
// RHEL's iptables-services: `-A FORWARD -j REJECT --reject-with icmp-host-prohibited`, as iptables-nft stores it.
const reject = (handle: number, ...before: object[]) => ({ handle, expr: [...before, { counter: { packets: 0, bytes: 0 } }, { xt: { type: "target", name: "REJECT" } }] });
const drop = (handle: number) => ({ handle, expr: [{ counter: { packets: 0, bytes: 0 } }, { drop: null }] });
const kubeProxy = { handle: 3, expr: [{ xt: { type: "match", name: "comment" } }, { counter: { packets: 0, bytes: 0 } }, { jump: { target: "KUBE-FORWARD" } }] };

describe("the host firewall's FORWARD chain", () => {
  it("reads the policy and podnet's own rules", () => {
    const chain = parseForwardChain(listing("drop", [ours(4, "daddr", "10.244.0.0", 16), docker]));
    expect(chain.policy).toBe("drop");
    expect(chain.rules).toEqual([{ handle: 4, comment: FORWARD_ACCEPT_COMMENT, direction: "daddr", cidr: "10.244.0.0/16" }, { handle: 2 }]);
  });

  it.each([
    ["a drop policy: accepts from and to each range", "drop", [docker], ["10.244.0.0/16"], [["saddr", "10.244.0.0/16"], ["daddr", "10.244.0.0/16"]], []],
    ["already in place: nothing", "drop", [docker, ours(4, "daddr", "10.244.0.0", 16), ours(5, "saddr", "10.244.0.0", 16)], ["10.244.0.0/16"], [], []],
    ["a range gone from the pools: its rules go", "drop", [ours(4, "daddr", "10.99.0.0", 16), ours(5, "saddr", "10.244.0.0", 16)], ["10.244.0.0/16"], [["daddr", "10.244.0.0/16"]], [4]],
    ["an accept policy: podnet's rules go, nothing is added", "accept", [ours(4, "daddr", "10.244.0.0", 16), docker], ["10.244.0.0/16"], [], [4]],
    // An earlier podnet inserted its rules at the top, above kube-proxy's and Docker's: they move to the end.
    ["podnet's rules on top of another's: moved to the end", "drop", [ours(4, "saddr", "10.244.0.0", 16), ours(5, "daddr", "10.244.0.0", 16), docker], ["10.244.0.0/16"],
      [["saddr", "10.244.0.0/16"], ["daddr", "10.244.0.0/16"]], [4, 5]],
    ["podnet's rules after another's: left where they are", "drop", [docker, ours(4, "saddr", "10.244.0.0", 16), ours(5, "daddr", "10.244.0.0", 16)], ["10.244.0.0/16"], [], []],
  ])("%s", (_case, policy, rules, ranges, insert, deleteHandles) => {
    const plan = planForwardAccepts(parseForwardChain(listing(policy, rules)), ranges);
    expect(plan.add.map((r) => [r.direction, r.cidr])).toEqual(insert);
    expect(plan.deleteHandles).toEqual(deleteHandles);
  });

  it.each([
    ["RHEL's final REJECT, policy accept: accepts in front of it", [kubeProxy, reject(9)], ["10.244.0.0/16"], [["saddr", "10.244.0.0/16"], ["daddr", "10.244.0.0/16"]], [], 9],
    ["a final DROP", [docker, drop(9)], ["10.244.0.0/16"], [["saddr", "10.244.0.0/16"], ["daddr", "10.244.0.0/16"]], [], 9],
    ["a REJECT with only a comment match is final too", [reject(9, { xt: { type: "match", name: "comment" } })], ["10.244.0.0/16"], [["saddr", "10.244.0.0/16"], ["daddr", "10.244.0.0/16"]], [], 9],
    ["already in front of it: nothing", [kubeProxy, ours(4, "saddr", "10.244.0.0", 16), ours(5, "daddr", "10.244.0.0", 16), reject(9)], ["10.244.0.0/16"], [], [], undefined],
    // Appended behind it (an earlier podnet, policy drop and a final REJECT): never reached, so moved.
    ["behind it: moved in front", [kubeProxy, reject(9), ours(4, "saddr", "10.244.0.0", 16), ours(5, "daddr", "10.244.0.0", 16)], ["10.244.0.0/16"],
      [["saddr", "10.244.0.0/16"], ["daddr", "10.244.0.0/16"]], [4, 5], 9],
    ["one in front, one behind: both moved", [ours(4, "saddr", "10.244.0.0", 16), reject(9), ours(5, "daddr", "10.244.0.0", 16)], ["10.244.0.0/16"],
      [["saddr", "10.244.0.0/16"], ["daddr", "10.244.0.0/16"]], [4, 5], 9],
    // Above kube-proxy's jump (a rule prepended while podnet inserted by number): moved down to the REJECT.
    ["above another's rule in front of it: moved down", [ours(4, "saddr", "10.244.0.0", 16), ours(5, "daddr", "10.244.0.0", 16), kubeProxy, reject(9)], ["10.244.0.0/16"],
      [["saddr", "10.244.0.0/16"], ["daddr", "10.244.0.0/16"]], [4, 5], 9],
    ["a second range: only its accepts, in front of it", [kubeProxy, ours(4, "saddr", "10.244.0.0", 16), ours(5, "daddr", "10.244.0.0", 16), reject(9)], ["10.244.0.0/16", "10.8.0.0/16"],
      [["saddr", "10.8.0.0/16"], ["daddr", "10.8.0.0/16"]], [], 9],
    ["a range gone: only deletes", [ours(4, "saddr", "10.99.0.0", 16), ours(5, "daddr", "10.99.0.0", 16), reject(9)], [], [], [4, 5], undefined],
    // An older agent accepted each pool range; the pod network now comes merged (desiredNodeState).
    ["an older agent's accepts per unmerged range: replaced by the merged range's, in front of it",
      [kubeProxy, ours(4, "saddr", "10.244.0.0", 24), ours(5, "daddr", "10.244.0.0", 24), ours(6, "saddr", "10.244.1.0", 24), ours(7, "daddr", "10.244.1.0", 24), reject(9)], ["10.244.0.0/23"],
      [["saddr", "10.244.0.0/23"], ["daddr", "10.244.0.0/23"]], [4, 5, 6, 7], 9],
    // The first of two final rules ends the chain: in front of the second, the accepts would never be reached.
    ["two: in front of the first", [reject(8), drop(9)], ["10.244.0.0/16"], [["saddr", "10.244.0.0/16"], ["daddr", "10.244.0.0/16"]], [], 8],
    ["a REJECT that matches something is no final rule", [reject(9, { match: { op: "==", left: { payload: { protocol: "ip", field: "saddr" } }, right: { prefix: { addr: "10.1.0.0", len: 16 } } } })], ["10.244.0.0/16"], [], [], undefined],
  ])("a chain that ends in a rule dropping everything, policy accept: %s", (_case, rules, ranges, insert, deleteHandles, before) => {
    const plan = planForwardAccepts(parseForwardChain(listing("accept", rules)), ranges);
    expect(plan.add.map((r) => [r.direction, r.cidr])).toEqual(insert);
    expect(plan.deleteHandles).toEqual(deleteHandles);
    expect(plan.before).toBe(before);
  });

  it("keeps every accepted range while removals are held (the pools' records vanished with their CRD), and adds a new one", () => {
    const chain = parseForwardChain(listing("drop", [docker, ours(4, "saddr", "10.244.0.0", 16), ours(5, "daddr", "10.244.0.0", 16)]));
    expect(acceptedRanges(chain, [])).toEqual(["10.244.0.0/16"]);
    const plan = planForwardAccepts(chain, acceptedRanges(chain, ["10.8.0.0/16"]));
    expect(plan.deleteHandles).toEqual([]);
    expect(plan.add.map((r) => [r.direction, r.cidr])).toEqual([["saddr", "10.8.0.0/16"], ["daddr", "10.8.0.0/16"]]);
  });

  it("with a final rule as well as a drop policy, the accepts go in front of the rule", () => {
    expect(planForwardAccepts(parseForwardChain(listing("drop", [docker, reject(9)])), ["10.244.0.0/16"]).before).toBe(9);
  });

  it("leaves a rule that is not podnet's alone even when it matches a pod range", () => {
    const theirs = { ...ours(7, "saddr", "10.244.0.0", 16), comment: "by hand" };
    expect(planForwardAccepts(parseForwardChain(listing("accept", [theirs])), ["10.244.0.0/16"])).toEqual({ add: [], deleteHandles: [] });
  });

  it("writes one nft script per family, in the iptables-nft chain", () => {
    expect(forwardAcceptScript(6, { add: [{ direction: "saddr", cidr: "fd00:10::/56" }], deleteHandles: [9] })).toBe(
      `delete rule ip6 filter FORWARD handle 9\nadd rule ip6 filter FORWARD ip6 saddr fd00:10::/56 counter accept comment "${FORWARD_ACCEPT_COMMENT}"\n`);
  });

  it("inserts in front of a final rule by its handle, each right in front of it so they keep their order", () => {
    expect(forwardAcceptScript(4, { add: [{ direction: "saddr", cidr: "10.244.0.0/16" }, { direction: "daddr", cidr: "10.244.0.0/16" }], deleteHandles: [4], before: 9 })).toBe([
      "delete rule ip filter FORWARD handle 4",
      `insert rule ip filter FORWARD position 9 ip saddr 10.244.0.0/16 counter accept comment "${FORWARD_ACCEPT_COMMENT}"`,
      `insert rule ip filter FORWARD position 9 ip daddr 10.244.0.0/16 counter accept comment "${FORWARD_ACCEPT_COMMENT}"`, ""].join("\n"));
  });
});

describe("the firewall step's outcome", () => {
  const outcome = (sysctls: SyncOutcome["sysctls"]): SyncOutcome => ({
    routes: { desired: 0, installed: 0, overlay: 0, overlayChanges: 0, added: 0, replaced: 0, deleted: 0, conflicts: [], unreachable: [] },
    cni: { path: "/etc/cni/net.d/10-podnet.conflist", changed: false, shadowedBy: [], missingPlugins: [] },
    masquerade: { enabled: true }, sysctls, rejected: [],
  });
  const reason = (sysctls: SyncOutcome["sysctls"]) => agentConditions(outcome(sysctls)).find((c) => c.type === "SysctlsReady")!;

  it.each([
    ["accepts in place", { forwardDropPolicy: [4] as Array<4 | 6> }, "True", "Set"],
    ["nft refused the accepts", { forwardAcceptError: "nft: Operation not permitted" }, "False", "ForwardDropped"],
    ["the chain could not be read", { forwardAcceptError: "nft list chain ip filter FORWARD failed: Operation not permitted", forwardChainUnreadable: true }, "False", "FirewallUnreadable"],
  ])("SysctlsReady: %s", (_case, sysctls, status, why) => {
    expect(reason(sysctls)).toMatchObject({ status, reason: why });
  });

  const firewalld = { family: "inet" as const, table: "firewalld", chain: "filter_FORWARD", ranges: ["10.244.0.0/16"] };
  it("another table's chain that drops pod traffic: SysctlsReady False, naming it and what lets the pod network through; one that only may: True, saying so", () => {
    const dropped = reason({ forwardDroppedElsewhere: [{ ...firewalld, dropped: ["IPv4 between pods of this node"], mayDrop: ["IPv4 from this node's pods to other nodes"] }] });
    expect(dropped).toMatchObject({ status: "False", reason: "ForwardDroppedByOtherTable" });
    expect(dropped.message).toContain("nft table inet firewalld, chain filter_FORWARD (forward hook) drops by default and drops IPv4 between pods of this node; it may drop IPv4 from this node's pods to other nodes");
    expect(dropped.message).toContain("firewall-cmd --permanent --zone=trusted --add-interface=podnet0 --add-source=10.244.0.0/16");
    const mayDrop = reason({ forwardDroppedElsewhere: [{ ...firewalld, dropped: [], mayDrop: ["IPv4 from other nodes to this node's pods"] }] });
    expect(mayDrop).toMatchObject({ status: "True", reason: "ForwardMayBeDropped" });
    expect(mayDrop.message).toMatch(/^forwarding enabled.*; .*may drop IPv4 from other nodes to this node's pods/);
    // A table podnet cannot read (an nft older than the one that wrote it) may drop: said, the node not held back.
    const unreadable = reason({ forwardDroppedElsewhere: [{ ...firewalld, dropped: [], mayDrop: ["IPv4 between pods of this node"], unreadable: "nft -j list table inet firewalld failed: unknown expression" }] });
    expect(unreadable).toMatchObject({ status: "True", reason: "ForwardMayBeDropped" });
    expect(unreadable.message).toContain("nft table inet firewalld, chain filter_FORWARD (forward hook) may drop pod traffic: podnet cannot read it (nft -j list table inet firewalld failed: unknown expression)");
    // A failure podnet can act on comes first; br_netfilter comes after: the pods would not talk at all.
    expect(reason({ forwardAcceptError: "nft: refused", forwardDroppedElsewhere: [{ ...firewalld, dropped: ["x"], mayDrop: [] }] }).reason).toBe("ForwardDropped");
    expect(reason({ bridgeNetfilterError: "off", forwardDroppedElsewhere: [{ ...firewalld, dropped: ["x"], mayDrop: [] }] }).reason).toBe("ForwardDroppedByOtherTable");
  });

  it("an event pass that ran the firewall step replaces its earlier result, a success included; one that did not keeps it", () => {
    const failed = { forwardAcceptError: "nft: busy", bridgeNetfilterError: "br_netfilter off" };
    expect(sysctlsAfterPass(failed, { skipped: true, firewallChecked: true, forwardDropPolicy: [4] })).toEqual({ bridgeNetfilterError: "br_netfilter off", forwardDropPolicy: [4] });
    expect(sysctlsAfterPass(failed, { skipped: true })).toBe(failed);
    expect(sysctlsAfterPass({ forwardDropPolicy: [4] }, { skipped: true, firewallChecked: true, forwardAcceptError: "nft: busy" })).toEqual({ forwardAcceptError: "nft: busy" });
    const elsewhere = [{ ...firewalld, dropped: ["x"], mayDrop: [] }];
    expect(sysctlsAfterPass({ forwardDroppedElsewhere: elsewhere }, { skipped: true })).toEqual({ forwardDroppedElsewhere: elsewhere });
    expect(sysctlsAfterPass({ forwardDroppedElsewhere: elsewhere }, { skipped: true, firewallChecked: true })).toEqual({});
  });

  it("a full pass stands on its own, unless its firewall step met a held xtables lock: that step's last result stands, and the pass is retried", () => {
    const accepted = { forwardDropPolicy: [4] as Array<4 | 6> };
    const full = { bridgeNetfilterError: "br_netfilter off", firewallChecked: true, forwardAcceptError: "nft: refused" };
    expect(sysctlsAfterPass(accepted, full)).toBe(full);
    expect(sysctlsAfterPass(undefined, full)).toBe(full);
    const held = "iptables-legacy -S FORWARD: Another app is currently holding the xtables lock. Stopped waiting after 5s.";
    const busyFull = sysctlsAfterPass(accepted, { error: "forwarding off", firewallChecked: true, firewallBusy: held });
    expect(busyFull).toEqual({ error: "forwarding off", firewallChecked: true, forwardDropPolicy: [4], firewallBusy: held });
    expect(reason(busyFull).reason).not.toBe("FirewallUnreadable");
    const busyEvent = sysctlsAfterPass({ bridgeNetfilterError: "br_netfilter off", forwardAcceptError: "nft: refused", firewallBusy: "earlier" }, { skipped: true, firewallChecked: true, firewallBusy: held });
    expect(busyEvent).toEqual({ bridgeNetfilterError: "br_netfilter off", forwardAcceptError: "nft: refused", firewallBusy: held });
    expect(passLeftWorkUndone(outcome({ ...accepted, firewallBusy: held }))).toBe(true);
    expect(passLeftWorkUndone(outcome(accepted))).toBe(false);
  });
});
