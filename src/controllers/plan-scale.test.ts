import { describe, expect, it, vi } from "vitest";
import { formatCidr, nthSubnet, parseCidr } from "../lib/cidr.js";
import { planAllocations, type PlannerNode, type PlannerPool, type PlannerRecord } from "./plan.js";
import { input } from "./plan-fixtures.js";

// How much work a plan does as pools and their ranges grow, counted (not timed: the machine is shared): how
// often records are read, CIDRs compared, pool selectors asked. bench/plan-pools.bench.ts gives the times.
const counts = vi.hoisted(() => ({ comparisons: 0 }));
vi.mock("../lib/cidr.js", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../lib/cidr.js")>();
  const counted = <A extends unknown[], R>(f: (...args: A) => R) => (...args: A) => { counts.comparisons++; return f(...args); };
  return { ...actual, cidrsOverlap: counted(actual.cidrsOverlap), cidrContains: counted(actual.cidrContains), cidrContainsIp: counted(actual.cidrContainsIp) };
});

const slice = (range: string, prefix: number, i: number) => formatCidr(nthSubnet(parseCidr(range), prefix, BigInt(i)));
const nodeAt = (i: number, labels: Record<string, string> = {}): PlannerNode =>
  ({ name: `n${String(i).padStart(5, "0")}`, uid: `u${i}`, labels, podCIDRs: [], nodeIPs: [`172.16.${i >> 8}.${(i & 255) + 1}`, `fd99::${(i + 1).toString(16)}`], deleting: false });
const recordOf = (n: PlannerNode, cidr: string, pool: string): PlannerRecord =>
  ({ name: cidr.replace(/[.:/]/g, "-"), nodeName: n.name, nodeUID: n.uid, cidr, family: cidr.includes(":") ? 6 : 4, pool, nodeIPs: n.nodeIPs, phase: "Allocated" });

/** The records, each counting how often its pool is read. */
function counting(records: PlannerRecord[]): { records: PlannerRecord[]; reads: () => number } {
  let reads = 0;
  const wrapped = records.map((r) => new Proxy(r, { get: (target, key, receiver) => { if (key === "pool") reads++; return Reflect.get(target, key, receiver) as unknown; } }));
  return { records: wrapped, reads: () => reads };
}

describe("plan cost against the number of pools and ranges", () => {
  it("reads each record's pool at most once more with 10 pools copying the default's ranges than with the default alone", () => {
    // A copy-pasted pool manifest per rack: every copy names the default's 16 ranges (refused: they overlap).
    const ranges = Array.from({ length: 16 }, (_, k) => `10.${128 + 2 * k}.0.0/15`);
    const nodes = Array.from({ length: 1_000 }, (_, i) => nodeAt(i));
    const records = nodes.map((n, i) => recordOf(n, slice(ranges[i >> 9]!, 24, i & 511), "default"));
    const readsWith = (copies: number) => {
      const pools: PlannerPool[] = [{ name: "default", nodeSelector: {}, v4: { cidrs: ranges, nodePrefix: 24 } },
        ...Array.from({ length: copies }, (_, p) => ({ name: `copy-${p}`, nodeSelector: { rack: `r${p}` }, v4: { cidrs: ranges, nodePrefix: 24 } }))];
      const c = counting(records);
      const plan = planAllocations(input({ nodes, records: c.records, pools }));
      if (copies) expect(plan.poolStatuses.find((s) => s.pool === "copy-0")!.conditions.find((c) => c.type === "Valid")).toMatchObject({ status: "False" });
      return c.reads();
    };
    const alone = readsWith(0);
    // Once more per record, to index them by pool at the first overlap. Before: every overlapping pair of ranges
    // scanned every record up to four times (7.0 million reads here, against 3,000 for the pool alone).
    expect(readsWith(10)).toBeLessThanOrEqual(alone + records.length);
  });

  it("compares each record and node address with a few ranges, not every range of every pool (120 pools × 32 ranges)", () => {
    const P = 120;
    const pools: PlannerPool[] = Array.from({ length: P }, (_, p) => ({
      name: `pool-${p}`, nodeSelector: { rack: `r${p}` },
      v4: { cidrs: Array.from({ length: 16 }, (_, k) => `100.${64 + (p >> 4)}.${((p & 15) << 4) + k}.0/24`), nodePrefix: 28 },
      v6: { cidrs: Array.from({ length: 16 }, (_, k) => `fd${p.toString(16).padStart(2, "0")}:${k.toString(16)}::/48`), nodePrefix: 64 },
    }));
    let selectorReads = 0;
    const watched = pools.map((pool) => new Proxy(pool, { get: (target, key, receiver) => { if (key === "nodeSelector") selectorReads++; return Reflect.get(target, key, receiver) as unknown; } }));
    const nodes = Array.from({ length: 1_200 }, (_, i) => nodeAt(i, { rack: `r${i % P}` }));
    const records = nodes.flatMap((n, i) => {
      const p = pools[i % P]!;
      const j = Math.floor(i / P);
      return [recordOf(n, slice(p.v4!.cidrs[0]!, 28, j), p.name), recordOf(n, slice(p.v6!.cidrs[0]!, 64, j), p.name)];
    });
    counts.comparisons = 0;
    const plan = planAllocations(input({ nodes: [...nodes, nodeAt(nodes.length, { rack: "r0" })], records, pools: watched }));
    expect(plan.actions.filter((a) => a.kind === "create").map((a) => a.cidr)).toEqual(["100.64.0.160/28", "fd00:0:0:a::/64"]);
    const ranges = P * 32;
    // Before: every pair of ranges, then every range per record and per node address (8.3 million here; now 8,640).
    expect(counts.comparisons).toBeLessThan(2 * (ranges + records.length + 2 * nodes.length));
    // Before: every pool's selector for each Node (144,120 reads here; now 1,441).
    expect(selectorReads).toBeLessThan(5 * P + 2 * nodes.length);
  });
});
