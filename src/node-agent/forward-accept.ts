import { canonicalCidr } from "../lib/cidr.js";
import { run, runOk } from "./exec.js";

/**
 * A host firewall that drops forwarded traffic by default (Docker sets the iptables FORWARD policy to DROP,
 * ufw's DEFAULT_FORWARD_POLICY is DROP; RHEL's iptables-services keeps policy ACCEPT and ends the chain with
 * `-j REJECT`) drops every pod packet a node forwards, between nodes and, with br_netfilter, between pods of
 * one node. An accept in podnet's own nft table cannot help: a packet must pass every base chain on the hook.
 * So, as flannel does, podnet accepts the pod network in that firewall's own FORWARD chain: in the iptables-nft
 * chain (`ip filter FORWARD`, `ip6 filter FORWARD`), only while it drops by default, with rules iptables-nft
 * lists as its own (`-s <range> -m comment --comment … -j ACCEPT`). Appended, as flannel's are: kube-proxy's
 * jumps (a Service without endpoints is rejected there), Docker's DOCKER-USER and ufw's chains come first and
 * still see pod traffic. Where a final rule drops everything, they go right in front of it instead: after it
 * nothing is reached. The same for iptables-legacy: forward-accept-legacy.ts. Other tables' chains on the
 * forward hook (firewalld's) are only judged: foreign-forward.ts.
 */
export const FORWARD_ACCEPT_COMMENT = "podnet: pod network";

type Direction = "saddr" | "daddr";
/**
 * A rule's handle is nft's, or its position for iptables-legacy, which deletes by `spec`, the rule's text.
 * dropsAll: the rule drops or rejects every packet that reaches it (no match but a comment).
 */
export interface ForwardRule { handle: number; spec?: string; comment?: string; direction?: Direction; cidr?: string; dropsAll?: boolean }
export interface ForwardChain { policy?: string; rules: ForwardRule[] }
/** before: the handle of the final drop rule the accepts go in front of; without it they are appended. */
export interface ForwardAcceptPlan { add: Array<{ direction: Direction; cidr: string }>; deleteHandles: number[]; before?: number }

interface JsonExpr { match?: { op?: string; left?: { payload?: { field?: string } }; right?: { prefix?: { addr: string; len: number } } | string };
  xt?: { type?: string; name?: string }; counter?: unknown; drop?: unknown; reject?: unknown }
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
      ...(dropsEverything(item.rule.expr ?? []) ? { dropsAll: true } : {}),
    });
  }
  return chain;
}

/** `-j REJECT`/`-j DROP` with nothing but a counter and `-m comment` (an xt match to iptables-nft) before it. */
function dropsEverything(expr: JsonExpr[]): boolean {
  const last = expr.at(-1);
  const verdict = last !== undefined && ("drop" in last || "reject" in last || (last.xt?.type === "target" && (last.xt.name === "REJECT" || last.xt.name === "DROP")));
  return verdict && expr.slice(0, -1).every((e) => "counter" in e || (e.xt?.type === "match" && e.xt.name === "comment"));
}

/**
 * Pure: the rule that ends the chain for everything, or undefined: the first of another's rules that drops
 * every packet (RHEL's `-A FORWARD -j REJECT`). Rules after it are never reached.
 */
export function finalDropRule(chain: ForwardChain): ForwardRule | undefined {
  return chain.rules.find((r) => r.dropsAll && r.comment !== FORWARD_ACCEPT_COMMENT);
}

/** Pure: the chain drops what none of its rules accepts, by its policy or by a final rule. */
export const dropsByDefault = (chain: ForwardChain): boolean => chain.policy === "drop" || finalDropRule(chain) !== undefined;

/** Pure: the ranges, and those podnet's accepts in the chain name: planned with these, no accept of podnet's goes. */
export function acceptedRanges(chain: ForwardChain, ranges: string[]): string[] {
  const accepted = chain.rules.flatMap((r) => (r.comment === FORWARD_ACCEPT_COMMENT && r.cidr !== undefined ? [canonicalOrSelf(r.cidr)] : []));
  return [...new Set([...ranges.map(canonicalOrSelf), ...accepted])];
}

/**
 * Pure: while the chain drops by default, an accept from and one to each pod range of the chain's family,
 * appended where missing, or put in front of a final drop rule; any other podnet rule (a range gone, a chain
 * that accepts again) removed.
 */
export function planForwardAccepts(chain: ForwardChain, ranges: string[]): ForwardAcceptPlan {
  const finalDrop = finalDropRule(chain);
  const wanted = dropsByDefault(chain) ? ranges.map(canonicalCidr).flatMap((cidr) => (["saddr", "daddr"] as const).map((direction) => ({ direction, cidr }))) : [];
  const key = (r: { direction?: Direction; cidr?: string }) => `${r.direction}:${r.cidr === undefined ? "" : canonicalOrSelf(r.cidr)}`;
  const isOurs = (r: ForwardRule) => r.comment === FORWARD_ACCEPT_COMMENT;
  const ours = chain.rules.filter(isOurs);
  const before = finalDrop ? { before: finalDrop.handle } : {};
  if (wanted.length && misplaced(chain, isOurs, finalDrop)) return { add: wanted, deleteHandles: ours.map((r) => r.handle), ...before };
  const have = new Set(ours.map(key));
  const want = new Set(wanted.map(key));
  const add = wanted.filter((w) => !have.has(key(w)));
  return { add, deleteHandles: ours.filter((r) => !want.has(key(r))).map((r) => r.handle), ...(add.length ? before : {}) };
}

/**
 * Podnet's rules that must move, all of them in one transaction. Without a final drop rule: at the top above
 * another's rule, where an earlier podnet inserted them (they would sit above kube-proxy's and Docker's for
 * good); tools that prepend push them down, tools that append land after them, so once moved this holds.
 * With one: anywhere but right in front of it. After it they are never reached; higher up, a rule another
 * tool put between them and it would be passed by (iptables-legacy inserts by position: a rule prepended while
 * podnet changed the chain leaves them one too high, and the next pass moves them).
 */
function misplaced(chain: ForwardChain, isOurs: (r: ForwardRule) => boolean, finalDrop: ForwardRule | undefined): boolean {
  if (!finalDrop) return chain.rules[0] !== undefined && isOurs(chain.rules[0]) && chain.rules.some((r) => !isOurs(r));
  const end = chain.rules.indexOf(finalDrop);
  const start = chain.rules.findLastIndex((r, i) => i < end && !isOurs(r)) + 1;
  return chain.rules.some((r, i) => isOurs(r) && (i < start || i > end));
}

function canonicalOrSelf(text: string): string {
  try { return canonicalCidr(text.includes("/") ? text : `${text}/${text.includes(":") ? 128 : 32}`); } catch { return text; }
}

/**
 * Pure: the plan as one `nft -f` script for one family's chain. Each insert goes right in front of the final
 * drop rule, so they keep their order; one that is gone by then fails the whole transaction.
 */
export function forwardAcceptScript(family: 4 | 6, plan: ForwardAcceptPlan): string {
  const table = family === 4 ? "ip filter" : "ip6 filter";
  const match = family === 4 ? "ip" : "ip6";
  const verb = plan.before === undefined ? "add rule" : "insert rule";
  const where = plan.before === undefined ? "" : ` position ${plan.before}`;
  return [
    ...plan.deleteHandles.map((h) => `delete rule ${table} FORWARD handle ${h}`),
    ...plan.add.map((r) => `${verb} ${table} FORWARD${where} ${match} ${r.direction} ${r.cidr} counter accept comment "${FORWARD_ACCEPT_COMMENT}"`),
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

/** `nft -j <args>`'s output; undefined for a table or chain that is not there; any other failure is FirewallUnreadableError. */
export async function nftJson(args: string[], netns?: string): Promise<string | undefined> {
  const r = await run("nft", ["-j", ...args], { netns });
  if (r.code !== 0 && /No such file or directory/.test(r.stderr)) return undefined;
  if (r.code !== 0) throw new FirewallUnreadableError(`nft ${args.join(" ")} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

export const iptablesNft: FirewallBackend = {
  name: "iptables-nft",
  async read(family, netns) {
    // "No such file": no iptables-nft rules were ever made. Any other failure is thrown: a firewall podnet
    // cannot read may be dropping every pod packet.
    const json = await nftJson(["list", "chain", family === 4 ? "ip" : "ip6", "filter", "FORWARD"], netns);
    return json === undefined ? undefined : parseForwardChain(json);
  },
  async apply(family, _chain, plan, netns) {
    await runOk("nft", ["-f", "-"], { netns, input: forwardAcceptScript(family, plan) });
  },
};
