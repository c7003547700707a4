import { describe, expect, it } from "vitest";
import { CidrIndex, DisjointCidrs, overlapsAfter } from "./cidr-index.js";
import { cidrsOverlap, formatCidr, parseCidr, parseIp, type Cidr } from "./cidr.js";

const c = (t: string) => parseCidr(t);
const indexOf = (texts: string[]) => new CidrIndex(texts.map((t) => ({ cidr: c(t), value: t })));
/** The pairs as text, "a ~ b" with a before b in the input. */
const pairsOf = (texts: string[]) => overlapsAfter(texts.map(c)).flatMap((later, i) => later.map((j) => `${texts[i]} ~ ${texts[j]}`));

describe("overlapsAfter: every overlapping pair from one sweep", () => {
  it.each([
    ["nested", ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"], ["10.0.0.0/8 ~ 10.1.0.0/16", "10.0.0.0/8 ~ 10.1.2.0/24", "10.1.0.0/16 ~ 10.1.2.0/24"]],
    ["nested, narrowest listed first", ["10.1.2.0/24", "10.1.0.0/16", "10.0.0.0/8"], ["10.1.2.0/24 ~ 10.1.0.0/16", "10.1.2.0/24 ~ 10.0.0.0/8", "10.1.0.0/16 ~ 10.0.0.0/8"]],
    ["identical, three times", ["10.0.0.0/16", "10.0.0.0/16", "10.0.0.0/16"], ["10.0.0.0/16 ~ 10.0.0.0/16", "10.0.0.0/16 ~ 10.0.0.0/16", "10.0.0.0/16 ~ 10.0.0.0/16"]],
    ["adjacent: none", ["10.0.1.0/24", "10.0.0.0/24", "10.0.2.0/23"], []],
    ["one range holding two disjoint ones", ["10.0.0.0/24", "10.0.0.0/16", "10.0.255.0/24"], ["10.0.0.0/24 ~ 10.0.0.0/16", "10.0.0.0/16 ~ 10.0.255.0/24"]],
    ["a range closed before the next one opens", ["10.0.0.0/16", "10.0.0.0/24", "10.1.0.0/24"], ["10.0.0.0/16 ~ 10.0.0.0/24"]],
    // ::a00:0/104 is 10.0.0.0/8's number as IPv6: same bits, other family, no overlap.
    ["IPv4 and IPv6 of the same numbers", ["10.0.0.0/8", "::a00:0/104", "::a00:0/112", "10.0.0.0/16"], ["10.0.0.0/8 ~ 10.0.0.0/16", "::a00:0/104 ~ ::a00:0/112"]],
    ["the whole space", ["0.0.0.0/0", "255.255.255.255/32", "::/0", "ffff::/16"], ["0.0.0.0/0 ~ 255.255.255.255/32", "::/0 ~ ffff::/16"]],
  ])("%s", (_case, texts, pairs) => {
    expect(pairsOf(texts)).toEqual(pairs);
  });

  it("finds what comparing every pair finds, in the same order (seeded random ranges)", () => {
    let seed = 7;
    const rand = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return Math.floor((seed / 2 ** 31) * n); }; // high bits: the low ones cycle
    for (let round = 0; round < 200; round++) {
      const cidrs: Cidr[] = Array.from({ length: 1 + rand(30) }, () => {
        const prefix = 12 + rand(13);
        const six = rand(3) === 0;
        const network = BigInt(rand(64)) << BigInt((six ? 128 : 32) - prefix);
        return { family: six ? (6 as const) : (4 as const), network: network & ((1n << BigInt(six ? 128 : 32)) - 1n), prefix };
      }).map((x) => parseCidr(formatCidr(x), { allowHostBits: true }));
      const expected: Array<[number, number]> = [];
      for (let i = 0; i < cidrs.length; i++) for (let j = i + 1; j < cidrs.length; j++) if (cidrsOverlap(cidrs[i]!, cidrs[j]!)) expected.push([i, j]);
      expect(overlapsAfter(cidrs).flatMap((later, i) => later.map((j) => [i, j]))).toEqual(expected);
    }
  });
});

describe("CidrIndex: which entries overlap a CIDR or hold an address", () => {
  const disjoint = indexOf(["10.0.4.0/22", "10.0.0.0/24", "10.0.1.0/24", "10.1.0.0/16", "fd00::/48", "fd00:1::/48"]);

  it.each([
    ["a slice inside one range", "10.0.5.0/24", ["10.0.4.0/22"]],
    ["a range's own CIDR", "10.0.1.0/24", ["10.0.1.0/24"]],
    ["one wider than several ranges", "10.0.0.0/21", ["10.0.0.0/24", "10.0.1.0/24", "10.0.4.0/22"]],
    ["the gap between adjacent ranges", "10.0.2.0/23", []],
    ["past the last range", "10.2.0.0/16", []],
    ["before the first range", "9.0.0.0/8", []],
    ["IPv6 inside", "fd00:1:0:2::/64", ["fd00:1::/48"]],
    ["IPv6 with IPv4's numbers", "::a00:0/104", []],
  ])("%s", (_case, query, expected) => {
    expect(disjoint.overlapping(c(query))).toEqual(expected);
    expect(disjoint.overlapsAny(c(query))).toBe(expected.length > 0);
  });

  it("finds the one range holding an address, in its family only", () => {
    expect(disjoint.holding(parseIp("10.0.7.255"))).toEqual(["10.0.4.0/22"]);
    expect(disjoint.holding(parseIp("10.0.3.1"))).toEqual([]);
    expect(disjoint.holding(parseIp("fd00::1"))).toEqual(["fd00::/48"]);
    expect(disjoint.holding(parseIp("::a00:1"))).toEqual([]);
  });

  it("finds entries that nest or repeat: a wide one listed long before, identical ones", () => {
    const nested = indexOf(["10.0.0.0/8", "10.0.0.0/24", "10.0.0.0/24", "10.5.0.0/16", "10.200.0.0/16", "11.0.0.0/8"]);
    expect(nested.overlapping(c("10.200.1.0/24"))).toEqual(["10.0.0.0/8", "10.200.0.0/16"]);
    expect(nested.overlapping(c("10.0.0.0/24"))).toEqual(["10.0.0.0/8", "10.0.0.0/24", "10.0.0.0/24"]);
    expect(nested.overlapsAny(c("10.99.0.0/16"))).toBe(true); // only the /8 reaches it, from far back
    expect(nested.overlapsAny(c("12.0.0.0/8"))).toBe(false);
    expect(new CidrIndex([]).overlapsAny(c("0.0.0.0/0"))).toBe(false);
  });
});

describe("DisjointCidrs: does a CIDR overlap any of those kept so far?", () => {
  it("answers as a comparison with each would, for CIDRs of every size added in any order", () => {
    const kept = ["10.0.4.0/23", "10.0.0.128/25", "10.0.2.0/24", "10.1.0.0/16", "fd00::/64"].map((t) => parseCidr(t));
    const set = new DisjointCidrs();
    for (const c of kept) set.add(c);
    for (const t of ["10.0.0.0/25", "10.0.0.0/24", "10.0.1.0/24", "10.0.3.255/32", "10.0.5.7/32", "10.0.0.0/8", "10.1.255.0/24", "10.2.0.0/24", "fd00::1/128", "fd01::/64", "0.0.0.0/0"]) {
      const c = parseCidr(t, { allowHostBits: true });
      expect([t, set.overlapsAny(c)]).toEqual([t, kept.some((k) => cidrsOverlap(k, c))]);
    }
  });

  it("answers right when adds and questions alternate (sorted again after adds out of order)", () => {
    const set = new DisjointCidrs();
    set.add(parseCidr("10.0.8.0/24"));
    expect(set.overlapsAny(parseCidr("10.0.2.0/24"))).toBe(false);
    set.add(parseCidr("10.0.2.0/24"));
    set.add(parseCidr("10.0.9.0/24"));
    expect(["10.0.2.0/25", "10.0.8.0/23", "10.0.3.0/24", "10.0.10.0/24"].map((t) => set.overlapsAny(parseCidr(t)))).toEqual([true, true, false, false]);
  });
});
