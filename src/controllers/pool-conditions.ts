import type { IpFamily } from "../lib/cidr.js";
import type { ConditionInput } from "../lib/conditions.js";
import type { PoolState } from "./plan-pools.js";
import type { PoolStates } from "./pool-states.js";

/** Pure: what each pool's status says after a plan: usage per family and its conditions. */
export interface PoolStatusReport {
  pool: string;
  usage: Partial<Record<IpFamily, { size: bigint; allocated: bigint; free: bigint }>>;
  conditions: ConditionInput[];
}

export function poolStatusReports(states: PoolStates): PoolStatusReport[] {
  return [...states.values()].map((state) => {
    const usage: PoolStatusReport["usage"] = {};
    const problems: string[] = [];
    const nested: string[] = [];
    let exhausted = 0;
    let waitingOnInvalid = false;
    for (const family of [4, 6] as const) {
      const fam = state.families[family];
      if (!fam) continue;
      waitingOnInvalid ||= fam.exhaustedNodes > 0 && fam.sets.length === 0;
      const size = fam.sets.reduce((n, s) => n + s.size, 0n);
      const allocated = fam.sets.reduce((n, s) => n + s.used, 0n);
      usage[family] = { size, allocated, free: size - allocated };
      problems.push(...fam.problems);
      nested.push(...fam.nested);
      exhausted += fam.exhaustedNodes;
    }
    const valid = validCondition(state, problems, states, nested);
    const exhaustion: ConditionInput = exhausted
      ? { type: "Exhausted", status: "True", reason: "NoFreeCIDR", message: `${exhausted} node(s) wait for a CIDR; `
        + (waitingOnInvalid ? "a family has no valid range: fix what the Valid condition names" : "add a range to spec to grow the pool") }
      : { type: "Exhausted", status: "False", reason: "CapacityAvailable", message: "every selected node has its CIDRs" };
    return { pool: state.pool.name, usage, conditions: [readyCondition(valid, exhaustion), valid, exhaustion, podAddressesCondition(state)] };
  });
}

const UNSELECTED = "the Nodes no pool's nodeSelector matches";

/**
 * Valid: every range usable, and, for a pool without a nodeSelector, whether it is the one that serves the Nodes
 * no selector matches (chooseCatchAll). Another such pool serves none, which its author must hear of: by name
 * order it used to take every new Node over, or never serve, without a word.
 */
function validCondition(state: PoolState, problems: string[], states: PoolStates, nested: string[]): ConditionInput {
  const serving = states.catchAll;
  const ranges = problems.join("; ");
  if (serving && serving !== state && states.withoutSelector.includes(state)) {
    // Older than the one serving: passed over for a family without a valid range, which its problems name.
    if (states.withoutSelector.indexOf(state) < states.withoutSelector.indexOf(serving)) {
      return { type: "Valid", status: "False", reason: "InvalidRanges", message: `${ranges || "a family has no range"}; until each of its families has a valid range, pool ${serving.pool.name} serves ${UNSELECTED}` };
    }
    return { type: "Valid", status: "False", reason: "AnotherCatchAllPool",
      message: `pool ${serving.pool.name} serves ${UNSELECTED}, being the oldest pool without a nodeSelector${serving === states.withoutSelector[0] ? "" : " that has a valid range in each of its families"}; `
        + `this pool has none either and serves no Node (those that hold a CIDR from it keep it): give it a nodeSelector, or delete it${ranges ? `. Its ranges: ${ranges}` : ""}` };
  }
  const passedOver = serving === state ? states.withoutSelector.slice(0, states.withoutSelector.indexOf(state)).map((s) => s.pool.name) : [];
  const standingIn = passedOver.length
    ? `; serves ${UNSELECTED} in place of older pool${passedOver.length > 1 ? "s" : ""} ${passedOver.join(", ")}, which lack${passedOver.length > 1 ? "" : "s"} a valid range in a family`
    : "";
  return ranges
    ? { type: "Valid", status: "False", reason: "InvalidRanges", message: `${ranges}${standingIn}` }
    : { type: "Valid", status: "True", reason: "RangesValid", message: `all ranges usable${nestedNote(nested)}${standingIn}` };
}

/** Ranges of the pool inside a wider one of it (a pool grown by appending a superset): served as part of that one. */
function nestedNote(nested: string[]): string {
  if (!nested.length) return "";
  const named = nested.slice(0, 3).join(", ") + (nested.length > 3 ? ` and ${nested.length - 3} more` : "");
  return `; ${named}: overlapping ranges of this pool, served once as the wider`;
}

/**
 * Ready, the summary that `kubectl wait --for=condition=Ready` and health checks read: True when the pool is Valid
 * and not Exhausted, else False with the reason of the condition that fails (Valid's first).
 */
function readyCondition(valid: ConditionInput, exhaustion: ConditionInput): ConditionInput {
  const failing = [valid.status !== "True" ? valid : undefined, exhaustion.status === "True" ? exhaustion : undefined].filter((c) => c !== undefined);
  if (!failing.length) return { type: "Ready", status: "True", reason: "ValidAndNotExhausted", message: "all ranges usable and every selected node has its CIDRs" };
  return { type: "Ready", status: "False", reason: failing[0]!.reason, message: failing.map((c) => `${c.type}: ${c.message}`).join("; ") };
}

/**
 * Pod addresses in one node slice: host-local hands out all but the network address, the bridge's gateway and,
 * for IPv4, the broadcast address. A BigInt: an IPv6 /64's 2^64 − 2 is past a float's exact integers.
 */
const podAddresses = (family: IpFamily, prefix: number) => (1n << BigInt((family === 4 ? 32 : 128) - prefix)) - (family === 4 ? 3n : 2n);

/**
 * Whether each node's slices hold as many addresses as its Nodes admit pods (kubelet's --max-pods, 110 by
 * default: a /26 holds 61). Past that, pods on a full node fail with "no IP addresses available".
 */
function podAddressesCondition(state: PoolState): ConditionInput {
  const fits = ([4, 6] as const).flatMap((f) => {
    const fam = state.families[f];
    return fam?.sets.length ? [{ family: f, pods: podAddresses(f, fam.prefix), prefix: fam.prefix }] : [];
  });
  const smallest = fits.sort((a, b) => (a.pods < b.pods ? -1 : a.pods > b.pods ? 1 : 0))[0];
  const max = state.maxPods;
  // Nothing to size: Valid=False names the ranges; whether Nodes report their capacity does not matter yet.
  if (!smallest) return { type: "PodAddresses", status: "Unknown", reason: "NoValidRange", message: "no valid range to size: fix what the Valid condition names" };
  // Nothing to compare the slices with: not known to fit (a True here read as a check that passed).
  if (!max) return { type: "PodAddresses", status: "Unknown", reason: "NoNodeCapacityKnown", message: "no selected Node reports its pod capacity yet" };
  // bigint against number: compared exactly.
  if (smallest.pods >= max.pods) {
    return { type: "PodAddresses", status: "True", reason: "SliceFitsMaxPods", message: `each node's /${smallest.prefix} holds ${smallest.pods} pod addresses; its Nodes admit at most ${max.pods} pods` };
  }
  return { type: "PodAddresses", status: "False", reason: "SliceSmallerThanMaxPods",
    message: `each node's IPv${smallest.family} /${smallest.prefix} holds ${smallest.pods} pod addresses, but node ${max.node} admits ${max.pods} pods (kubelet --max-pods): pods past ${smallest.pods} on a node fail with "no IP addresses available"; use a shorter nodeMaskSize or lower --max-pods` };
}
