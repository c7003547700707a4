// One Node's families in the allocation planner (plan.ts): a preset podCIDR adopted, a hand-deleted record's CIDR
// given back, the lowest free slice allocated; and the ranges a Node names, reserved from every other Node.
import { familyOfText, formatCidr, parseCidr, parseIp, tryParseCidr, type Cidr, type IpAddr, type IpFamily } from "../lib/cidr.js";
import { findSet, occupySliceHolding, overlappingSets, type PoolState } from "./plan-pools.js";
import type { PoolStates } from "./pool-states.js";
import type { Lost } from "./plan-deleted.js";
import type { AllocationAction, Held, PlannerNode } from "./plan-types.js";

const familyOf = (a: AllocationAction) => ("family" in a ? a.family : "cidr" in a ? familyOfText(a.cidr) : 4);
export const byFamily = (a: AllocationAction, b: AllocationAction) => familyOf(a) - familyOf(b);

/** One node's family actions from one pass: adoption of preset podCIDRs, a hand-deleted record's CIDR given back, or allocation of the rest. */
export interface FamilyPlan { actions: AllocationAction[]; created: boolean; incomplete: boolean }

export function planFamilies(node: PlannerNode, state: PoolState | undefined, states: PoolStates, held: Map<string, Held[]>, holderOf: Map<string, string>, pass: "adopt" | "restore" | "allocate", restore: Lost[] = []): FamilyPlan {
  if (pass === "restore") return planRestore(node, states, held, holderOf, restore);
  const plan: FamilyPlan = { actions: [], created: false, incomplete: false };
  if (!state) return plan;
  const mine = held.get(node.name) ?? [];
  for (const family of [4, 6] as const) {
    const fam = state.families[family];
    if (!fam || mine.some((h) => h.family === family)) continue;
    // A family the pool declares but has no valid range for (overlapping another pool, say): the Node's
    // podCIDRs must wait for it, as they wait on exhaustion; the field cannot be completed later.
    if (fam.sets.length === 0) {
      plan.incomplete = true;
      if (pass === "allocate") plan.actions.push(noValidRange(node, state, family));
      continue;
    }
    const preset = node.podCIDRs.find((c) => familyOfText(c) === family);
    if ((preset !== undefined) !== (pass === "adopt")) continue;
    const action = preset !== undefined ? adopt(node, preset, states, holderOf) : allocate(node, state, family);
    plan.actions.push(action);
    if (action.kind === "create") {
      mine.push({ cidr: action.cidr, family });
      holderOf.set(action.cidr, node.name);
      plan.created = true;
    } else plan.incomplete = true;
  }
  held.set(node.name, mine);
  return plan;
}

/**
 * Its hand-deleted record's CIDR goes back to the node: its pods have addresses from it. One the node names goes
 * back as an adoption. From whichever pool holds the slice, as the record was: a node relabelled since into a
 * pool without that family (or with no valid range of it) kept its record, and must get it back, or another Node
 * naming the range would adopt it at once. Taken meanwhile (a record made over it), the node is allocated as any other.
 */
function planRestore(node: PlannerNode, states: PoolStates, held: Map<string, Held[]>, holderOf: Map<string, string>, restore: Lost[]): FamilyPlan {
  const plan: FamilyPlan = { actions: [], created: false, incomplete: false };
  const mine = held.get(node.name) ?? [];
  for (const family of [4, 6] as const) {
    if (mine.some((h) => h.family === family)) continue;
    const preset = node.podCIDRs.find((c) => familyOfText(c) === family);
    const lost = restore.find((l) => l.family === family)?.cidr;
    if (lost === undefined || (preset !== undefined && preset !== lost)) continue;
    const back = adopt(node, lost, states, holderOf);
    if (back.kind !== "create") continue;
    plan.actions.push(preset === lost ? back : { ...back, adopted: false, restored: true });
    mine.push({ cidr: back.cidr, family });
    holderOf.set(back.cidr, node.name);
    plan.created = true;
  }
  held.set(node.name, mine);
  return plan;
}

/** A new record's node IPs, and where they came from. */
const mirroredOf = (node: PlannerNode) => ({ nodeIPs: node.nodeIPs, ...(node.nodeIPs.length && node.nodeIPsFrom ? { nodeIPsFrom: node.nodeIPsFrom } : {}) });

function adopt(node: PlannerNode, preset: string, states: PoolStates, holderOf: Map<string, string>): AllocationAction {
  const cidr = tryParseCidr(preset);
  if (!cidr) return { kind: "conflict", node: node.name, reason: "PodCIDRInvalid", message: `node ${node.name} has an invalid spec.podCIDRs entry "${preset}"` };
  const text = formatCidr(cidr);
  const found = findSet(states, cidr);
  if (!found) return { kind: "conflict", node: node.name, reason: "PodCIDROutsidePool", message: `node ${node.name} has podCIDR ${text}, which is not a node-sized slice of any PodCIDRPool range; not adopted` };
  if (found.set.isOccupied(cidr)) {
    const holder = holderOf.get(text);
    return { kind: "conflict", node: node.name, reason: "PodCIDRConflict", message: `node ${node.name} has podCIDR ${text}, already held by ${holder ? `node ${holder}` : "another record"}; not overwritten` };
  }
  found.set.occupy(cidr);
  return { kind: "create", node: node.name, nodeUID: node.uid, cidr: text, family: cidr.family, pool: found.state.pool.name, ...mirroredOf(node), adopted: true };
}

function allocate(node: PlannerNode, state: PoolState, family: IpFamily): AllocationAction {
  const fam = state.families[family]!;
  for (const set of fam.sets) {
    const cidr = set.allocateNext();
    if (cidr) return { kind: "create", node: node.name, nodeUID: node.uid, cidr: formatCidr(cidr), family, pool: state.pool.name, ...mirroredOf(node), adopted: false };
  }
  fam.exhaustedNodes++;
  return {
    kind: "exhausted", node: node.name, pool: state.pool.name, family, reason: "PodCIDRNotAvailable",
    message: `pool ${state.pool.name} has no free IPv${family} /${fam.prefix} left for node ${node.name}; add a range to the pool`,
  };
}

/** A node waiting on a pool family with no valid range waits as on exhaustion: an Event, and the pool's Exhausted condition. */
function noValidRange(node: PlannerNode, state: PoolState, family: IpFamily): AllocationAction {
  state.families[family]!.exhaustedNodes++;
  return { kind: "exhausted", node: node.name, pool: state.pool.name, family, reason: "PodCIDRNotAvailable",
    message: `pool ${state.pool.name} has no valid IPv${family} range for node ${node.name}; its Valid condition says why` };
}

/**
 * A range a Node names in spec.podCIDRs is in use on that node (kubelet, kube-proxy) whether podnet adopted it
 * or not: in conflict, of another size, with host bits, on a node no pool selects or that is draining. None of
 * it is handed to another node. Runs after the adoptions, so a range a Node may take is taken, not reserved.
 * Nor is a slice that holds a Node's own address (a pool range over the node network, 10.0.0.0/8 say):
 * its pods would take the node's address, and agents refuse to route through an address inside a pod CIDR.
 */
export function reserveNodeRanges(node: PlannerNode, states: PoolStates, held: Map<string, Held[]>, holderOf: Map<string, string>): void {
  const mine = held.get(node.name);
  for (const text of node.podCIDRs) {
    if (mine?.some((h) => h.cidr === text)) continue; // its own record's range: taken already (the usual case)
    let cidr: Cidr;
    try { cidr = parseCidr(text, { allowHostBits: true }); } catch { continue; }
    for (const set of overlappingSets(states, cidr)) set.occupyCovering(cidr);
    if (!holderOf.has(formatCidr(cidr))) holderOf.set(formatCidr(cidr), node.name);
  }
  for (const text of node.nodeIPs) {
    let ip: IpAddr;
    try { ip = parseIp(text); } catch { continue; }
    occupySliceHolding(states, ip);
  }
}
