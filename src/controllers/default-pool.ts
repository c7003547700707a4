import type { PoolSpec } from "../crds/pool.js";
import { canonicalCidrOrText, cidrsOverlap, parseCidr } from "../lib/cidr.js";

/** The default pool as the controller's flags describe it (--cluster-cidr, --node-mask-v4/-v6). */
export interface ConfiguredPool {
  v4: string[];
  v6: string[];
  maskV4: number;
  maskV6: number;
}

export interface DefaultPoolNote { reason: string; message: string }

/** Annotation on the default pool: the ranges its configuration named when the controller last looked. */
export const CONFIGURED_CIDRS_ANNOTATION = "podnet.io/configured-cidrs";

export interface DefaultPoolPlan {
  /** The spec to write when configuration adds ranges the pool lacks; undefined when nothing is to add. */
  spec?: PoolSpec;
  added: string[];
  /** What the configuration asks for and the pool keeps anyway (Warning Events, log lines). */
  notes: DefaultPoolNote[];
  /**
   * The annotation's new value (the configured ranges), written with the spec or alone when it changed;
   * undefined: leave it as it is (the configuration was not taken as this pool's).
   */
  configuredCidrs?: string;
}

/** A range the default pool must not overlap: another pool's (named in `pool`), or a service CIDR. */
export interface RangeInUse { cidr: string; by: string; pool?: string }

/** The schema admits only canonical CIDRs; anything else is compared as written and overlaps nothing. */
const canonical = canonicalCidrOrText;
const overlaps = (a: string, b: string) => { try { return cidrsOverlap(parseCidr(a), parseCidr(b)); } catch { return false; } };
const list = (text: string) => text.split(",").filter(Boolean).map(canonical);

/**
 * Pure: bring an existing default pool up to its configuration. The pool only grows (its schema refuses
 * removing a range or changing nodeMaskSize: nodes hold CIDRs from them), so a `helm upgrade` that adds a range
 * or a family to the values grows the pool, and everything else is reported, never written:
 * - growth only: the configuration must still name every range it named before (the annotation; for a pool
 *   without one, the pool's own ranges). Values that replace the ranges (an upgrade that lost a `--set`, a
 *   pool made by hand) would otherwise append ranges nobody chose, for good;
 * - a configured range overlapping one of the pool's, another pool's or a service CIDR is not added: it would
 *   make both ranges invalid, and the pool could not drop it again;
 * - another node mask is kept. Ranges added by hand (`kubectl edit`) are not the configuration's to judge.
 */
export function planDefaultPool(name: string, configured: ConfiguredPool, spec: PoolSpec, previouslyConfigured: string | undefined, inUse: RangeInUse[] = []): DefaultPoolPlan {
  const next: PoolSpec = structuredClone(spec);
  const added: string[] = [];
  const notes: DefaultPoolNote[] = [];
  const configuredAll = [...configured.v4, ...configured.v6].map(canonical);
  const poolRanges = [...(spec.ipv4?.cidrs ?? []), ...(spec.ipv6?.cidrs ?? [])].map(canonical);
  const before = previouslyConfigured !== undefined ? list(previouslyConfigured) : poolRanges;
  const missing = before.filter((r) => !configuredAll.includes(r));
  const grows = missing.length === 0;
  for (const [key, wanted, mask, flag] of [["ipv4", configured.v4, configured.maskV4, "--node-mask-v4"], ["ipv6", configured.v6, configured.maskV6, "--node-mask-v6"]] as const) {
    const have = (next[key]?.cidrs ?? []).map(canonical);
    const mask0 = next[key]?.nodeMaskSize;
    if (mask0 !== undefined && mask0 !== mask && wanted.length) {
      notes.push({ reason: "NodeMaskSizeKept", message: `pool ${name} keeps /${mask0} per node for ${key}: nodes hold CIDRs of that size; ${flag}=${mask} applies only to a pool created anew` });
    }
    for (const cidr of wanted.map(canonical)) {
      if (have.includes(cidr)) continue;
      const clash = have.map((h) => ({ cidr: h, by: `pool ${name}` })).concat(inUse).find((u) => overlaps(u.cidr, cidr));
      if (clash) {
        notes.push({ reason: "ConfiguredRangeOverlaps", message: `--cluster-cidr ${cidr} overlaps ${clash.cidr} of ${clash.by} and is not added to pool ${name}: configure ranges no pool or service uses` });
        continue;
      }
      if (!grows) {
        notes.push({ reason: "ConfiguredRangeNotAdded", message: previouslyConfigured !== undefined
          ? `--cluster-cidr ${cidr} is not added to pool ${name}: the configuration no longer names ${missing.join(", ")}, so it replaces the pool's ranges rather than adding to them; name those too to grow the pool`
          : `--cluster-cidr ${cidr} is not added to pool ${name}: the pool was not made from this configuration (it has ${missing.join(", ")}); add the range with kubectl edit podcidrpool ${name}` });
        continue;
      }
      const family = next[key];
      if (family) family.cidrs.push(cidr);
      else next[key] = { cidrs: [cidr], nodeMaskSize: mask };
      have.push(cidr);
      added.push(cidr);
    }
  }
  const dropped = previouslyConfigured !== undefined ? poolRanges.filter((h) => missing.includes(h)) : [];
  if (dropped.length) {
    notes.push({ reason: "RangeNotConfigured", message: `pool ${name} keeps ${dropped.join(", ")}, no longer in --cluster-cidr: a pool's ranges cannot be removed while nodes may hold CIDRs from them` });
  }
  return { ...(added.length ? { spec: next } : {}), added, notes, ...(grows ? { configuredCidrs: configuredAll.join(",") } : {}) };
}

export interface NewDefaultPoolPlan {
  /** The spec to create; undefined when every configured range of a family is another pool's. */
  spec?: PoolSpec;
  /** Each configured range left out (ConfiguredRangeOverlaps). */
  notes: DefaultPoolNote[];
  /** The pools whose ranges were left out, to tell when nothing is created. */
  clashingPools: string[];
  /** Configured families with no range left (then nothing is created, the free family's ranges neither). */
  lostFamilies: string[];
}

/**
 * Pure: the default pool to create from the configuration, without the ranges other pools hold (a pool
 * applied before the controller first came up). Created over them, both pools' ranges would be refused and no
 * Node of either served. The service CIDR is not checked here: the pool's Valid condition reports that
 * overlap, and it stops no other pool.
 */
export function planNewDefaultPool(name: string, configured: ConfiguredPool, otherPools: RangeInUse[]): NewDefaultPoolPlan {
  const notes: DefaultPoolNote[] = [];
  const clashingPools = new Set<string>();
  const keep = (cidrs: string[]) => cidrs.filter((cidr) => {
    const clash = otherPools.find((u) => overlaps(u.cidr, cidr));
    if (!clash) return true;
    if (clash.pool) clashingPools.add(clash.pool);
    notes.push({ reason: "ConfiguredRangeOverlaps", message: `--cluster-cidr ${canonical(cidr)} overlaps ${clash.cidr} of ${clash.by} and is left out of pool ${name}: configure ranges no other pool uses` });
    return false;
  });
  const v4 = keep(configured.v4);
  const v6 = keep(configured.v6);
  // A configured family left with no range: not created at all. Created with the other family alone, its Nodes'
  // podCIDRs would be filled with that one, and the field can never take the second once the range is free.
  const lostFamilies = [configured.v4.length && !v4.length ? "IPv4" : "", configured.v6.length && !v6.length ? "IPv6" : ""].filter(Boolean);
  return { ...(lostFamilies.length ? {} : { spec: configuredSpec(configured, v4, v6) }), notes, clashingPools: [...clashingPools].sort(), lostFamilies };
}

/** A pool spec of the configured masks over these ranges (by default all the configured ones). */
export function configuredSpec(configured: ConfiguredPool, v4 = configured.v4, v6 = configured.v6): PoolSpec {
  return {
    ...(v4.length ? { ipv4: { cidrs: v4, nodeMaskSize: configured.maskV4 } } : {}),
    ...(v6.length ? { ipv6: { cidrs: v6, nodeMaskSize: configured.maskV6 } } : {}),
  };
}
