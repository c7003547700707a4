/**
 * Plain code-point order for sorting names and CIDR strings. Deterministic like localeCompare but without
 * its collation work, which dominated sorting 5,000 routes or records on every pass.
 */
/** The earlier of two optional times (epoch ms). */
export const sooner = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined ? b : b === undefined ? a : Math.min(a, b));

export const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
