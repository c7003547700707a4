import { describe, expect, it } from "vitest";
import { FORWARD_ACCEPT_COMMENT, forwardAcceptScript, parseForwardChain, planForwardAccepts } from "./forward-accept.js";
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

  it("leaves a rule that is not podnet's alone even when it matches a pod range", () => {
    const theirs = { ...ours(7, "saddr", "10.244.0.0", 16), comment: "by hand" };
    expect(planForwardAccepts(parseForwardChain(listing("accept", [theirs])), ["10.244.0.0/16"])).toEqual({ add: [], deleteHandles: [] });
  });

  it("writes one nft script per family, in the iptables-nft chain", () => {
    expect(forwardAcceptScript(6, { add: [{ direction: "saddr", cidr: "fd00:10::/56" }], deleteHandles: [9] })).toBe(
      `delete rule ip6 filter FORWARD handle 9\nadd rule ip6 filter FORWARD ip6 saddr fd00:10::/56 counter accept comment "${FORWARD_ACCEPT_COMMENT}"\n`);
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

  it("an event pass that ran the firewall step replaces its earlier result, a success included; one that did not keeps it", () => {
    const failed = { forwardAcceptError: "nft: busy", bridgeNetfilterError: "br_netfilter off" };
    expect(sysctlsAfterPass(failed, { skipped: true, firewallChecked: true, forwardDropPolicy: [4] })).toEqual({ bridgeNetfilterError: "br_netfilter off", forwardDropPolicy: [4] });
    expect(sysctlsAfterPass(failed, { skipped: true })).toBe(failed);
    expect(sysctlsAfterPass({ forwardDropPolicy: [4] }, { skipped: true, firewallChecked: true, forwardAcceptError: "nft: busy" })).toEqual({ forwardAcceptError: "nft: busy" });
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
