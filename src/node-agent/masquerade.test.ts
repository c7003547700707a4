import { describe, expect, it } from "vitest";
import { chainPackets, renderNftTable, senderChanges, splitSenderElements, wantsNftTable } from "./masquerade.js";

const masqueradeOnly = (podCidrs: string[], keepSourceTo: string[] = []) => renderNftTable({ podCidrs, keepSourceTo, masquerade: true });

/** The elements of one named set in a rendered ruleset ([] for an empty set). */
const setElements = (ruleset: string, name: string): string[] => {
  const match = new RegExp(`  set ${name} \\{\\n[^\\n]*\\n(?:    elements = \\{ ([^}]*) \\}\\n)?  \\}`).exec(ruleset);
  if (!match) throw new Error(`set ${name} missing from:\n${ruleset}`);
  return match[1]?.split(", ") ?? [];
};

describe("renderNftTable: which pod traffic is masqueraded", () => {
  it.each([
    ["IPv4 only", ["10.244.0.0/16"], [], { pod_v4: ["10.244.0.0/16"], pod_v6: [], keep_source_v4: [], keep_source_v6: [] }],
    ["dual-stack, each family in its own set", ["10.244.0.0/16", "fd00:10:244::/56"], [], { pod_v4: ["10.244.0.0/16"], pod_v6: ["fd00:10:244::/56"], keep_source_v4: [], keep_source_v6: [] }],
    ["no-masquerade CIDRs split by family", ["10.244.0.0/16"], ["192.168.0.0/16", "fd00:99::/48", "172.16.0.0/12"],
      { pod_v4: ["10.244.0.0/16"], pod_v6: [], keep_source_v4: ["192.168.0.0/16", "172.16.0.0/12"], keep_source_v6: ["fd00:99::/48"] }],
    ["an exception inside the pod network is harmless (auto-merge keeps one set per purpose)", ["10.244.0.0/16"], ["10.244.5.0/24"],
      { pod_v4: ["10.244.0.0/16"], pod_v6: [], keep_source_v4: ["10.244.5.0/24"], keep_source_v6: [] }],
  ] as const)("%s", (_label, pods, keep, sets) => {
    const ruleset = masqueradeOnly([...pods], [...keep]);
    for (const [name, elements] of Object.entries(sets)) expect(setElements(ruleset, name), name).toEqual(elements);
  });

  it("masquerades only pod sources going outside the pod network and the exceptions, with fully random ports", () => {
    const rules = masqueradeOnly(["10.244.0.0/16"], ["192.168.0.0/16"]).split("\n").filter((l) => l.includes("masquerade"));
    expect(rules).toEqual([
      "    ip saddr @pod_v4 ip daddr != @pod_v4 ip daddr != @keep_source_v4 counter masquerade fully-random",
      "    ip6 saddr @pod_v6 ip6 daddr != @pod_v6 ip6 daddr != @keep_source_v6 counter masquerade fully-random",
    ]);
  });

  it("replaces podnet's table as one transaction and touches no other table", () => {
    const lines = masqueradeOnly(["10.244.0.0/16"]).split("\n");
    expect(lines.slice(0, 3)).toEqual(["table inet podnet {}", "delete table inet podnet", "table inet podnet {"]);
    expect(lines.filter((l) => /^(table|delete|flush|add)\b/.test(l)).every((l) => l.includes("inet podnet"))).toBe(true);
  });

  it("clamps the MSS of TCP handshakes leaving through the overlay device, with or without masquerade", () => {
    const clampRule = '    oifname "podnet.vxlan" tcp flags syn / syn,rst counter tcp option maxseg size set rt mtu';
    const both = renderNftTable({ podCidrs: ["10.244.0.0/16"], masquerade: true, clampMssOut: "podnet.vxlan" });
    expect(both).toContain(clampRule);
    expect(both).toContain("chain postrouting {");
    const clampOnly = renderNftTable({ podCidrs: ["10.244.0.0/16"], masquerade: false, clampMssOut: "podnet.vxlan" }).split("\n");
    expect(clampOnly.filter((l) => l.includes("masquerade") || l.startsWith("  set "))).toEqual([]);
    expect(clampOnly).toContain("    type filter hook forward priority mangle; policy accept;");
    expect(clampOnly).toContain(clampRule);
    expect(masqueradeOnly(["10.244.0.0/16"])).not.toContain("maxseg");
  });

  it("also clamps handshakes forwarded in from a sender routed back through the tunnel, to its MTU's MSS per family, never raising one", () => {
    const lines = renderNftTable({ podCidrs: ["10.244.0.0/16"], masquerade: false, clampMssOut: "podnet.vxlan", tunnelMtu: 1450 }).split("\n");
    expect(lines).toContain('    meta nfproto ipv4 tcp flags syn / syn,rst tcp option maxseg size > 1410 fib saddr oifname "podnet.vxlan" counter tcp option maxseg size set 1410');
    expect(lines).toContain('    meta nfproto ipv6 tcp flags syn / syn,rst tcp option maxseg size > 1390 fib saddr oifname "podnet.vxlan" counter tcp option maxseg size set 1390');
    // The MTU not known yet (the uplink not read): only the rule that needs none.
    expect(renderNftTable({ podCidrs: ["10.244.0.0/16"], masquerade: false, clampMssOut: "podnet.vxlan" })).not.toContain("fib saddr");
    expect(renderNftTable({ podCidrs: ["10.244.0.0/16"], masquerade: true, tunnelMtu: 1450 })).not.toContain("maxseg");
  });

  it.each([
    [true, undefined, true], [false, "podnet.vxlan", true], [true, "podnet.vxlan", true], [false, undefined, false],
  ] as const)("masquerade %s, clamp out of %s: table wanted %s", (masquerade, clampMssOut, wanted) => {
    expect(wantsNftTable({ masquerade, ...(clampMssOut ? { clampMssOut } : {}) })).toBe(wanted);
  });

  it("takes VXLAN only from other nodes' IPs, per family, and drops pods' own VXLAN to nodes; alone it still wants the table", () => {
    const vxlan = { port: 8472, senders: ["192.168.1.12", "192.168.1.13", "fd00::12"] };
    expect(wantsNftTable({ masquerade: false, vxlan })).toBe(true);
    const lines = renderNftTable({ podCidrs: ["10.244.0.0/16"], masquerade: false, vxlan }).split("\n");
    expect(lines).toContain("    elements = { 192.168.1.12, 192.168.1.13 }");
    expect(lines).toContain("    elements = { fd00::12 }");
    expect(lines.filter((l) => l.includes("drop"))).toEqual([
      "    udp dport 8472 ip saddr != @vxlan_senders_v4 counter drop",
      "    udp dport 8472 ip6 saddr != @vxlan_senders_v6 counter drop",
      '    iifname "podnet0" udp dport 8472 ip daddr @vxlan_senders_v4 counter drop',
      '    iifname "podnet0" udp dport 8472 ip6 daddr @vxlan_senders_v6 counter drop',
    ]);
    expect(lines).toContain("    type filter hook input priority filter; policy accept;");
    // No senders yet (a first node): every VXLAN datagram is dropped, and the empty sets still parse.
    const alone = renderNftTable({ podCidrs: [], masquerade: false, vxlan: { port: 4789, senders: [] } });
    expect(alone).not.toContain("elements");
    expect(alone).toContain("udp dport 4789 ip saddr != @vxlan_senders_v4 counter drop");
  });

  it.each([
    ["same senders", ["10.0.0.1"], ["10.0.0.1"], undefined],
    ["a join", ["10.0.0.1"], ["10.0.0.1", "10.0.0.2"], "add element inet podnet vxlan_senders_v4 { 10.0.0.2 }\n"],
    ["a leave, both families", ["10.0.0.1", "fd00::1", "fd00::2"], ["10.0.0.1"], "delete element inet podnet vxlan_senders_v6 { fd00::1, fd00::2 }\n"],
    ["a node re-addressed", ["10.0.0.1", "10.0.0.2"], ["10.0.0.1", "10.0.0.3"],
      "add element inet podnet vxlan_senders_v4 { 10.0.0.3 }\ndelete element inet podnet vxlan_senders_v4 { 10.0.0.2 }\n"],
  ])("senderChanges on %s: only the elements that differ, in one script", (_what, before, after, script) => {
    expect(senderChanges(before, after)).toBe(script);
  });

  it("splitSenderElements: the listing without the senders' elements, and the elements as nft prints them, sorted", () => {
    const listing = [
      "table inet podnet {", "\tset vxlan_senders_v4 {", "\t\ttype ipv4_addr", "\t\telements = { 192.168.0.3, 192.168.0.1,", "\t\t\t     192.168.0.2 }", "\t}",
      "\tset vxlan_senders_v6 {", "\t\ttype ipv6_addr", "\t}", "\tset pod_v4 {", "\t\ttype ipv4_addr", "\t\tflags interval", "\t\telements = { 10.244.0.0/16 }", "\t}", "}",
    ].join("\n");
    const { frame, senders } = splitSenderElements(listing);
    expect(senders).toEqual(["192.168.0.1", "192.168.0.2", "192.168.0.3"]);
    expect(frame).not.toContain("192.168");
    expect(frame).toContain("elements = { 10.244.0.0/16 }"); // only the senders' sets lose theirs
    expect(splitSenderElements(listing.replace("192.168.0.2", "192.168.0.9")).frame).toBe(frame);
  });

  it.each([
    ["192.168.1.11", ["    udp dport 8472 ip daddr != 192.168.1.11 counter drop", "    meta nfproto ipv6 udp dport 8472 counter drop"]],
    ["fd00::11", ["    udp dport 8472 ip6 daddr != fd00::11 counter drop", "    meta nfproto ipv4 udp dport 8472 counter drop"]],
  ])("takes VXLAN only at this node's underlay address %s (peers send nowhere else; a pod could aim at a peer's VIP)", (local, rules) => {
    const lines = renderNftTable({ podCidrs: [], masquerade: false, vxlan: { port: 8472, senders: ["192.168.1.12"], local } }).split("\n");
    const chain = lines.slice(lines.indexOf("  chain vxlan_in {"), lines.indexOf("  chain vxlan_from_pods {"));
    expect(chain.slice(-3, -1)).toEqual(rules);
  });

  it("chainPackets sums one chain's counters from an nft listing", () => {
    const listing = "table inet podnet {\n\tchain vxlan_in {\n\t\tudp dport 8472 ip saddr != @s counter packets 3 bytes 300 drop\n\t\tudp dport 8472 ip daddr != 1.2.3.4 counter packets 2 bytes 9 drop\n\t}\n"
      + "\tchain vxlan_from_pods {\n\t\tiifname \"podnet0\" counter packets 7 bytes 1 drop\n\t}\n}\n";
    expect(chainPackets(listing, "vxlan_in")).toBe(5);
    expect(chainPackets(listing, "vxlan_from_pods")).toBe(7);
    expect(chainPackets(listing, "postrouting")).toBe(0);
  });
});
