import { describe, expect, it } from "vitest";
import { cidrsOverlap, formatCidr, parseCidr, parseIp, tryParseCidr, type Cidr, type IpFamily } from "../lib/cidr.js";
import { MAX_CONDITION_MESSAGE, nextCondition } from "../lib/conditions.js";
import { buildPoolStates, findSet, overlappingSets, type PlannerPool, type PoolClaim } from "./plan-pools.js";
import type { PoolStates } from "./pool-states.js";

const SERVICES = ["10.96.0.0/12"];
const v4 = (name: string, cidrs: string[], nodeSelector: Record<string, string> = {}): PlannerPool => ({ name, nodeSelector, v4: { cidrs, nodePrefix: 24 } });
const dual = (name: string, cidrs4: string[], cidrs6: string[]): PlannerPool => ({ name, nodeSelector: {}, v4: { cidrs: cidrs4, nodePrefix: 24 }, v6: { cidrs: cidrs6, nodePrefix: 64 } });
const claim = (pool: string, cidr: string): PoolClaim => ({ pool, cidr });
const grown: PlannerPool = { name: "grow", nodeSelector: {}, v4: { cidrs: ["10.120.0.0/25", "10.120.0.0/24"], nodePrefix: 26 } };

/** Per pool and family: the ranges it serves and the problems it reports. */
function outcome(states: Map<string, { families: Partial<Record<IpFamily, { sets: Array<{ range: Cidr }>; problems: string[] }>> }>) {
  return Object.fromEntries([...states].map(([name, s]) => [name, Object.fromEntries(([4, 6] as const).flatMap((f) => {
    const fam = s.families[f];
    return fam ? [[`v${f}`, { serves: fam.sets.map((x) => formatCidr(x.range)), problems: fam.problems }]] : [];
  }))]));
}

describe("buildPoolStates: overlapping ranges (found by one sweep, their use read from the claims once)", () => {
  it.each([
    ["nested ranges, neither in use: both refused", [v4("a", ["10.0.0.0/16"]), v4("b", ["10.0.1.0/24"])], [],
      { a: { v4: { serves: [], problems: ["10.0.0.0/16 overlaps 10.0.1.0/24 of pool b"] } }, b: { v4: { serves: [], problems: ["10.0.1.0/24 overlaps 10.0.0.0/16 of pool a"] } } }],
    ["nested ranges, the inner one in use: it keeps serving", [v4("a", ["10.0.0.0/16"]), v4("b", ["10.0.1.0/24"])], [claim("b", "10.0.1.0/24")],
      { a: { v4: { serves: [], problems: ["10.0.0.0/16 overlaps 10.0.1.0/24 of pool b, which has nodes allocated from it"] } }, b: { v4: { serves: ["10.0.1.0/24"], problems: [] } } }],
    ["identical ranges, one in use: it keeps serving", [v4("a", ["10.0.0.0/16"]), v4("b", ["10.0.0.0/16"])], [claim("b", "10.0.7.0/24")],
      { a: { v4: { serves: [], problems: ["10.0.0.0/16 overlaps 10.0.0.0/16 of pool b, which has nodes allocated from it"] } }, b: { v4: { serves: ["10.0.0.0/16"], problems: [] } } }],
    ["identical ranges, both in use: both refused", [v4("a", ["10.0.0.0/16"]), v4("b", ["10.0.0.0/16"])], [claim("a", "10.0.1.0/24"), claim("b", "10.0.2.0/24")],
      { a: { v4: { serves: [], problems: ["10.0.0.0/16 overlaps 10.0.0.0/16 of pool b"] } }, b: { v4: { serves: [], problems: ["10.0.0.0/16 overlaps 10.0.0.0/16 of pool a"] } } }],
    ["a range listed twice in one pool: served once", [v4("a", ["10.0.0.0/16", "10.0.0.0/16"])], [claim("a", "10.0.0.0/24")],
      { a: { v4: { serves: ["10.0.0.0/16"], problems: [] } } }],
    ["a pool grown by appending a superset of its range: the wider serves, once", [grown],
      [claim("grow", "10.120.0.0/26"), claim("grow", "10.120.0.64/26")],
      { grow: { v4: { serves: ["10.120.0.0/24"], problems: [] } } }],
    ["a pool's nested ranges, listed wide first, with a third apart: the wide and the apart one serve", [v4("a", ["10.0.0.0/16", "10.0.4.0/22", "10.1.0.0/24", "10.0.5.0/24"])], [],
      { a: { v4: { serves: ["10.0.0.0/16", "10.1.0.0/24"], problems: [] } } }],
    ["a pool's wider range over another pool's in use: refused, its narrower one serves", [v4("a", ["10.0.0.0/24", "10.0.0.0/16"]), v4("b", ["10.0.9.0/24"])], [claim("a", "10.0.0.0/24"), claim("b", "10.0.9.0/24")],
      { a: { v4: { serves: ["10.0.0.0/24"], problems: ["10.0.0.0/16 overlaps 10.0.9.0/24 of pool b"] } }, b: { v4: { serves: [], problems: ["10.0.9.0/24 overlaps 10.0.0.0/16 of pool a"] } } }],
    ["a pool's wider range over the service CIDR: refused, its narrower one serves", [v4("a", ["10.0.0.0/24", "10.0.0.0/8"])], [claim("a", "10.0.0.0/24")],
      { a: { v4: { serves: ["10.0.0.0/24"], problems: ["10.0.0.0/8 overlaps the service CIDR 10.96.0.0/12"] } } }],
    ["adjacent ranges: no overlap", [v4("a", ["10.0.0.0/24", "10.0.2.0/23"]), v4("b", ["10.0.1.0/24"])], [],
      { a: { v4: { serves: ["10.0.0.0/24", "10.0.2.0/23"], problems: [] } }, b: { v4: { serves: ["10.0.1.0/24"], problems: [] } } }],
    ["a claim of a deleted pool counts, less than the pool's own", [v4("a", ["10.0.0.0/16"]), v4("b", ["10.0.0.0/17"]), v4("c", ["10.1.0.0/16"]), v4("d", ["10.1.0.0/16"])],
      [claim("gone", "10.0.3.0/24"), claim("gone", "10.1.0.0/24"), claim("d", "10.1.9.0/24")],
      { a: { v4: { serves: [], problems: ["10.0.0.0/16 overlaps 10.0.0.0/17 of pool b"] } }, b: { v4: { serves: [], problems: ["10.0.0.0/17 overlaps 10.0.0.0/16 of pool a"] } },
        c: { v4: { serves: [], problems: ["10.1.0.0/16 overlaps 10.1.0.0/16 of pool d, which has nodes allocated from it"] } }, d: { v4: { serves: ["10.1.0.0/16"], problems: [] } } }],
    ["another existing pool's claim counts for nothing", [v4("a", ["10.0.0.0/16"]), v4("b", ["10.0.0.0/16"]), v4("c", ["10.9.0.0/16"])], [claim("c", "10.0.0.0/24")],
      { a: { v4: { serves: [], problems: ["10.0.0.0/16 overlaps 10.0.0.0/16 of pool b"] } }, b: { v4: { serves: [], problems: ["10.0.0.0/16 overlaps 10.0.0.0/16 of pool a"] } }, c: { v4: { serves: ["10.9.0.0/16"], problems: [] } } }],
    ["IPv4 and IPv6 each on their own: an IPv4 overlap refuses no IPv6 range", [dual("a", ["10.0.0.0/16"], ["fd00::/48"]), dual("b", ["10.0.0.0/16"], ["fd00:1::/48"])], [claim("a", "fd00::/64")],
      { a: { v4: { serves: [], problems: ["10.0.0.0/16 overlaps 10.0.0.0/16 of pool b"] }, v6: { serves: ["fd00::/48"], problems: [] } },
        b: { v4: { serves: [], problems: ["10.0.0.0/16 overlaps 10.0.0.0/16 of pool a"] }, v6: { serves: ["fd00:1::/48"], problems: [] } } }],
    ["a range in use over the service CIDR is refused all the same", [v4("a", ["10.96.0.0/16", "10.0.0.0/16"]), v4("b", ["10.96.0.0/16"])], [claim("a", "10.96.0.0/24")],
      { a: { v4: { serves: ["10.0.0.0/16"], problems: ["10.96.0.0/16 overlaps the service CIDR 10.96.0.0/12"] } },
        b: { v4: { serves: [], problems: ["10.96.0.0/16 overlaps 10.96.0.0/16 of pool a, which has nodes allocated from it", "10.96.0.0/16 overlaps the service CIDR 10.96.0.0/12"] } } }],
  ] as const)("%s", (_case, pools, claims, expected) => {
    expect(outcome(buildPoolStates([...pools], SERVICES, [...claims]))).toEqual(expected);
  });

  it("reports a pool's problems in the order comparing every pair gave: invalid ranges first, then pair by pair (pools by name, ranges as listed)", () => {
    const pools = [v4("b", ["10.0.0.0/16", "10.0.0.1/24", "10.0.1.0/24"]), v4("a", ["10.0.1.0/24", "10.0.0.0/8"]), v4("c", ["10.0.0.0/16"])];
    expect(outcome(buildPoolStates(pools, SERVICES))).toEqual({
      a: { v4: { serves: [], problems: ["10.0.1.0/24 overlaps 10.0.0.0/16 of pool b", "10.0.1.0/24 overlaps 10.0.1.0/24 of pool b",
        "10.0.1.0/24 overlaps 10.0.0.0/16 of pool c", "10.0.0.0/8 overlaps 10.0.0.0/16 of pool b", "10.0.0.0/8 overlaps 10.0.1.0/24 of pool b", "10.0.0.0/8 overlaps 10.0.0.0/16 of pool c",
        "10.0.0.0/8 overlaps the service CIDR 10.96.0.0/12"] } },
      b: { v4: { serves: [], problems: ["10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24?", "10.0.0.0/16 overlaps 10.0.1.0/24 of pool a", "10.0.1.0/24 overlaps 10.0.1.0/24 of pool a",
        "10.0.0.0/16 overlaps 10.0.0.0/8 of pool a", "10.0.1.0/24 overlaps 10.0.0.0/8 of pool a", "10.0.0.0/16 overlaps 10.0.0.0/16 of pool c",
        "10.0.1.0/24 overlaps 10.0.0.0/16 of pool c"] } },
      c: { v4: { serves: [], problems: ["10.0.0.0/16 overlaps 10.0.1.0/24 of pool a", "10.0.0.0/16 overlaps 10.0.0.0/8 of pool a", "10.0.0.0/16 overlaps 10.0.0.0/16 of pool b",
        "10.0.0.0/16 overlaps 10.0.1.0/24 of pool b"] } },
    });
  });

  it("decides and reports as comparing every pair with every claim did (seeded random pools, ranges and claims)", () => {
    let seed = 11;
    const rand = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return Math.floor((seed / 2 ** 31) * n); }; // high bits: the low ones cycle
    const range4 = () => { const prefix = 12 + rand(11); return formatCidr(parseCidr(`10.${64 + rand(64)}.${rand(256)}.0/${prefix}`, { allowHostBits: true })); };
    const range6 = () => { const prefix = 40 + rand(17); return formatCidr(parseCidr(`fd00:0:${rand(2)}${rand(4)}00::/${prefix}`, { allowHostBits: true })); };
    for (let round = 0; round < 300; round++) {
      const names = Array.from({ length: 1 + rand(6) }, (_, i) => `p${i}`);
      const pools = names.map((name): PlannerPool => ({ name, nodeSelector: {},
        ...(rand(4) ? { v4: { cidrs: Array.from({ length: rand(4) }, range4), nodePrefix: 24 } } : {}),
        ...(rand(3) ? {} : { v6: { cidrs: Array.from({ length: rand(3) }, range6), nodePrefix: 64 } }) }));
      const claims = Array.from({ length: rand(12) }, () => {
        const pool = rand(4) ? names[rand(names.length)]! : `gone${rand(2)}`;
        const cidr = rand(5) ? formatCidr(parseCidr(`10.${64 + rand(64)}.${rand(256)}.0/${rand(3) ? 24 : 14 + rand(10)}`, { allowHostBits: true })) : rand(2) ? formatCidr(parseCidr(`fd00:0:${rand(2)}${rand(4)}00::/64`)) : "junk";
        return claim(pool, cidr);
      });
      expect(outcome(buildPoolStates(pools, SERVICES, claims))).toEqual(outcome(pairwiseReference(pools, SERVICES, claims)));
    }
  });

  it("writes the Valid message it wrote before when a pool's overlaps fill more than a condition holds (48-60 pools naming the same 16 ranges)", () => {
    const ranges = Array.from({ length: 16 }, (_, k) => `10.${128 + k}.0.0/16`);
    const written = (problems: string[]) => nextCondition(undefined, { type: "Valid", status: "False", reason: "InvalidRanges", message: problems.join("; ") }, 1, new Date(0)).message;
    // Pool counts and name lengths vary where the limit falls within a problem's text, or between two.
    for (const [count, prefix] of [[48, "c"], [51, "copy-"], [55, "pool-copy-"], [60, "copy-"]] as const) {
      const pools = Array.from({ length: count }, (_, p) => v4(`${prefix}${String(p).padStart(2, "0")}`, ranges));
      const claims = [claim(`${prefix}07`, "10.128.0.0/24")];
      const now = buildPoolStates(pools, SERVICES, claims);
      const before = pairwiseReference(pools, SERVICES, claims);
      for (const p of pools) {
        const all = before.get(p.name)!.families[4]!.problems;
        expect(all.join("; ").length).toBeGreaterThan(MAX_CONDITION_MESSAGE); // the case at hand: past what a condition holds
        expect(written(now.get(p.name)!.families[4]!.problems)).toBe(written(all));
        expect(now.get(p.name)!.families[4]!.problems.length).toBeLessThan(all.length);
      }
      expect(outcome(now)[`${prefix}07`]!.v4!.serves).toEqual(["10.128.0.0/16"]);
    }
  });

  it("keeps a message of exactly what a condition holds whole, and cuts it as before with one overlap more", () => {
    // Pool a's problems: "10.128.0.0/16 overlaps 10.128.0.0/16 of pool <name>", 45 characters and a name of 179,
    // "; " between them: 145 of them make 145 × 224 + 144 × 2 = 32,768 characters.
    const others = (n: number) => Array.from({ length: n }, (_, k) => v4(`b${"x".repeat(175)}${String(k).padStart(3, "0")}`, ["10.128.0.0/16"]));
    const written = (problems: string[]) => nextCondition(undefined, { type: "Valid", status: "False", reason: "InvalidRanges", message: problems.join("; ") }, 1, new Date(0)).message;
    for (const n of [145, 146]) {
      const pools = [v4("a", ["10.128.0.0/16"]), ...others(n)];
      const all = pairwiseReference(pools, SERVICES, []).get("a")!.families[4]!.problems;
      expect(all.join("; ").length).toBe(n === 145 ? MAX_CONDITION_MESSAGE : MAX_CONDITION_MESSAGE + 226);
      expect(written(buildPoolStates(pools, SERVICES).get("a")!.families[4]!.problems)).toBe(written(all));
    }
  });
});

describe("pool lookups by address and by label", () => {
  const states = buildPoolStates([
    v4("a", ["10.0.0.0/16", "10.2.0.0/16"]), v4("b", ["10.1.0.0/16"], { rack: "b" }), dual("c", ["10.3.0.0/24"], ["fd00::/48"]),
    v4("d", ["10.4.0.0/16"], { rack: "b", zone: "z1" }), v4("e", ["10.5.0.0/16"], { zone: "z1" }),
  ], SERVICES);

  it.each([
    ["a slice of one range", "10.2.3.0/24", "a", ["10.2.0.0/16"]],
    ["a slice of another pool's range", "10.1.3.0/24", "b", ["10.1.0.0/16"]],
    ["wider than a slice: no slice of any pool, but it overlaps", "10.0.0.0/23", undefined, ["10.0.0.0/16"]],
    ["wider than two ranges", "10.0.0.0/14", undefined, ["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/24"]],
    ["between ranges", "10.9.0.0/24", undefined, []],
    ["an IPv6 slice", "fd00:0:0:5::/64", "c", ["fd00::/48"]],
  ])("%s", (_case, text, pool, overlapping) => {
    const cidr = parseCidr(text);
    expect(findSet(states, cidr)?.state.pool.name).toBe(pool);
    expect(overlappingSets(states, cidr).map((s) => formatCidr(s.range))).toEqual(overlapping);
    expect(findSet(states, cidr, states.get("a"))?.state.pool.name).toBe(pool === "a" ? "a" : undefined);
  });

  it("finds the range holding an address in its family only", () => {
    expect(states.ranges.holding(parseIp("10.3.0.9")).map((r) => r.state.pool.name)).toEqual(["c"]);
    expect(states.ranges.holding(parseIp("fd00::9")).map((r) => r.state.pool.name)).toEqual(["c"]);
    expect(states.ranges.holding(parseIp("10.3.1.9"))).toEqual([]);
  });

  it.each([
    [{}, "a"],
    [{ rack: "b" }, "b"],
    [{ rack: "b", zone: "z1" }, "b"], // both b and d select it: ties go by name
    [{ zone: "z1" }, "e"],
    [{ zone: "z1", rack: "x" }, "e"],
    [{ rack: "c" }, "a"],
  ])("selects for labels %j pool %s: one with a selector beats the catch-all, ties by name", (labels, expected) => {
    expect(states.selectPool(labels)?.pool.name).toBe(expected);
  });

  it("selects as walking every pool did (seeded random selectors and labels)", () => {
    let seed = 3;
    const rand = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return Math.floor((seed / 2 ** 31) * n); }; // high bits: the low ones cycle
    const labelsOf = () => Object.fromEntries(Array.from({ length: rand(3) }, () => [`k${rand(3)}`, `v${rand(2)}`]));
    for (let round = 0; round < 200; round++) {
      const pools = Array.from({ length: 1 + rand(8) }, (_, i) => v4(`p${rand(20)}-${i}`, [], labelsOf()));
      const random = buildPoolStates(pools, SERVICES);
      for (let n = 0; n < 10; n++) {
        const labels = labelsOf();
        expect(random.selectPool(labels)).toBe(selectByWalking(labels, random));
      }
    }
  });
});

/** What selectPool did before the label index: every pool asked in name order. */
function selectByWalking(labels: Record<string, string>, states: PoolStates) {
  let best: ReturnType<PoolStates["selectPool"]>;
  for (const state of states.values()) {
    const selector = Object.entries(state.pool.nodeSelector);
    if (!selector.every(([k, v]) => labels[k] === v)) continue;
    if (!best || (selector.length > 0 && Object.keys(best.pool.nodeSelector).length === 0)) best = state;
  }
  return best;
}

/**
 * buildPoolStates as it was before the sweep (for valid ranges: the random ones are): every pair of ranges
 * compared, and each pair's use read by scanning every claim. The reference the sweep must agree with.
 */
function pairwiseReference(pools: PlannerPool[], serviceCIDRs: string[], claims: PoolClaim[]) {
  type Candidate = { pool: string; family: IpFamily; cidr: Cidr };
  const services = serviceCIDRs.map((s) => parseCidr(s));
  const names = new Set(pools.map((p) => p.name));
  const overlapsRange = (k: PoolClaim, c: Candidate) => { const kc = tryParseCidr(k.cidr); return kc !== undefined && cidrsOverlap(kc, c.cidr); };
  const use = (c: Candidate) => (claims.some((k) => k.pool === c.pool && overlapsRange(k, c)) ? 2 : claims.some((k) => !names.has(k.pool) && overlapsRange(k, c)) ? 1 : 0);
  const states = new Map<string, { families: Partial<Record<IpFamily, { sets: Array<{ range: Cidr }>; problems: string[] }>> }>();
  const candidates: Candidate[] = [];
  for (const pool of [...pools].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    states.set(pool.name, { families: {} });
    for (const family of [4, 6] as const) {
      const spec = family === 4 ? pool.v4 : pool.v6;
      if (!spec) continue;
      states.get(pool.name)!.families[family] = { sets: [], problems: [] };
      for (const text of spec.cidrs) candidates.push({ pool: pool.name, family, cidr: parseCidr(text) });
    }
  }
  const rejected = new Set<Candidate>();
  const problems = (c: Candidate) => states.get(c.pool)!.families[c.family]!.problems;
  for (const [i, a] of candidates.entries()) {
    for (const b of candidates.slice(i + 1)) {
      if (a.family !== b.family || a.pool === b.pool || !cidrsOverlap(a.cidr, b.cidr)) continue;
      const keepA = use(a) > use(b);
      const keepB = use(b) > use(a);
      const say = (loser: Candidate, winner: Candidate, kept: boolean) => problems(loser).push(`${formatCidr(loser.cidr)} overlaps ${formatCidr(winner.cidr)} of pool ${winner.pool}${kept ? ", which has nodes allocated from it" : ""}`);
      if (!keepA) { rejected.add(a); say(a, b, keepB); }
      if (!keepB) { rejected.add(b); if (a.pool !== b.pool) say(b, a, keepA); }
    }
    const service = services.find((s) => cidrsOverlap(s, a.cidr));
    if (service) { rejected.add(a); problems(a).push(`${formatCidr(a.cidr)} overlaps the service CIDR ${formatCidr(service)}`); }
  }
  // Of a pool family's ranges left that nest, the widest serves (the first listed of equal ones).
  const kept = candidates.filter((c) => !rejected.has(c));
  const nestedIn = (c: Candidate, k: number) => kept.some((o, m) => m !== k && o.pool === c.pool && o.family === c.family
    && cidrsOverlap(o.cidr, c.cidr) && (o.cidr.prefix < c.cidr.prefix || (o.cidr.prefix === c.cidr.prefix && m < k)));
  for (const [k, c] of kept.entries()) if (!nestedIn(c, k)) states.get(c.pool)!.families[c.family]!.sets.push({ range: c.cidr });
  return states;
}
