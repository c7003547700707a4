import { cidrContains, cidrsOverlap, tryParseCidr, type Cidr } from "../lib/cidr.js";
import { BRIDGE_NAME } from "./cni-conflist.js";

/**
 * Pure: where a forwarded pod packet ends in another program's nft table (firewalld's `inet firewalld`), as far
 * as the ruleset tells. podnet knows a pod packet's family, that its addresses lie in a pod range, whether it
 * enters or leaves through the pod bridge, and that it is a connection's first (ct state new, no NAT). A match
 * on anything else (ports, marks, another interface's name) may go either way: both ways are followed, so the
 * answer is the set of fates the packet may meet. Only a drop on every way is certain.
 */
export interface PodPacket { family: 4 | 6; iif: "bridge" | "other"; oif: "bridge" | "other"; saddr: Cidr; daddr: Cidr }
export type Fate = "accept" | "drop";

type Truth = "yes" | "no" | "unknown";
type Json = Record<string, unknown>;
export interface NftTable { chains: Map<string, { policy?: string; base: boolean; rules: Json[][] }>; sets: Map<string, unknown[]> }

/** Pure: `nft -j list table <family> <name>` → its chains (base or not, policy, rules' expressions) and named sets' elements. */
export function parseNftTable(json: string): NftTable {
  const table: NftTable = { chains: new Map(), sets: new Map() };
  const items = (JSON.parse(json) as { nftables?: Json[] }).nftables ?? [];
  for (const item of items) {
    const chain = item.chain as { name: string; policy?: string; hook?: string } | undefined;
    if (chain) table.chains.set(chain.name, { base: chain.hook !== undefined, rules: [], ...(chain.policy ? { policy: chain.policy } : {}) });
    const set = (item.set ?? item.map) as { name: string; elem?: unknown[] } | undefined;
    if (set) table.sets.set(set.name, set.elem ?? []);
  }
  for (const item of items) {
    const rule = item.rule as { chain: string; expr?: Json[] } | undefined;
    if (rule) table.chains.get(rule.chain)?.rules.push(rule.expr ?? []);
  }
  return table;
}

/** Pure: the fates a packet may meet in a base chain of the table (its policy where it falls through). */
export function fatesIn(table: NftTable, baseChain: string, packet: PodPacket): Set<Fate> {
  const policy: Fate = table.chains.get(baseChain)?.policy === "drop" ? "drop" : "accept";
  const { fates, returns } = runChain(table, baseChain, packet, 0, new Map());
  return returns ? new Set([...fates, policy]) : fates;
}

// nft refuses chain loops; the cap only guards a listing podnet misreads.
const MAX_DEPTH = 16;
const ANYTHING: Fate[] = ["accept", "drop"];
interface ChainResult { fates: Set<Fate>; returns: boolean }

/**
 * A chain's fates, and whether the packet may come back out of it (a return, or the end of a regular chain).
 * Kept per chain (`seen`): firewalld's dispatch jumps to the same zone chains from many rules.
 */
function runChain(table: NftTable, name: string, packet: PodPacket, depth: number, seen: Map<string, ChainResult>): ChainResult {
  const known = seen.get(name);
  if (known) return known;
  const chain = table.chains.get(name);
  if (!chain || depth > MAX_DEPTH) return { fates: new Set(ANYTHING), returns: true };
  const fates = new Set<Fate>();
  let result: ChainResult = { fates, returns: true };
  let returns = false;
  for (const expr of chain.rules) {
    const rule = ruleOf(expr, table, packet);
    if (rule.truth === "no" || !rule.verdict) continue;
    const v = rule.verdict;
    const sub = v.chain === undefined ? undefined : runChain(table, v.chain, packet, depth + 1, seen);
    for (const f of sub?.fates ?? v.fates) fates.add(f);
    // After a jump the rule's chain goes on; a goto's chain returns for this one.
    const goesOn = v.kind === "jump" ? sub!.returns : v.kind === "unknown";
    if (v.kind === "return" || (v.kind === "goto" && sub!.returns)) returns = true;
    if (rule.truth === "yes" && !goesOn) { result = { fates, returns }; break; }
  }
  seen.set(name, result);
  return result;
}

interface Verdict { kind: "final" | "return" | "jump" | "goto" | "unknown"; fates: Fate[]; chain?: string }

/** A rule's matches, all of them (yes only if each is), and its verdict if it has one. */
function ruleOf(expr: Json[], table: NftTable, packet: PodPacket): { truth: Truth; verdict?: Verdict } {
  const truths: Truth[] = [];
  for (const e of expr) {
    const verdict = verdictOf(e);
    if (verdict) return { truth: all(truths), verdict };
    truths.push(statementTruth(e, table, packet));
  }
  return { truth: all(truths) };
}

const all = (truths: Truth[]): Truth => (truths.includes("no") ? "no" : truths.includes("unknown") ? "unknown" : "yes");

const IGNORED_STATEMENTS = ["counter", "log", "mangle", "notrack", "set", "flow"];
// iptables-nft's targets that let the packet go on.
const PASSING_TARGETS = ["LOG", "NFLOG", "MARK", "CONNMARK", "TCPMSS", "CT", "NOTRACK", "CLASSIFY", "DSCP", "TOS", "TTL", "HL"];

function verdictOf(e: Json): Verdict | undefined {
  if ("accept" in e) return { kind: "final", fates: ["accept"] };
  if ("drop" in e || "reject" in e) return { kind: "final", fates: ["drop"] };
  if ("return" in e) return { kind: "return", fates: [] };
  const target = (e.jump ?? e.goto) as { target?: string } | undefined;
  if (target?.target !== undefined) return { kind: "jump" in e ? "jump" : "goto", fates: [], chain: target.target };
  const xt = e.xt as { type?: string; name?: string } | undefined;
  if (xt?.type === "target") {
    if (xt.name === "ACCEPT") return { kind: "final", fates: ["accept"] };
    if (xt.name === "DROP" || xt.name === "REJECT") return { kind: "final", fates: ["drop"] };
    if (PASSING_TARGETS.includes(xt.name ?? "")) return undefined;
    return { kind: "unknown", fates: ANYTHING };
  }
  // A verdict map, a queue, NAT: its outcome depends on what podnet does not know.
  if (["vmap", "queue", "continue", "snat", "dnat", "masquerade", "redirect", "synproxy"].some((k) => k in e)) return { kind: "unknown", fates: ANYTHING };
  return undefined;
}

function statementTruth(e: Json, table: NftTable, packet: PodPacket): Truth {
  if (IGNORED_STATEMENTS.some((k) => k in e)) return "yes";
  const xt = e.xt as { type?: string; name?: string } | undefined;
  if (xt) return xt.type === "match" && xt.name === "comment" ? "yes" : "unknown";
  const match = e.match as { op?: string; left?: Json; right?: unknown } | undefined;
  if (!match?.left) return "unknown";
  const payload = match.left.payload as { protocol?: string; field?: string } | undefined;
  // nft gives an `ip saddr` match in an inet table the dependency "IPv4 only", negated or not.
  const payloadFamily = payload?.protocol === "ip" ? 4 : payload?.protocol === "ip6" ? 6 : undefined;
  if (payloadFamily !== undefined && payloadFamily !== packet.family) return "no";
  const values = valuesOf(match.right, table);
  if (!values) return "unknown";
  const t = truthOf(match.left, values, packet);
  if (match.op === "==" || match.op === "in") return t;
  if (match.op === "!=") return t === "yes" ? "no" : t === "no" ? "yes" : "unknown";
  return "unknown";
}

/** A match's right side as a list of values; a named set by its elements; undefined where podnet cannot read it. */
function valuesOf(right: unknown, table: NftTable): unknown[] | undefined {
  if (typeof right === "string" && right.startsWith("@")) return table.sets.get(right.slice(1));
  if (Array.isArray(right)) return right;
  const set = (right as Json | null)?.set;
  if (Array.isArray(set)) return set;
  return right === undefined || right === null ? undefined : [right];
}

function truthOf(left: Json, values: unknown[], packet: PodPacket): Truth {
  const meta = (left.meta as { key?: string } | undefined)?.key;
  const ct = (left.ct as { key?: string } | undefined)?.key;
  const field = (left.payload as { field?: string } | undefined)?.field;
  if (meta === "iifname" || meta === "oifname") return any(values, (v) => nameTruth(v, meta === "iifname" ? packet.iif : packet.oif));
  if (meta === "nfproto" || meta === "protocol") return any(values, (v) => (typeof v !== "string" ? "unknown" : v === `ip${packet.family === 4 ? "v4" : "v6"}` || v === (packet.family === 4 ? "ip" : "ip6") ? "yes" : "no"));
  if (field === "saddr" || field === "daddr") return any(values, (v) => addressTruth(v, field === "saddr" ? packet.saddr : packet.daddr));
  // A connection's first packet: state new, and none of the status bits a reply or NAT sets.
  if (ct === "state") return any(values, (v) => (typeof v !== "string" ? "unknown" : v === "new" ? "yes" : "no"));
  if (ct === "status") return any(values, (v) => (typeof v === "string" && ["dnat", "snat", "seen-reply", "assured", "confirmed", "expected"].includes(v) ? "no" : "unknown"));
  return "unknown";
}

function any(values: unknown[], test: (v: unknown) => Truth): Truth {
  const truths = values.map(test);
  return truths.includes("yes") ? "yes" : truths.every((t) => t === "no") ? "no" : "unknown";
}

/** An interface name or `prefix*` pattern against the bridge, or another interface whose name podnet does not know. */
function nameTruth(v: unknown, iface: "bridge" | "other"): Truth {
  if (typeof v !== "string") return "unknown";
  const matchesBridge = v.endsWith("*") && !v.endsWith("\\*") ? BRIDGE_NAME.startsWith(v.slice(0, -1)) : v === BRIDGE_NAME;
  if (iface === "bridge") return matchesBridge ? "yes" : "no";
  // Another interface is no loopback, and not the bridge by its own name; a pattern may match it.
  return v === "lo" || v === BRIDGE_NAME ? "no" : "unknown";
}

/** An address, prefix or range against the pod range a packet's address lies in somewhere. */
function addressTruth(v: unknown, range: Cidr): Truth {
  const prefix = (v as { prefix?: { addr?: string; len?: number } } | null)?.prefix;
  const text = typeof v === "string" ? v : prefix ? `${prefix.addr}/${prefix.len}` : undefined;
  const cidr = text === undefined ? undefined : tryParseCidr(text.includes("/") ? text : `${text}/${text.includes(":") ? 128 : 32}`);
  if (!cidr) return "unknown";
  return cidrContains(cidr, range) ? "yes" : cidrsOverlap(cidr, range) ? "unknown" : "no";
}
