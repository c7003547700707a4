import type { PoolSpec } from "../crds/pool.js";
import { canonicalCidr, cidrsOverlap, parseCidr } from "../lib/cidr.js";

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
  /** The annotation's new value (the configured ranges), written with the spec or alone when it changed. */
  configuredCidrs: string;
}

/** The schema admits only canonical CIDRs; anything else is compared as written and overlaps nothing. */
const canonical = (cidr: string) => { try { return canonicalCidr(cidr); } catch { return cidr; } };
const overlaps = (a: string, b: string) => { try { return cidrsOverlap(parseCidr(a), parseCidr(b)); } catch { return false; } };

/**
 * Pure: bring an existing default pool up to its configuration. The pool only grows (its schema refuses
 * removing a range or changing nodeMaskSize: nodes hold CIDRs from them), so configured ranges it lacks are
 * appended, a configured family it lacks is added whole, and everything else the configuration changed
 * (another mask, a range overlapping one the pool has, a range dropped since the last configuration) is
 * reported, never written. A `helm upgrade` that adds a range to the values thus grows the pool, and one that
 * cannot be applied says why. Ranges added by hand (`kubectl edit`) are not the configuration's to judge:
 * only ranges the previous configuration named (the annotation) count as dropped.
 */
export function planDefaultPool(name: string, configured: ConfiguredPool, spec: PoolSpec, previouslyConfigured: string | undefined): DefaultPoolPlan {
  const next: PoolSpec = structuredClone(spec);
  const added: string[] = [];
  const notes: DefaultPoolNote[] = [];
  for (const [key, wanted, mask, flag] of [["ipv4", configured.v4, configured.maskV4, "--node-mask-v4"], ["ipv6", configured.v6, configured.maskV6, "--node-mask-v6"]] as const) {
    const have = (next[key]?.cidrs ?? []).map(canonical);
    const mask0 = next[key]?.nodeMaskSize;
    if (mask0 !== undefined && mask0 !== mask && wanted.length) {
      notes.push({ reason: "NodeMaskSizeKept", message: `pool ${name} keeps /${mask0} per node for ${key}: nodes hold CIDRs of that size; ${flag}=${mask} applies only to a pool created anew` });
    }
    const configuredHere = wanted.map(canonical);
    for (const cidr of configuredHere) {
      if (have.includes(cidr)) continue;
      const overlapped = have.find((h) => overlaps(h, cidr));
      if (overlapped) {
        notes.push({ reason: "ConfiguredRangeOverlaps", message: `--cluster-cidr ${cidr} overlaps ${overlapped} of pool ${name} and is not added: configure ranges beside the pool's, not around or inside them` });
        continue;
      }
      const family = next[key];
      if (family) family.cidrs.push(cidr);
      else next[key] = { cidrs: [cidr], nodeMaskSize: mask };
      have.push(cidr);
      added.push(cidr);
    }
    const before = (previouslyConfigured ?? "").split(",").filter(Boolean).map(canonical);
    const dropped = have.filter((h) => before.includes(h) && !configuredHere.includes(h));
    if (dropped.length) {
      notes.push({ reason: "RangeNotConfigured", message: `pool ${name} keeps ${dropped.join(", ")}, no longer in --cluster-cidr: a pool's ranges cannot be removed while nodes may hold CIDRs from them` });
    }
  }
  const configuredCidrs = [...configured.v4, ...configured.v6].map(canonical).join(",");
  return { ...(added.length ? { spec: next } : {}), added, notes, configuredCidrs };
}
