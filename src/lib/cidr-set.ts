import { cidrContains, formatCidr, nthSubnet, subnetCount, subnetIndex, type Cidr } from "./cidr.js";

/**
 * Which /nodePrefix slices of one range are taken. Deliberately dumb (like Kubernetes' cidrset): a set of
 * used slice indices and a cursor for the lowest possibly-free one; the planner around it does the thinking.
 * A Set instead of a bitmap, so an IPv6 range of 2^64 slices costs nothing until slices are used.
 */
export class CidrSet {
  readonly size: bigint;
  private readonly usedIndices = new Set<bigint>();
  private cursor = 0n;

  constructor(readonly range: Cidr, readonly nodePrefix: number) {
    this.size = subnetCount(range, nodePrefix);
  }

  get used(): number { return this.usedIndices.size; }
  get free(): bigint { return this.size - BigInt(this.usedIndices.size); }

  /** Mark a slice taken; false when it is not a slice of this range (wrong size or outside). */
  occupy(c: Cidr): boolean {
    if (c.prefix !== this.nodePrefix || !cidrContains(this.range, c)) return false;
    this.usedIndices.add(subnetIndex(this.range, c));
    return true;
  }

  /** Mark every slice a (wrongly sized) CIDR touches, so nothing overlapping it is handed out. */
  occupyCovering(c: Cidr, limit = 65_536n): number {
    if (c.family !== this.range.family) return 0;
    if (c.prefix >= this.nodePrefix) {
      const widened = { family: c.family, prefix: this.nodePrefix, network: c.network } as Cidr;
      const slice = nthSubnetContaining(this.range, this.nodePrefix, widened);
      if (slice !== undefined) this.usedIndices.add(slice);
      return slice === undefined ? 0 : 1;
    }
    if (!cidrContains(this.range, c) && !cidrContains(c, this.range)) return 0;
    const inner = cidrContains(this.range, c) ? c : this.range;
    const first = subnetIndex(this.range, nthSubnet(inner, this.nodePrefix, 0n));
    const count = subnetCount(inner, this.nodePrefix);
    for (let i = 0n; i < count && i < limit; i++) this.usedIndices.add(first + i);
    return Number(count < limit ? count : limit);
  }

  isOccupied(c: Cidr): boolean {
    return c.prefix === this.nodePrefix && cidrContains(this.range, c) && this.usedIndices.has(subnetIndex(this.range, c));
  }

  release(c: Cidr): void {
    if (c.prefix !== this.nodePrefix || !cidrContains(this.range, c)) return;
    const index = subnetIndex(this.range, c);
    this.usedIndices.delete(index);
    if (index < this.cursor) this.cursor = index;
  }

  /** Lowest free slice, marked used; undefined when the range is full. */
  allocateNext(): Cidr | undefined {
    while (this.cursor < this.size && this.usedIndices.has(this.cursor)) this.cursor++;
    if (this.cursor >= this.size) return undefined;
    this.usedIndices.add(this.cursor);
    return nthSubnet(this.range, this.nodePrefix, this.cursor);
  }

  toString(): string { return `${formatCidr(this.range)} (/${this.nodePrefix}: ${this.used}/${this.size} used)`; }
}

function nthSubnetContaining(range: Cidr, prefix: number, c: Cidr): bigint | undefined {
  const bits = range.family === 4 ? 32 : 128;
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
  const slice: Cidr = { family: c.family, network: c.network & mask, prefix };
  return cidrContains(range, slice) ? subnetIndex(range, slice) : undefined;
}
