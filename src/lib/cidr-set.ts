import { cidrContains, formatCidr, nthSubnet, subnetCount, subnetIndex, type Cidr } from "./cidr.js";

/**
 * Which /nodePrefix slices of one range are taken. Deliberately dumb (like Kubernetes' cidrset): a set of
 * used slice indices and a cursor for the lowest possibly-free one; the planner around it does the thinking.
 * A Set instead of a bitmap, so an IPv6 range of 2^64 slices costs nothing until slices are used. A CIDR wider
 * than one slice (a Node's own /64 in a pool of /96 slices, a record of an earlier mask) blocks a run of
 * indices, kept as that run: it may cover 2^32 slices or more, and every one of them must stay out.
 */
export class CidrSet {
  readonly size: bigint;
  private readonly usedIndices = new Set<bigint>();
  /** Runs [first, end) of slice indices blocked by wider CIDRs. */
  private readonly blockedRuns: Array<readonly [bigint, bigint]> = [];
  private cursor = 0n;

  constructor(readonly range: Cidr, readonly nodePrefix: number) {
    this.size = subnetCount(range, nodePrefix);
  }

  /** Slices taken, by a slice's own record or inside a blocked run. */
  get used(): bigint {
    const runs = mergedRuns(this.blockedRuns);
    let n = runs.reduce((sum, [first, end]) => sum + (end - first), 0n);
    for (const i of this.usedIndices) if (!runs.some(([first, end]) => i >= first && i < end)) n++;
    return n;
  }
  get free(): bigint { return this.size - this.used; }

  /** Mark a slice taken; false when it is not a slice of this range (wrong size or outside). */
  occupy(c: Cidr): boolean {
    if (c.prefix !== this.nodePrefix || !cidrContains(this.range, c)) return false;
    this.usedIndices.add(subnetIndex(this.range, c));
    return true;
  }

  /** Mark every slice a (wrongly sized) CIDR touches, so nothing overlapping it is handed out; returns how many. */
  occupyCovering(c: Cidr): bigint {
    if (c.family !== this.range.family) return 0n;
    if (c.prefix >= this.nodePrefix) {
      const widened = { family: c.family, prefix: this.nodePrefix, network: c.network } as Cidr;
      const slice = nthSubnetContaining(this.range, this.nodePrefix, widened);
      if (slice !== undefined) this.usedIndices.add(slice);
      return slice === undefined ? 0n : 1n;
    }
    if (!cidrContains(this.range, c) && !cidrContains(c, this.range)) return 0n;
    const inner = cidrContains(this.range, c) ? c : this.range;
    const first = subnetIndex(this.range, nthSubnet(inner, this.nodePrefix, 0n));
    const count = subnetCount(inner, this.nodePrefix);
    this.blockedRuns.push([first, first + count]);
    return count;
  }

  isOccupied(c: Cidr): boolean {
    if (c.prefix !== this.nodePrefix || !cidrContains(this.range, c)) return false;
    const index = subnetIndex(this.range, c);
    return this.usedIndices.has(index) || this.runHolding(index) !== undefined;
  }

  /** Frees a slice's own mark; one inside a blocked run stays out. */
  release(c: Cidr): void {
    if (c.prefix !== this.nodePrefix || !cidrContains(this.range, c)) return;
    const index = subnetIndex(this.range, c);
    this.usedIndices.delete(index);
    if (index < this.cursor) this.cursor = index;
  }

  /** Lowest free slice, marked used; undefined when the range is full. */
  allocateNext(): Cidr | undefined {
    while (this.cursor < this.size) {
      if (this.usedIndices.has(this.cursor)) { this.cursor++; continue; }
      const run = this.runHolding(this.cursor);
      if (run === undefined) break;
      this.cursor = run[1];
    }
    if (this.cursor >= this.size) return undefined;
    this.usedIndices.add(this.cursor);
    return nthSubnet(this.range, this.nodePrefix, this.cursor);
  }

  private runHolding(index: bigint): readonly [bigint, bigint] | undefined {
    return this.blockedRuns.find(([first, end]) => index >= first && index < end);
  }

  toString(): string { return `${formatCidr(this.range)} (/${this.nodePrefix}: ${this.used}/${this.size} used)`; }
}

/** Overlapping or touching runs joined, in order: a slice held by two wide CIDRs counts once. */
function mergedRuns(runs: ReadonlyArray<readonly [bigint, bigint]>): Array<[bigint, bigint]> {
  const sorted = [...runs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: Array<[bigint, bigint]> = [];
  for (const [first, end] of sorted) {
    const last = out.at(-1);
    if (last && first <= last[1]) { if (end > last[1]) last[1] = end; } else out.push([first, end]);
  }
  return out;
}

function nthSubnetContaining(range: Cidr, prefix: number, c: Cidr): bigint | undefined {
  const bits = range.family === 4 ? 32 : 128;
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
  const slice: Cidr = { family: c.family, network: c.network & mask, prefix };
  return cidrContains(range, slice) ? subnetIndex(range, slice) : undefined;
}
