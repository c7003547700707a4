import { familyName, parseCidr } from "../lib/cidr.js";
import { dropsByDefault, FirewallUnreadableError, nftJson, parseForwardChain } from "./forward-accept.js";
import { NFT_TABLE } from "./masquerade.js";
import { fatesIn, parseNftTable, type NftTable, type PodPacket } from "./nft-forward-path.js";

/**
 * Another program's nft table with a base chain on the forward hook that drops by default (firewalld's
 * `inet firewalld`: filter_FORWARD ends in a reject) drops pod traffic whatever podnet accepts elsewhere: a
 * packet must be accepted by every base chain on the hook, and podnet does not write into another program's
 * table. Such a chain is judged instead, for what it does to pod packets (nft-forward-path.ts): one dropped on
 * every way the ruleset allows is reported as dropped (the node is not ready); one that depends on what podnet
 * cannot tell (firewalld with only podnet0 in its trusted zone: what arrives from other nodes depends on the
 * uplink's zone) only as "may drop". Chains that accept by default are not judged: kube-proxy's, libvirt's
 * and netavark's reject only what they mean to.
 */
export interface ForwardHookChain { family: "ip" | "ip6" | "inet"; table: string; chain: string }
/** dropped / mayDrop: the pod packets (as `podPackets` names them) the chain drops on every way / on some; ranges: the pod ranges judged. */
export interface ForeignForwardDrop extends ForwardHookChain {
  dropped: string[]; mayDrop: string[]; ranges: string[];
  /** nft's listing of it failed or made no sense: all its pod packets may be dropped, none surely is. */
  unreadable?: string;
}

interface JsonChain { family?: string; table?: string; name?: string; hook?: string }

/** Pure: `nft -j list chains` → the base chains on the forward hook, but iptables-nft's FORWARD (podnet accepts there) and podnet's own. */
export function foreignForwardHookChains(json: string): ForwardHookChain[] {
  const items = (JSON.parse(json) as { nftables?: Array<{ chain?: JsonChain }> }).nftables ?? [];
  return items.flatMap(({ chain: c }) => {
    if (c?.hook !== "forward" || (c.family !== "ip" && c.family !== "ip6" && c.family !== "inet") || !c.table || !c.name) return [];
    const iptablesNft = c.family !== "inet" && c.table === "filter" && c.name === "FORWARD";
    if (iptablesNft || (c.family === "inet" && c.table === NFT_TABLE)) return [];
    return [{ family: c.family, table: c.table, chain: c.name }];
  });
}

/** Pure: the pod packets a node forwards, per pod range: between its pods, out to other nodes, in from them. */
export function podPackets(ranges: string[]): Array<{ name: string; packet: PodPacket }> {
  return ranges.flatMap((text) => {
    const range = parseCidr(text);
    const family = familyName(range.family);
    const packet = (iif: PodPacket["iif"], oif: PodPacket["oif"]): PodPacket => ({ family: range.family, iif, oif, saddr: range, daddr: range });
    return [
      { name: `${family} between pods of this node`, packet: packet("bridge", "bridge") },
      { name: `${family} from this node's pods to other nodes`, packet: packet("bridge", "other") },
      { name: `${family} from other nodes to this node's pods`, packet: packet("other", "bridge") },
    ];
  });
}

/** Pure: the chain's verdict on the pod packets of its family, or undefined where it lets all of them through. */
export function judgeForwardChain(hook: ForwardHookChain, table: NftTable, ranges: string[]): ForeignForwardDrop | undefined {
  const dropped = new Set<string>();
  const mayDrop = new Set<string>();
  const judged = ranges.filter((r) => familyFits(hook.family, r));
  for (const { name, packet } of podPackets(judged)) {
    const fates = fatesIn(table, hook.chain, packet);
    if (fates.has("drop")) (fates.has("accept") ? mayDrop : dropped).add(name);
  }
  return dropped.size || mayDrop.size ? { ...hook, dropped: [...dropped], mayDrop: [...mayDrop].filter((n) => !dropped.has(n)), ranges: judged } : undefined;
}

/** The chain's name as nft spells it: `inet firewalld` chain `filter_FORWARD`. */
export const chainName = (c: ForwardHookChain) => `nft table ${c.family} ${c.table}, chain ${c.chain}`;

const familyFits = (family: ForwardHookChain["family"], range: string) => family === "inet" || (parseCidr(range).family === 4) === (family === "ip");

/** Shell: every other table's forward-hook chain that drops by default, judged; nft's own failure is FirewallUnreadableError. */
export async function findForeignForwardDrops(podNetwork: string[], netns?: string): Promise<ForeignForwardDrop[]> {
  if (!podNetwork.length) return [];
  const chains = await nftJson(["list", "chains"], netns);
  const found: ForeignForwardDrop[] = [];
  for (const hook of chains === undefined ? [] : readable("chains", () => foreignForwardHookChains(chains))) {
    const ranges = podNetwork.filter((r) => familyFits(hook.family, r));
    if (!ranges.length) continue;
    try {
      // The chain alone first: kube-proxy's nftables table, listed whole, holds every Service.
      const chain = await nftJson(["list", "chain", hook.family, hook.table, hook.chain], netns);
      if (chain === undefined || !readable(chainName(hook), () => dropsByDefault(parseForwardChain(chain)))) continue;
      const table = await nftJson(["list", "table", hook.family, hook.table], netns);
      const judged = table === undefined ? undefined : readable(chainName(hook), () => judgeForwardChain(hook, parseNftTable(table), ranges));
      if (judged) found.push(judged);
    } catch (err) {
      // Another program's table podnet cannot read (an nft older than the one that wrote it) may drop pod traffic;
      // it does not make a node whose own firewall podnet handled not ready.
      if (!(err instanceof FirewallUnreadableError)) throw err;
      found.push({ ...hook, dropped: [], mayDrop: podPackets(ranges).map((p) => p.name), ranges, unreadable: err.message });
    }
  }
  return found;
}

/** A listing podnet cannot make sense of says nothing about what it drops: unreadable, not "nothing there". */
function readable<T>(what: string, read: () => T): T {
  try { return read(); } catch (err) { throw new FirewallUnreadableError(`could not read nft's listing of ${what}: ${err instanceof Error ? err.message : String(err)}`); }
}
