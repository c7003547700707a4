import { canonicalCidr } from "../lib/cidr.js";
import { run, runOk } from "./exec.js";

/**
 * A host firewall that drops forwarded traffic by default (Docker sets the iptables FORWARD policy to DROP,
 * ufw's DEFAULT_FORWARD_POLICY is DROP) drops every pod packet a node forwards, between nodes and, with
 * br_netfilter, between pods of one node. An accept in podnet's own nft table cannot help: a packet must pass
 * every base chain on the hook. So, as flannel does, podnet accepts the pod network in that firewall's own
 * FORWARD chain: in the iptables-nft chain (`ip filter FORWARD`, `ip6 filter FORWARD`), only while its
 * policy is drop, with rules iptables-nft lists as its own (`-s <range> -m comment --comment … -j ACCEPT`).
 * Appended, as flannel's are: kube-proxy's jumps (a Service without endpoints is rejected there), Docker's
 * DOCKER-USER and ufw's chains come first and still see pod traffic. The same for iptables-legacy:
 * forward-accept-legacy.ts.
 */
export const FORWARD_ACCEPT_COMMENT = "podnet: pod network";

type Direction = "saddr" | "daddr";
/** A rule's handle is nft's, or its position for iptables-legacy, which deletes by `spec`, the rule's text. */
export interface ForwardChain { policy?: string; rules: Array<{ handle: number; spec?: string; comment?: string; direction?: Direction; cidr?: string }> }
export interface ForwardAcceptPlan { add: Array<{ direction: Direction; cidr: string }>; deleteHandles: number[] }

interface JsonExpr { match?: { op?: string; left?: { payload?: { field?: string } }; right?: { prefix?: { addr: string; len: number } } | string } }
interface JsonItem { chain?: { policy?: string }; rule?: { handle: number; comment?: string; expr?: JsonExpr[] } }

/** nft could not list a FORWARD chain for a reason other than its absence: whether it drops is unknown. */
export class FirewallUnreadableError extends Error {
  override name = "FirewallUnreadableError";
}

/**
 * Another program (kube-proxy, Docker) held the xtables lock past podnet's wait: nothing was read or changed.
 * Passing, as a lock is: the pass is retried, and only a lock held pass after pass is reported.
 */
export class FirewallBusyError extends Error {
  override name = "FirewallBusyError";
  constructor(message: string, readonly reading: boolean) { super(message); }
}

/** Pure: `nft -j list chain <family> filter FORWARD` → its policy and rules (with the one address match podnet's rules have). */
export function parseForwardChain(json: string): ForwardChain {
  const items = (JSON.parse(json) as { nftables?: JsonItem[] }).nftables ?? [];
  const chain: ForwardChain = { rules: [] };
  for (const item of items) {
    if (item.chain) chain.policy = item.chain.policy;
    if (!item.rule) continue;
    const match = item.rule.expr?.find((e) => e.match)?.match;
    const field = match?.left?.payload?.field;
    const right = match?.right;
    const cidr = typeof right === "string" ? right : right?.prefix ? `${right.prefix.addr}/${right.prefix.len}` : undefined;
    chain.rules.push({
      handle: item.rule.handle,
      ...(item.rule.comment !== undefined ? { comment: item.rule.comment } : {}),
      ...(field === "saddr" || field === "daddr" ? { direction: field } : {}),
      ...(cidr !== undefined ? { cidr } : {}),
    });
  }
  return chain;
}

/**
 * Pure: with a drop policy, an accept from and one to each pod range of the chain's family, appended where
 * missing; any other podnet rule (a range gone, a policy back to accept) removed.
 */
export function planForwardAccepts(chain: ForwardChain, ranges: string[]): ForwardAcceptPlan {
  const wanted = chain.policy === "drop" ? ranges.map(canonicalCidr).flatMap((cidr) => (["saddr", "daddr"] as const).map((direction) => ({ direction, cidr }))) : [];
  const key = (r: { direction?: Direction; cidr?: string }) => `${r.direction}:${r.cidr === undefined ? "" : canonicalOrSelf(r.cidr)}`;
  const ours = chain.rules.filter((r) => r.comment === FORWARD_ACCEPT_COMMENT);
  // Rules an earlier podnet inserted at the top would sit above kube-proxy's and Docker's for good: when the chain
  // starts with one of podnet's and another rule follows, all of podnet's move to the end, in one transaction.
  // Tools that prepend push them down, tools that append land after them: either way this then holds.
  const onTop = chain.rules[0]?.comment === FORWARD_ACCEPT_COMMENT && chain.rules.some((r) => r.comment !== FORWARD_ACCEPT_COMMENT);
  if (onTop && wanted.length) return { add: wanted, deleteHandles: ours.map((r) => r.handle) };
  const have = new Set(ours.map(key));
  const want = new Set(wanted.map(key));
  return { add: wanted.filter((w) => !have.has(key(w))), deleteHandles: ours.filter((r) => !want.has(key(r))).map((r) => r.handle) };
}

function canonicalOrSelf(text: string): string {
  try { return canonicalCidr(text.includes("/") ? text : `${text}/${text.includes(":") ? 128 : 32}`); } catch { return text; }
}

/** Pure: the plan as one `nft -f` script for one family's chain. */
export function forwardAcceptScript(family: 4 | 6, plan: ForwardAcceptPlan): string {
  const table = family === 4 ? "ip filter" : "ip6 filter";
  const match = family === 4 ? "ip" : "ip6";
  return [
    ...plan.deleteHandles.map((h) => `delete rule ${table} FORWARD handle ${h}`),
    ...plan.add.map((r) => `add rule ${table} FORWARD ${match} ${r.direction} ${r.cidr} counter accept comment "${FORWARD_ACCEPT_COMMENT}"`),
    "",
  ].join("\n");
}

/** A firewall whose FORWARD chains podnet may have to open: iptables-nft here, iptables-legacy beside it. */
export interface FirewallBackend {
  name: string;
  /** The family's FORWARD chain, or undefined where this firewall has none; throws FirewallUnreadableError otherwise. */
  read(family: 4 | 6, netns?: string): Promise<ForwardChain | undefined>;
  apply(family: 4 | 6, chain: ForwardChain, plan: ForwardAcceptPlan, netns?: string): Promise<void>;
}

export const iptablesNft: FirewallBackend = {
  name: "iptables-nft",
  async read(family, netns) {
    // "No such file": no iptables-nft rules were ever made. Any other failure is thrown: a firewall podnet
    // cannot read may be dropping every pod packet.
    const r = await run("nft", ["-j", "list", "chain", family === 4 ? "ip" : "ip6", "filter", "FORWARD"], { netns });
    if (r.code !== 0 && /No such file or directory/.test(r.stderr)) return undefined;
    if (r.code !== 0) throw new FirewallUnreadableError(`nft list chain ${family === 4 ? "ip" : "ip6"} filter FORWARD failed: ${r.stderr.trim()}`);
    return parseForwardChain(r.stdout);
  },
  async apply(family, _chain, plan, netns) {
    await runOk("nft", ["-f", "-"], { netns, input: forwardAcceptScript(family, plan) });
  },
};
