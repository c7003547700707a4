import { describe, expect, it } from "vitest";
import { legacyForwardAcceptScript, parseLegacyForwardChain } from "./forward-accept-legacy.js";
import { FORWARD_ACCEPT_COMMENT, planForwardAccepts } from "./forward-accept.js";

// `iptables-legacy -S FORWARD` on a host where Docker (on iptables-legacy) set the policy, with kube-proxy's jump.
const listing = (policy: string, ...rules: string[]) => [`-P FORWARD ${policy}`, ...rules.map((r) => `-A FORWARD ${r}`), ""].join("\n");
const ours = (flag: "-s" | "-d", cidr: string) => `${flag} ${cidr} -m comment --comment "${FORWARD_ACCEPT_COMMENT}" -j ACCEPT`;
const docker = "-j DOCKER-USER";
const kubeProxy = '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD';
const rhelReject = "-j REJECT --reject-with icmp-host-prohibited"; // iptables-services' /etc/sysconfig/iptables

describe("the host firewall's FORWARD chain on iptables-legacy", () => {
  it("reads the policy, each rule's position and text, and the one address of podnet's rules", () => {
    const chain = parseLegacyForwardChain(listing("DROP", docker, ours("-d", "10.244.0.0/16"), kubeProxy, "! -s 10.244.0.0/16 -j ACCEPT"));
    expect(chain.policy).toBe("drop");
    expect(chain.rules).toEqual([
      { handle: 1, spec: docker },
      { handle: 2, spec: ours("-d", "10.244.0.0/16"), comment: FORWARD_ACCEPT_COMMENT, direction: "daddr", cidr: "10.244.0.0/16" },
      { handle: 3, spec: kubeProxy, comment: "kubernetes forwarding rules" },
      { handle: 4, spec: "! -s 10.244.0.0/16 -j ACCEPT" }, // a negated source is no accept of the range
    ]);
    expect(parseLegacyForwardChain("-P INPUT DROP\n-P FORWARD ACCEPT\n-A INPUT -j DROP\n")).toEqual({ policy: "accept", rules: [] });
    expect(parseLegacyForwardChain(listing("ACCEPT", rhelReject)).rules).toEqual([{ handle: 1, spec: rhelReject, dropsAll: true }]);
  });

  it.each([
    ["a drop policy: accepts appended", listing("DROP", docker), ["10.244.0.0/16"],
      `*filter\n-A FORWARD ${ours("-s", "10.244.0.0/16")}\n-A FORWARD ${ours("-d", "10.244.0.0/16")}\nCOMMIT\n`],
    ["already in place: the same plan as nft's, nothing to do", listing("DROP", docker, ours("-s", "10.244.0.0/16"), ours("-d", "10.244.0.0/16")), ["10.244.0.0/16"], undefined],
    ["a range gone: its rules deleted by their text, not their number", listing("DROP", docker, ours("-s", "10.99.0.0/16"), ours("-s", "10.244.0.0/16"), ours("-d", "10.244.0.0/16")), ["10.244.0.0/16"],
      `*filter\n-D FORWARD ${ours("-s", "10.99.0.0/16")}\nCOMMIT\n`],
    ["on top of kube-proxy's jump: moved below it", listing("DROP", ours("-s", "fd00:10::/56"), ours("-d", "fd00:10::/56"), kubeProxy), ["fd00:10::/56"],
      `*filter\n-D FORWARD ${ours("-s", "fd00:10::/56")}\n-D FORWARD ${ours("-d", "fd00:10::/56")}\n-A FORWARD ${ours("-s", "fd00:10::/56")}\n-A FORWARD ${ours("-d", "fd00:10::/56")}\nCOMMIT\n`],
    ["an accept policy: podnet's rules go", listing("ACCEPT", ours("-d", "10.244.0.0/16")), ["10.244.0.0/16"], `*filter\n-D FORWARD ${ours("-d", "10.244.0.0/16")}\nCOMMIT\n`],
    ["RHEL's final REJECT, policy accept: inserted at its place, after kube-proxy's jump", listing("ACCEPT", kubeProxy, rhelReject), ["10.244.0.0/16"],
      `*filter\n-I FORWARD 2 ${ours("-s", "10.244.0.0/16")}\n-I FORWARD 3 ${ours("-d", "10.244.0.0/16")}\nCOMMIT\n`],
    ["already in front of it: nothing", listing("ACCEPT", kubeProxy, ours("-s", "10.244.0.0/16"), ours("-d", "10.244.0.0/16"), rhelReject), ["10.244.0.0/16"], undefined],
    // Numbers as they are after the deletions above the REJECT in the same restore.
    ["above kube-proxy's jump: moved down to the REJECT, counted after the deletions", listing("ACCEPT", ours("-s", "10.244.0.0/16"), kubeProxy, ours("-d", "10.244.0.0/16"), "-j DROP"), ["10.244.0.0/16"],
      `*filter\n-D FORWARD ${ours("-s", "10.244.0.0/16")}\n-D FORWARD ${ours("-d", "10.244.0.0/16")}\n-I FORWARD 2 ${ours("-s", "10.244.0.0/16")}\n-I FORWARD 3 ${ours("-d", "10.244.0.0/16")}\nCOMMIT\n`],
    ["behind it (policy drop as well): moved in front", listing("DROP", docker, '-m comment --comment "reject the rest" -j REJECT', ours("-s", "10.244.0.0/16"), ours("-d", "10.244.0.0/16")), ["10.244.0.0/16"],
      `*filter\n-D FORWARD ${ours("-s", "10.244.0.0/16")}\n-D FORWARD ${ours("-d", "10.244.0.0/16")}\n-I FORWARD 2 ${ours("-s", "10.244.0.0/16")}\n-I FORWARD 3 ${ours("-d", "10.244.0.0/16")}\nCOMMIT\n`],
    ["an older agent's accepts per unmerged range: deleted by text, the merged range's inserted at the REJECT's place after the deletions",
      listing("ACCEPT", kubeProxy, ours("-s", "10.244.0.0/24"), ours("-d", "10.244.0.0/24"), ours("-s", "10.244.1.0/24"), ours("-d", "10.244.1.0/24"), rhelReject), ["10.244.0.0/23"],
      `*filter\n${["0", "1"].flatMap((n) => [`-D FORWARD ${ours("-s", `10.244.${n}.0/24`)}\n`, `-D FORWARD ${ours("-d", `10.244.${n}.0/24`)}\n`]).join("")}`
      + `-I FORWARD 2 ${ours("-s", "10.244.0.0/23")}\n-I FORWARD 3 ${ours("-d", "10.244.0.0/23")}\nCOMMIT\n`],
    ["a REJECT that matches something is no final rule", listing("ACCEPT", "-p tcp -j REJECT --reject-with tcp-reset", "-i eth1 -j DROP"), ["10.244.0.0/16"], undefined],
  ])("%s", (_case, text, ranges, script) => {
    const chain = parseLegacyForwardChain(text);
    const plan = planForwardAccepts(chain, ranges);
    expect(plan.add.length || plan.deleteHandles.length ? legacyForwardAcceptScript(chain, plan) : undefined).toBe(script);
  });
});
