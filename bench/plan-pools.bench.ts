// Allocation plan time against the pools' shape, all in one run on this machine, at N Nodes (default 5,000),
// each with its allocated record(s) and one newcomer to allocate:
//   one-pool     one pool, one range: the baseline
//   copied       the same plus 100 pools naming the default's 16 ranges (a pool manifest copied per rack;
//                every copy refused for the overlap), records all in the default
//   disjoint     120 pools × 32 disjoint ranges (16 IPv4, 16 IPv6), each selecting a rack; dual-stack Nodes
// Each figure is the median of several plans after a warm-up, with its ratio to the one-pool plan. The plan is
// synchronous: while it runs, the controller's health answers, lease renewals and watches wait.
// Usage: tsx bench/plan-pools.bench.ts [N]
import { formatCidr, nthSubnet, parseCidr } from "../src/lib/cidr.js";
import { planAllocations, type PlannerInput, type PlannerNode, type PlannerPool, type PlannerRecord } from "../src/controllers/plan.js";

const N = Number(process.argv[2] ?? 5000);
const REPS = 7;
const config = { cooldownMs: 60_000, serviceCIDRs: ["10.96.0.0/12"], fillNodePodCIDRs: true };
const slice = (range: string, prefix: number, i: number) => formatCidr(nthSubnet(parseCidr(range), prefix, BigInt(i)));
const nodeAt = (i: number, labels: Record<string, string> = {}): PlannerNode =>
  ({ name: `n${String(i).padStart(5, "0")}`, uid: `u${i}`, labels, podCIDRs: [], nodeIPs: [`172.16.${i >> 8}.${(i & 255) + 1}`], deleting: false, createdAt: 0 });
const recordOf = (n: PlannerNode, cidr: string, pool: string): PlannerRecord =>
  ({ name: cidr.replace(/[.:/]/g, "-"), nodeName: n.name, nodeUID: n.uid, cidr, family: cidr.includes(":") ? 6 : 4, pool, nodeIPs: n.nodeIPs, phase: "Allocated", createdAt: 1 });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function onePool(): PlannerInput {
  const nodes = Array.from({ length: N }, (_, i) => nodeAt(i));
  const records = nodes.map((n, i) => recordOf(n, slice("10.128.0.0/9", 24, i), "default"));
  return { nodes: [...nodes, nodeAt(N)], records, pools: [{ name: "default", nodeSelector: {}, v4: { cidrs: ["10.128.0.0/9"], nodePrefix: 24 } }], config, now: 1e12, monotonicNow: 1e6 };
}

function copied(copies = 100): PlannerInput {
  const ranges = Array.from({ length: 16 }, (_, k) => `10.${128 + 2 * k}.0.0/15`);
  const pools: PlannerPool[] = [{ name: "default", nodeSelector: {}, v4: { cidrs: ranges, nodePrefix: 24 } },
    ...Array.from({ length: copies }, (_, p) => ({ name: `copy-${p}`, nodeSelector: { rack: `r${p}` }, v4: { cidrs: ranges, nodePrefix: 24 } }))];
  const nodes = Array.from({ length: N }, (_, i) => nodeAt(i));
  const records = nodes.map((n, i) => recordOf(n, slice(ranges[i >> 9]!, 24, i & 511), "default"));
  return { nodes: [...nodes, nodeAt(N)], records, pools, config, now: 1e12, monotonicNow: 1e6 };
}

function disjoint(P = 120): PlannerInput {
  const pools: PlannerPool[] = Array.from({ length: P }, (_, p) => ({
    name: `pool-${p}`, nodeSelector: { rack: `r${p}` },
    v4: { cidrs: Array.from({ length: 16 }, (_, k) => `100.${64 + (p >> 4)}.${((p & 15) << 4) + k}.0/24`), nodePrefix: 28 },
    v6: { cidrs: Array.from({ length: 16 }, (_, k) => `fd${p.toString(16).padStart(2, "0")}:${k.toString(16)}::/48`), nodePrefix: 64 },
  }));
  const nodes = Array.from({ length: N }, (_, i) => nodeAt(i, { rack: `r${i % P}` }));
  const records = nodes.flatMap((n, i) => {
    const p = pools[i % P]!;
    const j = Math.floor(i / P);
    return [recordOf(n, slice(p.v4!.cidrs[j >> 4]!, 28, j & 15), p.name), recordOf(n, slice(p.v6!.cidrs[0]!, 64, j), p.name)];
  });
  return { nodes: [...nodes, nodeAt(N, { rack: "r0" })], records, pools, config, now: 1e12, monotonicNow: 1e6 };
}

function planMs(input: PlannerInput): number {
  planAllocations(input); // warm-up: JIT, parse caches
  return median(Array.from({ length: REPS }, () => {
    const t0 = performance.now();
    planAllocations(input);
    return performance.now() - t0;
  }));
}

const base = planMs(onePool());
console.log(`plan at ${N} Nodes (median of ${REPS} plans):`);
console.log(`  1 pool, 1 range                          ${base.toFixed(1).padStart(8)} ms   1.0×`);
for (const [label, input] of [["1 pool + 100 copies of its 16 ranges", copied()], ["120 pools × 32 disjoint ranges, dual-stack", disjoint()]] as const) {
  const ms = planMs(input);
  console.log(`  ${label.padEnd(41)}${ms.toFixed(1).padStart(8)} ms ${(ms / base).toFixed(1).padStart(5)}×`);
}
