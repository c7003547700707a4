import { familyOfText, parseCidr } from "../lib/cidr.js";
import { BRIDGE_NAME } from "./cni-conflist.js";
import { run, runOk } from "./exec.js";

export const NFT_TABLE = "podnet";

export interface NftTableInput {
  podCidrs: string[];
  /** Networks pod sources stay visible to (ip-masq-agent's nonMasqueradeCIDRs). */
  keepSourceTo?: string[];
  masquerade: boolean;
  /** The overlay device: TCP handshakes leaving through it get their MSS lowered to its route's MTU. */
  clampMssOut?: string;
  /**
   * That device's MTU: handshakes forwarded from a sender whose way back goes out through it get at most the MSS
   * it carries (a peer that counts this node on-link sends directly, unclamped, and gets the tunnel back).
   */
  tunnelMtu?: number;
  /** The overlay is on: VXLAN on this UDP port is taken only from `senders`, the other nodes' IPs. */
  vxlan?: VxlanSenders;
}

/**
 * `local`: this node's underlay address, the only one peers send to (their fdb entries name it). The kernel's
 * VXLAN socket listens on every address of the node, so without it a pod could reach a peer through another
 * of the peer's addresses (a VIP), which this node's forward rule does not know.
 */
export interface VxlanSenders { port: number; senders: string[]; local?: string }

/** Whether podnet needs its nft table at all. */
export const wantsNftTable = (input: Pick<NftTableInput, "masquerade" | "clampMssOut" | "vxlan">) =>
  input.masquerade || input.clampMssOut !== undefined || input.vxlan !== undefined;

const senderSet = (family: 4 | 6) => `vxlan_senders_v${family}`;

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
 * Nodes can see each other differently (reverse-path.ts): a peer that counts this node on-link sends its
 * handshakes directly, unclamped, while this node answers through the tunnel, and this node's pods would send
 * segments the tunnel refuses. So a handshake forwarded here whose sender's route goes out through the tunnel
 * (`fib saddr`) gets the tunnel's MSS too, fixed from its MTU (`rt mtu` is the route towards the pod) and only
 * where it is larger.
 *
 * VXLAN senders: the kernel hands every UDP datagram on the VXLAN port to podnet.vxlan, whatever its source;
 * `nolearning` only keeps the device from learning peers. Without a filter anyone who reaches the port injects
 * frames with any inner source address into the pod network (past source-based NetworkPolicy). So VXLAN is
 * taken only from other nodes' IPs, and a pod's own VXLAN to a node, which leaves masqueraded as this node's
 * IP, is dropped before it goes.
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
    ...(input.tunnelMtu ? ([[4, 40], [6, 60]] as const).map(([f, headers]) => {
      const mss = input.tunnelMtu! - headers;
      return `    meta nfproto ipv${f} tcp flags syn / syn,rst tcp option maxseg size > ${mss} fib saddr oifname "${input.clampMssOut}" counter tcp option maxseg size set ${mss}`;
    }) : []),
    "  }",
  ] : [];
  const vxlan = input.vxlan ? vxlanFilter(input.vxlan) : [];
  return [
    `table inet ${NFT_TABLE} {}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    ...masquerade,
    ...clamp,
    ...vxlan,
    "}",
    "",
  ].join("\n");
}

function vxlanFilter({ port, senders, local }: VxlanSenders): string[] {
  // Plain sets, no intervals: a join or a leave then adds or deletes exactly one element (senderChanges).
  const sets = ([4, 6] as const).map((f) => {
    const items = senders.filter((ip) => familyOfText(ip) === f);
    return `  set ${senderSet(f)} {\n    type ipv${f}_addr;\n${items.length ? `    elements = { ${items.join(", ")} }\n` : ""}  }`;
  });
  return [
    ...sets,
    "  chain vxlan_in {",
    "    type filter hook input priority filter; policy accept;",
    `    udp dport ${port} ip saddr != @${senderSet(4)} counter drop`,
    `    udp dport ${port} ip6 saddr != @${senderSet(6)} counter drop`,
    ...(local === undefined ? [] : familyOfText(local) === 4
      ? [`    udp dport ${port} ip daddr != ${local} counter drop`, `    meta nfproto ipv6 udp dport ${port} counter drop`]
      : [`    udp dport ${port} ip6 daddr != ${local} counter drop`, `    meta nfproto ipv4 udp dport ${port} counter drop`]),
    "  }",
    "  chain vxlan_from_pods {",
    "    type filter hook forward priority filter; policy accept;",
    `    iifname "${BRIDGE_NAME}" udp dport ${port} ip daddr @${senderSet(4)} counter drop`,
    `    iifname "${BRIDGE_NAME}" udp dport ${port} ip6 daddr @${senderSet(6)} counter drop`,
    "  }",
  ];
}

/**
 * Pure: the nft script that turns the sender sets from `before` into `after` in one transaction, or undefined
 * when they are the same. A join costs every node this one element, not a rebuild of the table.
 */
export function senderChanges(before: string[], after: string[]): string | undefined {
  if (before === after) return undefined;
  const had = new Set(before);
  const want = new Set(after);
  const lines: string[] = [];
  for (const [verb, items] of [["add", after.filter((ip) => !had.has(ip))], ["delete", before.filter((ip) => !want.has(ip))]] as const) {
    for (const f of [4, 6] as const) {
      const ofFamily = items.filter((ip) => familyOfText(ip) === f);
      if (ofFamily.length) lines.push(`${verb} element inet ${NFT_TABLE} ${senderSet(f)} { ${ofFamily.join(", ")} }`);
    }
  }
  return lines.length ? `${lines.join("\n")}\n` : undefined;
}

const SENDER_ELEMENTS = /(set vxlan_senders_v[46] \{[^}]*?)\s*elements = \{([^}]*)\}/g;

/**
 * Pure: a listing of podnet's table as the table without the VXLAN senders' elements, and those elements,
 * sorted. A join changes only the elements, so the rest is compared with what podnet applied, and the
 * elements with the senders it wants, without listing the table again after every join.
 */
export function splitSenderElements(listing: string): { frame: string; senders: string[] } {
  const senders: string[] = [];
  const frame = listing.replace(SENDER_ELEMENTS, (_all, head: string, items: string) => {
    senders.push(...items.split(/[\s,]+/).filter(Boolean));
    return head;
  });
  return { frame, senders: senders.sort() };
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
  return (await listNftTableCounted(netns))?.listing;
}

/** The same, and the packets the VXLAN filter's two chains dropped since podnet last wrote the table. */
export async function listNftTableCounted(netns?: string): Promise<{ listing: string; vxlanDrops: { in: number; fromPods: number } } | undefined> {
  const r = await run("nft", ["list", "table", "inet", NFT_TABLE], { netns });
  if (r.code !== 0) return undefined;
  return { listing: r.stdout.replace(/counter packets \d+ bytes \d+/g, "counter"), vxlanDrops: { in: chainPackets(r.stdout, "vxlan_in"), fromPods: chainPackets(r.stdout, "vxlan_from_pods") } };
}

/** Pure: the packets counted by the rules of one chain in an `nft list` text. */
export function chainPackets(listing: string, chain: string): number {
  const body = new RegExp(`chain ${chain} \\{([^}]*)\\}`).exec(listing)?.[1] ?? "";
  return [...body.matchAll(/counter packets (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

/** Packets counted by the rules of one chain of podnet's table: masqueraded (postrouting), MSS-clamped (forward), VXLAN dropped (vxlan_*). */
export async function nftChainCount(netns?: string, chain: "postrouting" | "forward" | "vxlan_in" | "vxlan_from_pods" = "postrouting"): Promise<number> {
  const out = await runOk("nft", ["-j", "list", "chain", "inet", NFT_TABLE, chain], { netns });
  const items = (JSON.parse(out) as { nftables: Array<{ rule?: { expr: Array<{ counter?: { packets: number } }> } }> }).nftables;
  return items.flatMap((i) => i.rule?.expr ?? []).reduce((n, e) => n + (e.counter?.packets ?? 0), 0);
}

export async function removeNftTable(netns?: string): Promise<void> {
  const r = await run("nft", ["delete", "table", "inet", NFT_TABLE], { netns });
  if (r.code !== 0 && !/No such file|does not exist/i.test(r.stderr)) throw new Error(`nft delete table failed: ${r.stderr.trim()}`);
}
