import { Address6 } from "ip-address";

/** IPv4/IPv6 CIDR maths on BigInt. ip-address parses; it accepts host bits and cannot iterate subnets. */
export type IpFamily = 4 | 6;
export interface Cidr { readonly family: IpFamily; readonly network: bigint; readonly prefix: number }
export interface IpAddr { readonly family: IpFamily; readonly value: bigint }

export class InvalidCidrError extends Error {
  override name = "InvalidCidrError";
}

const bits = (family: IpFamily) => (family === 4 ? 32 : 128);
// Precomputed: masks are needed for every parse and containment test, and building one takes five BigInts.
const masks = { 4: [] as bigint[], 6: [] as bigint[] };
for (const family of [4, 6] as const) {
  for (let prefix = 0; prefix <= bits(family); prefix++) masks[family].push(((1n << BigInt(bits(family))) - 1n) ^ ((1n << BigInt(bits(family) - prefix)) - 1n));
}
const mask = (family: IpFamily, prefix: number) => masks[family][prefix]!;

/**
 * Every agent re-derives its desired state from all NodeCIDRs on each sync (and reads back as many kernel
 * routes), so the same few thousand addresses and CIDRs are parsed and printed over and over: ip-address's
 * IPv6 path (strings → hex → BigInt), and for IPv4 a regex and BigInts, each pass. Results are immutable
 * values, so they are remembered, in two generations: a text nobody asked for during a whole generation is
 * dropped, so the caches hold what the passes keep asking for (the live records' texts) and not, as one map
 * of 65,536 cleared only when full did, every address and CIDR of every node that ever left (a leak review: up
 * to 53 MB). A generation that ends having mostly parsed (more texts computed than found) is too small for
 * the texts in use, and each pass would parse them all again: the next one is twice as large. So a cache
 * holds about two to four times the texts in use, whatever the cluster's size.
 */
export function remembered<V>(minGeneration: number, compute: (key: string) => V): (key: string) => V {
  let young = new Map<string, V>();
  let old = new Map<string, V>();
  let generation = minGeneration;
  let found = 0;
  let computed = 0;
  return (key) => {
    let value = young.get(key);
    if (value !== undefined) { found++; return value; }
    value = old.get(key);
    if (value !== undefined) found++;
    else { value = compute(key); computed++; }
    if (young.size >= generation) {
      if (computed > found && generation < MAX_GENERATION) generation *= 2;
      found = computed = 0;
      old = young;
      young = new Map();
    }
    young.set(ownCopy(key), value);
    return value;
  };
}
const MAX_GENERATION = 1 << 20;

/**
 * A text cut from a longer one (a line of an `ip monitor` chunk) shares that chunk's memory in V8: kept as a key,
 * it kept the whole chunk alive (up to 64 KB in a burst). A copy holds only its own characters.
 */
const ownCopy = (text: string): string => Buffer.from(text, "utf8").toString("utf8");

const REMEMBERED = 4_096;
const parseIpv6 = (t: string): bigint => {
  if (!Address6.isValid(t) || t.includes("/") || t.includes("%")) throw new InvalidCidrError(`"${t}" is not an IP address`);
  return new Address6(t).bigInt();
};
const formatIpv6 = remembered(REMEMBERED, (hex: string): string => Address6.fromBigInt(BigInt(`0x${hex}`)).correctForm());

export const parseIp = remembered(REMEMBERED, parseIpText);

function parseIpText(text: string): IpAddr {
  const t = text.trim();
  if (t.includes(":")) return { family: 6, value: parseIpv6(t) };
  // Leading zeros are ambiguous (octal in some parsers): reject them like Go's netip does.
  const octets = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(t)?.slice(1);
  if (!octets || octets.some((o) => (o.length > 1 && o.startsWith("0")) || Number(o) > 255)) {
    throw new InvalidCidrError(`"${text}" is not an IP address`);
  }
  return { family: 4, value: BigInt(octets.reduce((n, o) => n * 256 + Number(o), 0)) };
}

/**
 * Pure: would the NodeCIDR schema take `text` as a node IP? It asks for an IP that is global unicast as Go
 * defines it (CEL's ip().isGlobalUnicast()): not unspecified, loopback, link-local, multicast or broadcast;
 * and Kubernetes' isIP() refuses IPv4-mapped IPv6 (::ffff:a.b.c.d) outright.
 */
export function isGlobalUnicastIp(text: string): boolean {
  let ip: IpAddr;
  try { ip = parseIp(text); } catch { return false; }
  const v = ip.value;
  if (ip.family === 4) return v !== 0n && v !== 0xffffffffn && v >> 24n !== 127n && v >> 16n !== 0xa9fen && v >> 28n !== 0xen;
  return v !== 0n && v !== 1n && v >> 118n !== 0x3fan && v >> 120n !== 0xffn && v >> 32n !== 0xffffn;
}

// Ranges a pod network cannot use: the kernel treats these addresses specially (or, for ::/8, IPv6 reserves
// them: unspecified, loopback, IPv4-mapped); a slice starting at :: would also have no valid object name.
const SPECIAL_PURPOSE: { text: string; what: string }[] = [
  { text: "0.0.0.0/8", what: "\"this network\"" }, { text: "127.0.0.0/8", what: "loopback" },
  { text: "169.254.0.0/16", what: "link-local" }, { text: "224.0.0.0/4", what: "multicast" },
  { text: "255.255.255.255/32", what: "broadcast" },
  { text: "::/8", what: "reserved (unspecified, loopback, IPv4-mapped)" }, { text: "fe80::/10", what: "link-local" },
  { text: "ff00::/8", what: "multicast" },
];

/** The special-purpose ranges per family, for rules written elsewhere (the NodeCIDR schema's CEL). */
export const specialPurposeRanges = (family: IpFamily): string[] => SPECIAL_PURPOSE.map((r) => r.text).filter((t) => familyOfText(t) === family);

/** The longest prefix a node's pod CIDR may have: its bridge takes one address, and its pods need more. */
export const maxNodeCidrPrefix = (family: IpFamily) => (family === 4 ? 30 : 126);

/** Pure: the special-purpose range `cidr` overlaps, as "127.0.0.0/8 (loopback)", or undefined. */
export function specialPurposeOverlap(cidr: Cidr): string | undefined {
  const hit = SPECIAL_PURPOSE.find((r) => cidrsOverlap(parseCidr(r.text), cidr));
  return hit && `${hit.text} (${hit.what})`;
}

/** An address in its one canonical spelling (IPv6 has many), or undefined for text that is not one. */
export function canonicalIp(text: string): string | undefined {
  try { return canonicalIpOf(text); } catch { return undefined; }
}
// Remembered: the controller canonicalises every Node's addresses on each plan.
const canonicalIpOf = remembered(REMEMBERED, (text: string) => formatIp(parseIp(text)));

export function formatIp(ip: IpAddr): string {
  if (ip.family === 6) return formatIpv6(ip.value.toString(16));
  const n = Number(ip.value);
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

const parseCidrStrict = remembered(REMEMBERED, (text: string) => parseCidrText(text, false));
const parseCidrMasking = remembered(REMEMBERED, (text: string) => parseCidrText(text, true));

export function parseCidr(text: string, opts: { allowHostBits?: boolean } = {}): Cidr {
  return opts.allowHostBits ? parseCidrMasking(text) : parseCidrStrict(text);
}

/** A canonical-or-not CIDR without host bits, or undefined for anything else. */
export function tryParseCidr(text: string): Cidr | undefined {
  try { return parseCidrStrict(text); } catch { return undefined; }
}

function parseCidrText(text: string, allowHostBits: boolean): Cidr {
  const slash = text.indexOf("/");
  if (slash < 0) throw new InvalidCidrError(`"${text}" is not a CIDR: missing /prefix`);
  const ip = parseIpText(text.slice(0, slash));
  const prefixText = text.slice(slash + 1).trim();
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > bits(ip.family) || (prefixText.length > 1 && prefixText.startsWith("0"))) {
    throw new InvalidCidrError(`"${text}" has an invalid prefix length (IPv${ip.family} allows 0-${bits(ip.family)})`);
  }
  const network = ip.value & mask(ip.family, prefix);
  if (network !== ip.value && !allowHostBits) {
    const suggestion = formatCidr({ family: ip.family, network, prefix });
    throw new InvalidCidrError(`${text} has host bits set; did you mean ${suggestion}?`);
  }
  return { family: ip.family, network, prefix };
}

// Keyed by object: parseCidr hands out the same Cidr for the same text, so a pass formats only what is new.
const formatted = new WeakMap<Cidr, string>();
export function formatCidr(c: Cidr): string {
  let text = formatted.get(c);
  if (text === undefined) {
    text = `${formatIp({ family: c.family, value: c.network })}/${c.prefix}`;
    formatted.set(c, text);
  }
  return text;
}
/** The highest address inside a CIDR. */
export const cidrLast = (c: Cidr): bigint => c.network + (1n << BigInt(bits(c.family) - c.prefix)) - 1n;
export const canonicalCidr = (text: string) => formatCidr(parseCidr(text));

/** The canonical spelling of a CIDR, or the text as written when it is none (for the caller to report). */
export const canonicalCidrOrText = remembered(REMEMBERED, (text: string) => { try { return canonicalCidr(text); } catch { return text; } });

export function isCanonicalCidr(text: string): boolean {
  try { return canonicalCidr(text) === text; } catch { return false; }
}

export const cidrContainsIp = (c: Cidr, ip: IpAddr) => c.family === ip.family && (ip.value & mask(c.family, c.prefix)) === c.network;

export const cidrContains = (outer: Cidr, inner: Cidr) =>
  outer.family === inner.family && outer.prefix <= inner.prefix && (inner.network & mask(outer.family, outer.prefix)) === outer.network;

export const cidrsOverlap = (a: Cidr, b: Cidr) => cidrContains(a, b) || cidrContains(b, a);

/** IPv4 before IPv6, then by network, the wider of two CIDRs at one network first. */
export const compareCidrs = (a: Cidr, b: Cidr): number =>
  a.family - b.family || (a.network < b.network ? -1 : a.network > b.network ? 1 : a.prefix - b.prefix);

/**
 * Pure: the fewest CIDRs that cover exactly the addresses of `cidrs`, sorted by compareCidrs: nested ones
 * dropped, two halves of one CIDR joined into it, again and again (four adjacent /24s → one /22). Adjacent
 * ranges that do not make up one aligned CIDR (10.0.1.0/24 and 10.0.2.0/24) stay two.
 */
export function mergeCidrs(cidrs: readonly Cidr[]): Cidr[] {
  const out: Cidr[] = [];
  for (const c of [...cidrs].sort(compareCidrs)) {
    const top = out.at(-1);
    if (top && cidrContains(top, c)) continue;
    let merged = c;
    for (let below = out.at(-1); below && siblings(below, merged); below = out.at(-1)) {
      out.pop();
      merged = { family: merged.family, network: below.network, prefix: merged.prefix - 1 };
    }
    out.push(merged);
  }
  return out;
}

/** The two halves of one CIDR, `a` the lower. */
const siblings = (a: Cidr, b: Cidr) =>
  a.family === b.family && a.prefix === b.prefix && a.prefix > 0 && (a.network & mask(a.family, a.prefix - 1)) === a.network
  && b.network === a.network + (1n << BigInt(bits(a.family) - a.prefix));

function checkSubnetPrefix(range: Cidr, prefix: number): void {
  if (!Number.isInteger(prefix) || prefix < range.prefix || prefix > bits(range.family)) {
    throw new InvalidCidrError(`a /${prefix} subnet cannot be cut from ${formatCidr(range)}`);
  }
}

export function subnetCount(range: Cidr, prefix: number): bigint {
  checkSubnetPrefix(range, prefix);
  return 1n << BigInt(prefix - range.prefix);
}

export function nthSubnet(range: Cidr, prefix: number, n: bigint): Cidr {
  const count = subnetCount(range, prefix);
  if (n < 0n || n >= count) throw new InvalidCidrError(`subnet #${n} is outside ${formatCidr(range)} (${count} /${prefix} subnets)`);
  return { family: range.family, network: range.network + (n << BigInt(bits(range.family) - prefix)), prefix };
}

export function subnetIndex(range: Cidr, sub: Cidr): bigint {
  if (!cidrContains(range, sub)) throw new InvalidCidrError(`${formatCidr(sub)} is not inside ${formatCidr(range)}`);
  return (sub.network - range.network) >> BigInt(bits(range.family) - sub.prefix);
}

/** Object name for a CIDR: what the CRD's CEL rule derives, '.', ':' and '/' each replaced by '-'. */
export function cidrObjectName(c: Cidr | string): string {
  const text = typeof c === "string" ? canonicalCidr(c) : formatCidr(c);
  return text.replace(/[.:/]/g, "-");
}

export const familyName = (f: IpFamily): "IPv4" | "IPv6" => (f === 4 ? "IPv4" : "IPv6");
/** The family an address or CIDR is written in, without parsing it (spec.podCIDRs entries may be malformed). */
export const familyOfText = (text: string): IpFamily => (text.includes(":") ? 6 : 4);
