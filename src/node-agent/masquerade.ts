import { parseCidr } from "../lib/cidr.js";
import { run, runOk } from "./exec.js";

export const NFT_TABLE = "podnet";

export interface NftTableInput {
  podCidrs: string[];
  /** Networks pod sources stay visible to (ip-masq-agent's nonMasqueradeCIDRs). */
  keepSourceTo?: string[];
  masquerade: boolean;
  /** The overlay device: TCP handshakes leaving through it get their MSS lowered to its route's MTU. */
  clampMssOut?: string;
}

/** Whether podnet needs its nft table at all. */
export const wantsNftTable = (input: Pick<NftTableInput, "masquerade" | "clampMssOut">) => input.masquerade || input.clampMssOut !== undefined;

/**
 * Pure: the whole `inet podnet` table.
 *
 * Masquerade: pod traffic to anything outside the pod network is masqueraded; pod→pod stays un-NATed (the
 * receiver sees the sender's pod IP), and so does traffic to `keepSourceTo`: networks the user routes pod ranges
 * back from (a peered VPC, an on-premises range). Ports are picked fully at random, as kube-proxy and flannel do
 * where the kernel allows: with sequential picks, two pods connecting to one destination at once can race for
 * the same source port and conntrack drops the loser's SYN.
 *
 * MSS clamp: pods keep their link's full MTU, so traffic to direct peers pays no encapsulation tax; a TCP
 * handshake forwarded into the overlay gets the MSS the smaller VXLAN MTU allows, so the connection never sends
 * a segment the tunnel would have to refuse. (Other packets too big for it get an ICMP "fragmentation needed"
 * from this node, their first hop.) The kernel only ever lowers an MSS this way.
 *
 * The script first creates then deletes the table, so applying it replaces our table atomically and never
 * touches anyone else's.
 */
export function renderNftTable(input: NftTableInput): string {
  const ofFamily = (cidrs: string[], family: 4 | 6) => cidrs.filter((c) => parseCidr(c).family === family);
  const set = (name: string, type: string, items: string[]) =>
    `  set ${name} {\n    type ${type}; flags interval; auto-merge;\n${items.length ? `    elements = { ${items.join(", ")} }\n` : ""}  }\n`;
  const masquerade = input.masquerade ? [
    ([4, 6] as const).flatMap((f) => {
      const type = f === 4 ? "ipv4_addr" : "ipv6_addr";
      return [set(`pod_v${f}`, type, ofFamily(input.podCidrs, f)), set(`keep_source_v${f}`, type, ofFamily(input.keepSourceTo ?? [], f))];
    }).join("").trimEnd(),
    "  chain postrouting {",
    "    type nat hook postrouting priority srcnat; policy accept;",
    "    ip saddr @pod_v4 ip daddr != @pod_v4 ip daddr != @keep_source_v4 counter masquerade fully-random",
    "    ip6 saddr @pod_v6 ip6 daddr != @pod_v6 ip6 daddr != @keep_source_v6 counter masquerade fully-random",
    "  }",
  ] : [];
  const clamp = input.clampMssOut ? [
    "  chain forward {",
    "    type filter hook forward priority mangle; policy accept;",
    `    oifname "${input.clampMssOut}" tcp flags syn / syn,rst counter tcp option maxseg size set rt mtu`,
    "  }",
  ] : [];
  return [
    `table inet ${NFT_TABLE} {}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    ...masquerade,
    ...clamp,
    "}",
    "",
  ].join("\n");
}

export async function applyNftTable(ruleset: string, netns?: string): Promise<void> {
  await runOk("nft", ["-f", "-"], { netns, input: ruleset });
}

/**
 * podnet's table as the kernel lists it, counters left out (undefined if it is missing). A full pass compares
 * it with the listing taken right after podnet's own apply: re-applying an unchanged table would zero the
 * masquerade counters every resync, so only a table that was changed by hand (or removed) is rewritten.
 */
export async function listNftTable(netns?: string): Promise<string | undefined> {
  const r = await run("nft", ["list", "table", "inet", NFT_TABLE], { netns });
  return r.code === 0 ? r.stdout.replace(/counter packets \d+ bytes \d+/g, "counter") : undefined;
}

/** Packets counted by the rules of one chain of podnet's table: masqueraded (postrouting), MSS-clamped (forward). */
export async function nftChainCount(netns?: string, chain: "postrouting" | "forward" = "postrouting"): Promise<number> {
  const out = await runOk("nft", ["-j", "list", "chain", "inet", NFT_TABLE, chain], { netns });
  const items = (JSON.parse(out) as { nftables: Array<{ rule?: { expr: Array<{ counter?: { packets: number } }> } }> }).nftables;
  return items.flatMap((i) => i.rule?.expr ?? []).reduce((n, e) => n + (e.counter?.packets ?? 0), 0);
}

export async function removeNftTable(netns?: string): Promise<void> {
  const r = await run("nft", ["delete", "table", "inet", NFT_TABLE], { netns });
  if (r.code !== 0 && !/No such file|does not exist/i.test(r.stderr)) throw new Error(`nft delete table failed: ${r.stderr.trim()}`);
}
