/**
 * mulberry32: a tiny seeded generator. Every random choice of a soak run comes from one of these, so a seed
 * replays the same operations in the same order (as long as the cluster answers them the same way).
 */
export interface Prng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Whole number in [0, below). */
  int(below: number): number;
  pick<T>(items: readonly T[]): T;
}

export function seededPrng(seed: number): Prng {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (below: number) => Math.floor(next() * below);
  const pick = <T>(items: readonly T[]): T => {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[int(items.length)]!;
  };
  return { next, int, pick };
}
