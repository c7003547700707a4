import { tryParseCidr, type Cidr } from "../lib/cidr.js";
import { DisjointCidrs } from "../lib/cidr-index.js";
import { buildPoolStates, findSet, hold, notePodCapacity, poolStatusReports, recordProblem, retainedClash, type PlannerPool, type PoolState, type PoolStatusReport } from "./plan-pools.js";
import type { PoolStates } from "./pool-states.js";
import { byFamily, planFamilies, reserveNodeRanges, type FamilyPlan } from "./plan-families.js";
import { compareText, sooner } from "../lib/order.js";
import { mirroredNodeIPs, sameList, sharedNodeIPs, usableNodeIPs } from "./plan-node-ips.js";
import { podCidrConditionActions, podCidrMismatches } from "./plan-node-condition.js";
import { claimsOfDeleted, holdUnrestored, recordOfThisNode, type DeletedRecord } from "./plan-deleted.js";

export type { DeletedRecord, PlannerPool, PoolStatusReport };

export type { AllocationAction, AllocationPlan, Held, PlannerConfig, PlannerInput, PlannerNode, PlannerRecord } from "./plan-types.js";
import type { AllocationAction, AllocationPlan, Held, PlannerConfig, PlannerInput, PlannerNode, PlannerRecord } from "./plan-types.js";

/**
 * Problems a pool edit can give a record the controller had already allocated: its pool deleted, its range
 * taken out of the pool, the pool made invalid, the pool's node mask changed. Quarantining it would cut its
 * node's pods off (agents route only Allocated records), so a bad pool edit would take down every node it
 * touches. Such a record is retained instead: still Allocated and routed, its CIDR out of circulation, the
 * reason on its Allocated condition and an Event, until its node goes (released as usual) or the pool
 * covers it again. Hand-made records that were never allocated are still quarantined, and so is one that
 * overlaps a record kept or is its node's second of a family (status restored from a backup says Allocated of
 * records the controller never made): agents route neither of two overlapping records.
 */
const RETAINED = new Set(["PoolNotFound", "OutsidePool", "WrongSize"]);

/**
 * Pure allocation planner: full observed state → actions. Deterministic (records and nodes in name order),
 * so two consecutive plans over the same state agree, and a CIDR is never planned for two holders.
 *
 * Record rules: a record whose Node object is gone (not merely marked for deletion) is Released (agents drop
 * routes to it) and deleted once the cooldown has passed since this replica saw the release — this also covers
 * quarantined orphans. Until then its CIDR stays taken.
 */
export function planAllocations(input: PlannerInput): AllocationPlan {
  const { config, now, monotonicNow } = input;
  const states = buildPoolStates(input.pools, config.serviceCIDRs, input.records.filter((r) => r.phase === "Allocated" || r.phase === "Released"));
  // A Node with a deletionTimestamp may run pods for minutes yet (a finalizer drains it, as Karpenter's does):
  // its CIDR stays Allocated and routed until the object is gone, so it is neither released nor reused early.
  // It gets no new CIDR, though.
  const { usable, warnings } = usableNodeIPs(input.nodes);
  const { mirrored, warnings: mirrorWarnings } = mirroredNodeIPs(usable, input.records);
  const present = new Map(mirrored.map((n) => [n.name, n]));
  const nodes = new Map(mirrored.filter((n) => !n.deleting).map((n) => [n.name, n]));
  const actions: AllocationAction[] = [...warnings, ...mirrorWarnings];
  const held = new Map<string, Held[]>(); // node → kept live records
  const holderOf = new Map<string, string>(); // cidr → node, for conflict messages
  let nextCheckAt: number | undefined;
  let retained = 0;

  // Of two claims alike, an allocation its pool covers (or would, re-homed) wins over one only retained, then the
  // one the Node names in spec.podCIDRs: kubelet already hands out its addresses. Then the older record (agents keep
  // the older of two ranges of one family in their CNI config), then the name. Ranked once per record, not in
  // each of the sort's comparisons.
  const ranked = input.records.map((r) => {
    const cidr = tryParseCidr(r.cidr);
    return { r, cidr, rank: CLAIM_ORDER[r.phase ?? "unconfirmed"]! * 4 + (covered(r, cidr, states) ? 0 : 2) + (present.get(r.nodeName)?.podCIDRs.includes(r.cidr) ? 0 : 1) };
  });
  const kept = new DisjointCidrs(); // the live records' CIDRs
  const age = (r: PlannerRecord) => r.createdAt ?? Number.MAX_SAFE_INTEGER;
  for (const claim of ranked.sort((a, b) => a.rank - b.rank || age(a.r) - age(b.r) || compareText(a.r.name, b.r.name))) {
    let r = claim.r;
    const cidr = claim.cidr;
    if (r.phase === "Released") {
      // Released with no time (a hand edit): stamped, and its cooldown starts once the stamped release is seen.
      if (r.releasedAt === undefined) actions.push({ kind: "release", name: r.name, nodeName: r.nodeName });
      const due = (r.releasedAt === undefined ? monotonicNow : r.releaseSeenAt ?? monotonicNow) + config.cooldownMs;
      // Deleted in this plan, its slice stays taken until the next one: a create of the same CIDR is a create of the
      // same object name, sent beside the delete, and met the old object (AlreadyExists, an error and a backoff).
      // The delete's success has the controller plan again at once.
      if (due <= monotonicNow) actions.push({ kind: "delete", name: r.name });
      else nextCheckAt = sooner(nextCheckAt, due);
      if (cidr) hold(states, cidr, r.nodeName, holderOf);
      continue;
    }
    // A Node deleted and registered again under its name while the controller was away is another holder: its
    // predecessor's CIDR goes through release and cooldown, as when the deletion is seen.
    const holder = present.get(r.nodeName);
    if (!holder || !recordOfThisNode(holder, r)) {
      actions.push({ kind: "release", name: r.name, nodeName: r.nodeName });
      nextCheckAt = sooner(nextCheckAt, monotonicNow + config.cooldownMs);
      if (cidr) hold(states, cidr, r.nodeName, holderOf);
      continue;
    }
    if (r.phase === "Quarantined") { if (cidr) hold(states, cidr, r.nodeName, holderOf); continue; }
    // A record from before podnet kept the uid learns it, so a later re-registration is told apart.
    if (!r.nodeUID && holder.uid) actions.push({ kind: "stampNodeUID", name: r.name, nodeUID: holder.uid });
    // An allocation whose pool was deleted, its CIDR a slice of another pool's range (a pool replaced under
    // another name): that pool's now, rather than retained outside every pool for as long as its Node lives.
    // (A hand-made record naming no pool that exists is still quarantined.)
    // Not where a record kept there overlaps it: it is quarantined below as Overlapping, unmoved. A second CIDR
    // of its family for the Node is re-homed all the same, and quarantined there as before.
    const home = cidr && r.phase === "Allocated" && !states.has(r.pool) ? findSet(states, cidr)?.state.pool.name : undefined;
    const problemThere = home ? recordProblem({ ...r, pool: home }, cidr, states, held) : undefined;
    const rehomed = home && problemThere?.reason !== "Overlapping" ? { ...r, pool: home } : undefined;
    if (rehomed) actions.push({ kind: "rehome", name: r.name, node: r.nodeName, cidr: r.cidr, from: r.pool, pool: rehomed.pool });
    r = rehomed ?? r;
    const problem = rehomed ? problemThere : recordProblem(r, cidr, states, held);
    const retainable = problem && r.phase === "Allocated" && RETAINED.has(problem.reason);
    const clash = retainable ? retainedClash(r, cidr!, kept, held) : undefined;
    if (problem && (!retainable || clash)) {
      actions.push({ kind: "quarantine", name: r.name, ...(clash ?? problem) });
      if (cidr) hold(states, cidr, r.nodeName, holderOf);
      continue;
    }
    let statusWritten = false;
    if (problem) {
      retained++;
      hold(states, cidr!, r.nodeName, holderOf); // no retained problem comes from an unparsable CIDR
      if (r.allocatedReason !== problem.reason) {
        statusWritten = true;
        actions.push({ kind: "retain", name: r.name, reason: problem.reason, message: `${problem.message}; kept for node ${r.nodeName}, which still uses it, until that node goes` });
      }
    } else {
      findSet(states, cidr!, states.get(r.pool))!.set.occupy(cidr!);
      holderOf.set(r.cidr, r.nodeName);
      // Unconfirmed (its creator died before the status write), or retained and now covered by its pool again.
      statusWritten = r.phase === undefined || Boolean(rehomed) || RETAINED.has(r.allocatedReason ?? "");
      if (statusWritten) actions.push({ kind: "confirm", name: r.name, node: r.nodeName, cidr: r.cidr, pool: r.pool });
    }
    // A spec patch of the controller's own (node IPs, the uid) left observedGeneration behind, and kstatus-style
    // health checks (Flux, cli-utils) read a record so as still in progress, for as long as it lived.
    if (r.statusBehind && !statusWritten) actions.push({ kind: "refreshStatus", name: r.name });
    held.set(r.nodeName, [...(held.get(r.nodeName) ?? []), { cidr: r.cidr, family: r.family }]);
    kept.add(cidr!);
    // As mirroredNodeIPs has them; a record from before nodeIPsFrom learns it with one write.
    const { nodeIPs, nodeIPsFrom } = present.get(r.nodeName)!;
    if (nodeIPs.length && (!sameList(nodeIPs, r.nodeIPs) || (nodeIPsFrom && nodeIPsFrom !== r.nodeIPsFrom))) {
      actions.push({ kind: "updateNodeIPs", name: r.name, nodeIPs, ...(nodeIPsFrom ? { nodeIPsFrom } : {}) });
    }
  }

  const deleted = claimsOfDeleted(input.deleted ?? [], { nodes, held, states, holderOf, liveCidrs: new Set(input.records.map((r) => r.cidr)), cooldownMs: config.cooldownMs, monotonicNow });
  nextCheckAt = sooner(nextCheckAt, deleted.nextCheckAt);
  const ordered = [...nodes.values()].sort((a, b) => compareText(a.name, b.name));
  // Every Node that already names its range (kubelet and kube-proxy use it) gets that range before any
  // newcomer is handed the lowest free one, whatever the names' order.
  const poolOf = new Map(ordered.map((node) => [node.name, states.selectPool(node.labels)]));
  notePodCapacity(ordered, poolOf);
  // A hand-deleted record's CIDR goes back to its node first, as if the record were still there: another Node
  // naming that range (a second allocator) is then in conflict with it, as with any record held.
  const restored = new Map<string, FamilyPlan>();
  for (const node of ordered.filter((n) => deleted.restore.has(n.name))) {
    const lost = deleted.restore.get(node.name)!;
    restored.set(node.name, planFamilies(node, poolOf.get(node.name), states, held, holderOf, "restore", lost));
    nextCheckAt = sooner(nextCheckAt, holdUnrestored(lost, restored.get(node.name)!.actions, node, states, holderOf));
  }
  const adoptions = new Map(ordered.map((node) => [node.name, withRestored(planFamilies(node, poolOf.get(node.name), states, held, holderOf, "adopt"), restored.get(node.name))]));
  for (const node of present.values()) reserveNodeRanges(node, states, held, holderOf);
  for (const node of ordered) actions.push(...planNode(node, poolOf.get(node.name), states, held, holderOf, config, adoptions.get(node.name)!));
  actions.push(...sharedNodeIPs([...nodes.values()]));
  actions.push(...podCidrConditionActions(ordered, actions, now));
  return { actions, poolStatuses: poolStatusReports(states), retained, ...(nextCheckAt !== undefined ? { nextCheckAt } : {}) };
}


/** A node's adoptions with what its restore pass gave back, in family order. */
function withRestored(adoption: FamilyPlan, restoring: FamilyPlan | undefined): FamilyPlan {
  if (!restoring?.actions.length) return adoption;
  return { actions: [...restoring.actions, ...adoption.actions].sort(byFamily), created: true, incomplete: adoption.incomplete };
}

function planNode(node: PlannerNode, state: PoolState | undefined, states: PoolStates, held: Map<string, Held[]>, holderOf: Map<string, string>, config: PlannerConfig, adoption: FamilyPlan): AllocationAction[] {
  // A node that holds its CIDRs (retained after its pool went, or its pool's selector changed) needs nothing from
  // a pool; its podCIDRs are still filled from them, and checked against them, below.
  const heldBefore = held.get(node.name) ?? [];
  if (!state && heldBefore.length === 0) return [{ kind: "conflict", node: node.name, reason: "NoPodCIDRPool", message: `no PodCIDRPool selects node ${node.name} (labels ${JSON.stringify(node.labels)})` }];
  const mismatches = podCidrMismatches(node, adoption.created ? heldBefore.filter((h) => !adoption.actions.some((a) => a.kind === "create" && a.cidr === h.cidr)) : heldBefore, config.fillNodePodCIDRs);
  const allocation = planFamilies(node, state, states, held, holderOf, "allocate");
  const familyActions = adoption.actions.length && allocation.actions.length ? [...adoption.actions, ...allocation.actions].sort(byFamily) : adoption.actions.length ? adoption.actions : allocation.actions;
  const actions = mismatches.length ? [...mismatches, ...familyActions] : familyActions;
  const mine = held.get(node.name) ?? [];
  // Filled only from records that exist: a create planned now may yet fail (its CIDR taken meanwhile, a
  // rejected object), and spec.podCIDRs cannot be changed once set. The next plan, moments later, fills it.
  const created = adoption.created || allocation.created;
  if (config.fillNodePodCIDRs && !created && !adoption.incomplete && !allocation.incomplete && node.podCIDRs.length === 0 && mine.length > 0) {
    actions.push({ kind: "setNodePodCIDRs", node: node.name, nodeUID: node.uid, cidrs: [...mine].sort((a, b) => a.family - b.family).map((h) => h.cidr) });
  }
  return actions;
}

/** An Allocated record its pool's ranges hold as a slice, or, its pool gone, another pool's (it is re-homed there). */
function covered(r: PlannerRecord, cidr: Cidr | undefined, states: PoolStates): boolean {
  return r.phase !== "Allocated" || (cidr !== undefined && findSet(states, cidr, states.get(r.pool)) !== undefined);
}

/**
 * Order in which records claim their CIDRs: the controller's own live allocations first, then releases in
 * cooldown, unconfirmed creates, and known-bad records last. A stray hand-made record (a /16, a second CIDR
 * for a node) therefore never wins a range over a live allocation just because its name sorts first.
 */
const CLAIM_ORDER: Record<string, number> = { Allocated: 0, Released: 1, unconfirmed: 2, Quarantined: 3 };
