import { cidrLast, type Cidr, type IpAddr, type IpFamily } from "./cidr.js";

interface Sorted<T> {
  networks: bigint[];
  lasts: bigint[];
  /** reach[k]: the highest last address among entries 0..k, so a search can tell when nothing earlier reaches. */
  reach: bigint[];
  values: T[];
}

const byNetwork = (a: Cidr, b: Cidr) => (a.network < b.network ? -1 : a.network > b.network ? 1 : a.prefix - b.prefix);

/** The first index whose network is at or above `at` (networks sorted ascending). */
function firstAtOrAfter(networks: bigint[], at: bigint): number {
  let lo = 0;
  let hi = networks.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (networks[mid]! < at) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * CIDRs sorted by network per family, so "which of them overlap this one?" is a binary search instead of a
 * walk over all of them. `overlapsAny` costs O(log n) whatever the entries; `overlapping` O(log n + answer)
 * when the entries are disjoint (a plan's valid pool ranges are), more where many entries nest.
 */
export class CidrIndex<T> {
  private readonly families = new Map<IpFamily, Sorted<T>>();

  constructor(entries: Iterable<{ cidr: Cidr; value: T }>) {
    const grouped = new Map<IpFamily, Array<{ cidr: Cidr; value: T }>>();
    for (const e of entries) {
      const list = grouped.get(e.cidr.family);
      if (list) list.push(e);
      else grouped.set(e.cidr.family, [e]);
    }
    for (const [family, list] of grouped) {
      list.sort((a, b) => byNetwork(a.cidr, b.cidr));
      const lasts = list.map((e) => cidrLast(e.cidr));
      const reach: bigint[] = [];
      for (const [k, last] of lasts.entries()) reach.push(k > 0 && reach[k - 1]! > last ? reach[k - 1]! : last);
      this.families.set(family, { networks: list.map((e) => e.cidr.network), lasts, reach, values: list.map((e) => e.value) });
    }
  }

  /** Whether any entry shares an address with `c`. */
  overlapsAny(c: Cidr): boolean {
    const f = this.families.get(c.family);
    if (!f) return false;
    const lo = firstAtOrAfter(f.networks, c.network);
    // One starting inside c, or one starting before it that reaches into it.
    return (lo < f.networks.length && f.networks[lo]! <= cidrLast(c)) || (lo > 0 && f.reach[lo - 1]! >= c.network);
  }

  /** Every entry that shares an address with `c`, in network order. */
  overlapping(c: Cidr): T[] {
    const f = this.families.get(c.family);
    if (!f) return [];
    const lo = firstAtOrAfter(f.networks, c.network);
    // Entries starting before c that reach into it: back only as far as anything earlier still reaches.
    let first = lo;
    while (first > 0 && f.reach[first - 1]! >= c.network) first--;
    const out: T[] = [];
    for (let k = first; k < lo; k++) if (f.lasts[k]! >= c.network) out.push(f.values[k]!);
    const last = cidrLast(c);
    for (let k = lo; k < f.networks.length && f.networks[k]! <= last; k++) out.push(f.values[k]!);
    return out;
  }

  /** Every entry that holds the address. */
  holding(ip: IpAddr): T[] {
    return this.overlapping({ family: ip.family, network: ip.value, prefix: ip.family === 4 ? 32 : 128 });
  }
}

/**
 * CIDRs that share no address with one another: whether another overlaps any of them is a binary search (the
 * planner's kept allocations, where agents route neither of two that overlap). Adding is a push: every live
 * record is added, in claim order, and only the few retained ones ask, after all covered ones are in; the
 * arrays are sorted at the first question after adds (inserting each in place cost O(n) a record).
 */
export class DisjointCidrs {
  private readonly families = new Map<IpFamily, { networks: bigint[]; lasts: bigint[]; sorted: boolean }>();

  overlapsAny(c: Cidr): boolean {
    const f = this.families.get(c.family);
    if (!f) return false;
    if (!f.sorted) {
      const order = f.networks.map((_, i) => i).sort((a, b) => (f.networks[a]! < f.networks[b]! ? -1 : 1));
      [f.networks, f.lasts, f.sorted] = [order.map((i) => f.networks[i]!), order.map((i) => f.lasts[i]!), true];
    }
    const lo = firstAtOrAfter(f.networks, c.network);
    // Disjoint, so the one starting just before c reaches furthest of all that start before it.
    return (lo < f.networks.length && f.networks[lo]! <= cidrLast(c)) || (lo > 0 && f.lasts[lo - 1]! >= c.network);
  }

  /** Adds one that overlaps none of them (the caller asked overlapsAny, or its slice set holds it alone). */
  add(c: Cidr): void {
    let f = this.families.get(c.family);
    if (!f) this.families.set(c.family, (f = { networks: [], lasts: [], sorted: true }));
    f.networks.push(c.network);
    f.lasts.push(cidrLast(c));
    f.sorted &&= f.networks.length < 2 || f.networks.at(-2)! < c.network;
  }
}

/**
 * For each CIDR, the ones after it in `cidrs` that share an address and its family, in their order there: every
 * overlapping pair once, as a loop over all pairs would meet them. One sweep over the CIDRs sorted by network:
 * two CIDRs overlap only when one holds the other, so the ones still open where a CIDR starts form a chain,
 * each holding the next, and each of them overlaps it. O(n log n) plus the pairs found, not n² comparisons.
 */
export function overlapsAfter(cidrs: Cidr[]): number[][] {
  const after = cidrs.map((): number[] => []);
  const order = cidrs.map((_, i) => i).sort((a, b) => cidrs[a]!.family - cidrs[b]!.family || byNetwork(cidrs[a]!, cidrs[b]!) || a - b);
  const open: Array<{ index: number; family: IpFamily; last: bigint }> = [];
  for (const i of order) {
    const c = cidrs[i]!;
    while (open.length && (open.at(-1)!.family !== c.family || open.at(-1)!.last < c.network)) open.pop();
    for (const { index } of open) {
      if (index < i) after[index]!.push(i);
      else after[i]!.push(index);
    }
    open.push({ index: i, family: c.family, last: cidrLast(c) });
  }
  for (const list of after) list.sort((a, b) => a - b);
  return after;
}
