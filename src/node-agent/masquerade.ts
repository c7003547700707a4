import { parseCidr } from "../lib/cidr.js";
import { run, runOk } from "./exec.js";

export const NFT_TABLE = "podnet";

/**
 * Pure: the whole `inet podnet` table. Pod traffic to anything outside the pod network is masqueraded;
 * pod→pod stays un-NATed (the receiver sees the sender's pod IP), and so does traffic to `keepSourceTo`: networks
 * the user routes pod ranges back from (a peered VPC, an on-premises range), as ip-masq-agent's
 * nonMasqueradeCIDRs. Ports are picked fully at random, as kube-proxy and flannel do where the kernel allows:
 * with sequential picks, two pods connecting to one destination at once can race for the same source port and
 * conntrack drops the loser's SYN. The script first creates then deletes the table, so applying it replaces our
 * table atomically and never touches anyone else's.
 */
export function renderMasqueradeRuleset(podCidrs: string[], keepSourceTo: string[] = []): string {
  const ofFamily = (cidrs: string[], family: 4 | 6) => cidrs.filter((c) => parseCidr(c).family === family);
  const set = (name: string, type: string, items: string[]) =>
    `  set ${name} {\n    type ${type}; flags interval; auto-merge;\n${items.length ? `    elements = { ${items.join(", ")} }\n` : ""}  }\n`;
  const sets = ([4, 6] as const).flatMap((f) => {
    const type = f === 4 ? "ipv4_addr" : "ipv6_addr";
    return [set(`pod_v${f}`, type, ofFamily(podCidrs, f)), set(`keep_source_v${f}`, type, ofFamily(keepSourceTo, f))];
  });
  return [
    `table inet ${NFT_TABLE} {}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    sets.join("").trimEnd(),
    "  chain postrouting {",
    "    type nat hook postrouting priority srcnat; policy accept;",
    "    ip saddr @pod_v4 ip daddr != @pod_v4 ip daddr != @keep_source_v4 counter masquerade fully-random",
    "    ip6 saddr @pod_v6 ip6 daddr != @pod_v6 ip6 daddr != @keep_source_v6 counter masquerade fully-random",
    "  }",
    "}",
    "",
  ].join("\n");
}

export async function applyMasquerade(ruleset: string, netns?: string): Promise<void> {
  await runOk("nft", ["-f", "-"], { netns, input: ruleset });
}

/**
 * podnet's table as the kernel lists it, counters left out (undefined if it is missing). A full pass compares
 * it with the listing taken right after podnet's own apply: re-applying an unchanged table would zero the
 * masquerade counters every resync, so only a table that was changed by hand (or removed) is rewritten.
 */
export async function listMasquerade(netns?: string): Promise<string | undefined> {
  const r = await run("nft", ["list", "table", "inet", NFT_TABLE], { netns });
  return r.code === 0 ? r.stdout.replace(/counter packets \d+ bytes \d+/g, "counter") : undefined;
}

/** Packets masqueraded so far (both families), read from the rule counters. */
export async function masqueradeCount(netns?: string): Promise<number> {
  const out = await runOk("nft", ["-j", "list", "chain", "inet", NFT_TABLE, "postrouting"], { netns });
  const items = (JSON.parse(out) as { nftables: Array<{ rule?: { expr: Array<{ counter?: { packets: number } }> } }> }).nftables;
  return items.flatMap((i) => i.rule?.expr ?? []).reduce((n, e) => n + (e.counter?.packets ?? 0), 0);
}

export async function removeMasquerade(netns?: string): Promise<void> {
  const r = await run("nft", ["delete", "table", "inet", NFT_TABLE], { netns });
  if (r.code !== 0 && !/No such file|does not exist/i.test(r.stderr)) throw new Error(`nft delete table failed: ${r.stderr.trim()}`);
}
