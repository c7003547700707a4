import { describe, expect, it } from "vitest";
import {
  canonicalCidr, cidrContains, cidrContainsIp, cidrObjectName, cidrsOverlap, formatCidr, isCanonicalCidr, isGlobalUnicastIp, mergeCidrs, nthSubnet, parseCidr, parseIp,
  remembered, subnetCount, subnetIndex,
} from "./cidr.js";

describe("parseCidr / canonicalCidr", () => {
  it.each([
    ["10.244.1.0/24", "10.244.1.0/24"],
    ["0.0.0.0/0", "0.0.0.0/0"],
    ["10.1.2.3/32", "10.1.2.3/32"],
    ["FD00:10:244:1::/64", "fd00:10:244:1::/64"],
    ["fd00:10:244:1:0:0:0:0/64", "fd00:10:244:1::/64"],
    ["::/0", "::/0"],
    ["2001:db8::1/128", "2001:db8::1/128"],
  ])("%s → %s", (text, canonical) => expect(canonicalCidr(text)).toBe(canonical));

  it.each([
    ["10.244.1.5/24", "has host bits set; did you mean 10.244.1.0/24?"],
    ["fd00::1/64", "did you mean fd00::/64?"],
    ["010.1.1.0/24", "not an IP address"],
    ["10.1.1.0/33", "invalid prefix length"],
    ["fd00::/129", "invalid prefix length"],
    ["10.1.1.0", "missing /prefix"],
    ["banana/8", "not an IP address"],
    ["10.1.1.0/024", "invalid prefix length"],
  ])("rejects %s with a clear message", (text, message) => expect(() => parseCidr(text)).toThrow(message));

  it("masks host bits when asked", () => expect(formatCidr(parseCidr("10.244.1.5/24", { allowHostBits: true }))).toBe("10.244.1.0/24"));
  it("remembers results per text and per mode, never errors", () => {
    // Masking first: the strict parse of the same text must still refuse it, however often it is asked.
    expect(formatCidr(parseCidr("10.245.1.5/24", { allowHostBits: true }))).toBe("10.245.1.0/24");
    for (let i = 0; i < 2; i++) expect(() => parseCidr("10.245.1.5/24")).toThrow("has host bits set");
    for (let i = 0; i < 2; i++) expect(() => parseIp("10.245.1.256")).toThrow("not an IP address");
    expect(parseCidr("fd00:20::/64")).toBe(parseCidr("fd00:20::/64"));
    expect(parseIp(" 10.245.0.1")).toEqual({ family: 4, value: 0x0af50001n });
    expect(formatCidr(parseCidr("FD00:20:0::/64"))).toBe("fd00:20::/64");
    // A Cidr made by arithmetic, not parsed, is formatted from its own value.
    expect(formatCidr(nthSubnet(parseCidr("10.245.0.0/16"), 24, 7n))).toBe("10.245.7.0/24");
  });
  it("keeps a v4-mapped IPv6 address in family 6", () => expect(parseIp("::ffff:10.0.0.1").family).toBe(6));
  it("tells canonical spellings apart", () => {
    expect(isCanonicalCidr("fd00:10:244:1::/64")).toBe(true);
    expect(isCanonicalCidr("fd00:10:244:1:0:0:0:0/64")).toBe(false);
  });
});

describe("containment, overlap and subnets", () => {
  const c = (t: string) => parseCidr(t);
  it.each([
    ["10.244.0.0/16", "10.244.7.0/24", true],
    ["10.244.7.0/24", "10.244.0.0/16", false],
    ["0.0.0.0/0", "10.0.0.0/8", true],
    ["10.0.0.0/8", "fd00::/8", false],
    ["::/0", "fd00::/8", true],
  ])("%s contains %s: %s", (outer, inner, expected) => expect(cidrContains(c(outer), c(inner))).toBe(expected));

  it("never overlaps across families", () => expect(cidrsOverlap(c("0.0.0.0/0"), c("::/0"))).toBe(false));
  it("overlaps either way round", () => expect(cidrsOverlap(c("10.244.1.0/24"), c("10.244.0.0/23"))).toBe(true));
  it("contains an IP of its own family only", () => {
    expect(cidrContainsIp(c("10.244.1.0/24"), parseIp("10.244.1.9"))).toBe(true);
    expect(cidrContainsIp(c("::/0"), parseIp("10.244.1.9"))).toBe(false);
  });

  it("counts and indexes subnets (IPv6 counts beyond 2^53 stay exact)", () => {
    expect(subnetCount(c("10.244.0.0/16"), 24)).toBe(256n);
    expect(subnetCount(c("fd00:10:244::/48"), 64)).toBe(65536n);
    expect(subnetCount(c("::/0"), 64)).toBe(2n ** 64n);
    expect(formatCidr(nthSubnet(c("10.244.0.0/16"), 24, 0n))).toBe("10.244.0.0/24");
    expect(formatCidr(nthSubnet(c("10.244.0.0/16"), 24, 255n))).toBe("10.244.255.0/24");
    expect(() => nthSubnet(c("10.244.0.0/16"), 24, 256n)).toThrow("outside");
    expect(() => subnetCount(c("10.244.0.0/16"), 8)).toThrow("cannot be cut");
    const sub = nthSubnet(c("fd00:10:244::/48"), 64, 4242n);
    expect(subnetIndex(c("fd00:10:244::/48"), sub)).toBe(4242n);
  });

  it("names objects the way the CRD's CEL rule derives them", () => {
    expect(cidrObjectName("10.244.1.0/24")).toBe("10-244-1-0-24");
    expect(cidrObjectName("fd00:10:244:1::/64")).toBe("fd00-10-244-1---64");
  });
});

describe("isGlobalUnicastIp (the NodeCIDR schema's node-IP rule)", () => {
  it.each([
    ["192.168.1.10", true], ["10.0.0.1", true], ["8.8.8.8", true], ["fd00:73::11", true], ["2001:db8::1", true],
    ["0.0.0.0", false], ["255.255.255.255", false], ["127.0.0.1", false], ["169.254.3.3", false], ["224.0.0.1", false], ["239.1.2.3", false],
    ["::", false], ["::1", false], ["fe80::1", false], ["febf::1", false], ["ff02::1", false],
    ["not-an-ip", false], ["10.0.0.1/24", false], ["fe80::1%eth0", false],
    ["::ffff:192.168.78.14", false], ["::ffff:c0a8:4e0e", false], ["::fffe:c0a8:4e0e", true], ["64:ff9b::c0a8:4e0e", true],
  ])("%s → %s", (text, usable) => {
    expect(isGlobalUnicastIp(text)).toBe(usable);
  });
});

describe("mergeCidrs: the fewest CIDRs covering the same addresses", () => {
  const merged = (texts: string[]) => mergeCidrs(texts.map((t) => parseCidr(t))).map(formatCidr);
  it.each([
    ["nothing", [], []],
    ["one stays", ["10.244.0.0/16"], ["10.244.0.0/16"]],
    ["two halves join", ["10.0.1.0/24", "10.0.0.0/24"], ["10.0.0.0/23"]],
    ["four adjacent /24s join into a /22, in any order", ["10.0.3.0/24", "10.0.1.0/24", "10.0.0.0/24", "10.0.2.0/24"], ["10.0.0.0/22"]],
    ["adjacent but not one aligned CIDR: two", ["10.0.1.0/24", "10.0.2.0/24"], ["10.0.1.0/24", "10.0.2.0/24"]],
    ["three of four: a /23 and a /24", ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"], ["10.0.0.0/23", "10.0.2.0/24"]],
    ["a nested range is dropped, either order", ["10.244.7.0/24", "10.244.0.0/16", "10.244.0.0/24"], ["10.244.0.0/16"]],
    ["duplicates count once", ["10.0.0.0/24", "10.0.0.0/24"], ["10.0.0.0/24"]],
    ["a join that makes the wider half of a bigger join", ["10.0.0.0/23", "10.0.2.0/24", "10.0.3.0/24"], ["10.0.0.0/22"]],
    ["a range inside a join of two others is dropped", ["10.0.0.0/25", "10.0.0.128/25", "10.0.0.64/26"], ["10.0.0.0/24"]],
    ["families are never joined; IPv4 first", ["fd00:0:1::/48", "fd00::/48", "0.0.0.0/1", "128.0.0.0/1"], ["0.0.0.0/0", "fd00::/47"]],
    ["IPv6 halves of ::/0", ["::/1", "8000::/1"], ["::/0"]],
    ["disjoint ranges come out sorted by network", ["10.99.0.0/24", "10.244.0.0/16"], ["10.99.0.0/24", "10.244.0.0/16"]],
  ])("%s", (_what, input, expected) => expect(merged(input)).toEqual(expected));

  it("a pool made of 1,920 adjacent /24s is four CIDRs", () => {
    const ranges = Array.from({ length: 1920 }, (_, i) => `100.${64 + (i >> 8)}.${i & 255}.0/24`).reverse();
    expect(merged(ranges)).toEqual(["100.64.0.0/14", "100.68.0.0/15", "100.70.0.0/16", "100.71.0.0/17"]);
  });
});

describe("remembered: parse results kept in two generations", () => {
  it("computes a text once while it is asked for, and forgets one nobody asked for during a whole generation", () => {
    const computed: string[] = [];
    const lengthOf = remembered(4, (t: string) => { computed.push(t); return t.length; });
    const ask = (...texts: string[]) => texts.map(lengthOf);
    expect(ask("live", "a", "live", "b", "c")).toEqual([4, 1, 4, 1, 1]);
    // Departed nodes' texts, asked for once each, fill generations; "live" is asked for in every one of them.
    for (let i = 0; i < 40; i++) ask(`gone-${i}`, "live");
    expect(computed.filter((t) => t === "live")).toHaveLength(1);
    ask("a");
    expect(computed.filter((t) => t === "a")).toHaveLength(2); // fell out, parsed again
  });
});

describe("remembered: a generation sized by the texts in use", () => {
  it("keeps a live set larger than the smallest generation once it has grown, instead of parsing it again on every pass", () => {
    let computed = 0;
    const parse = remembered(4, (t: string) => { computed++; return t; });
    const live = Array.from({ length: 50 }, (_, i) => `10.244.${i}.0/24`);
    const pass = (extra: string) => { for (const t of live) parse(t); parse(extra); };
    for (let i = 0; i < 20; i++) pass(`gone-${i}`); // each pass also meets one departed node's text
    const before = computed;
    for (let i = 20; i < 30; i++) pass(`gone-${i}`);
    expect(computed - before).toBe(10); // only the new texts: the 50 live ones stay remembered
  });
});
