import { describe, expect, it } from "vitest";
import { renderNftTable, wantsNftTable } from "./masquerade.js";

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

  it.each([
    [true, undefined, true], [false, "podnet.vxlan", true], [true, "podnet.vxlan", true], [false, undefined, false],
  ] as const)("masquerade %s, clamp out of %s: table wanted %s", (masquerade, clampMssOut, wanted) => {
    expect(wantsNftTable({ masquerade, ...(clampMssOut ? { clampMssOut } : {}) })).toBe(wanted);
  });
});
