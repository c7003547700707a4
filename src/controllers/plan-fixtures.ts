/** Test inputs for the allocation planner's table tests. */
import type { AllocationAction, PlannerInput, PlannerNode, PlannerPool, PlannerRecord } from "./plan.js";

// Every node name its own address (two Nodes sharing one is a finding of its own).
const ips = new Map<string, string>();
const ipOf = (name: string) => { if (!ips.has(name)) ips.set(name, `192.168.${ips.size >> 8}.${(ips.size & 255) + 1}`); return ips.get(name)!; };
export const node = (name: string, extra: Partial<PlannerNode> = {}): PlannerNode => ({ name, uid: name, labels: {}, podCIDRs: [], nodeIPs: [ipOf(name)], deleting: false, ...extra });
export const rec = (nodeName: string, cidr: string, extra: Partial<PlannerRecord> = {}): PlannerRecord => ({
  name: cidr.replace(/[.:/]/g, "-"), nodeName, nodeUID: nodeName, cidr, family: cidr.includes(":") ? 6 : 4, pool: "default", nodeIPs: [ipOf(nodeName)], phase: "Allocated", ...extra,
});
export const pool = (v4?: string[], extra: Partial<PlannerPool> = {}, prefix = 24): PlannerPool => ({ name: "default", nodeSelector: {}, ...(v4 ? { v4: { cidrs: v4, nodePrefix: prefix } } : {}), ...extra });
export const input = (p: Partial<PlannerInput>): PlannerInput => ({
  nodes: [], records: [], pools: [pool(["10.244.0.0/16"])], now: 1_000_000, monotonicNow: 1_000_000, ...p,
  config: { cooldownMs: 60_000, serviceCIDRs: ["10.96.0.0/12"], fillNodePodCIDRs: false, ...p.config },
});
export const kinds = (actions: AllocationAction[]) => actions.map((a) => `${a.kind}:${"cidr" in a ? a.cidr : "name" in a ? a.name : a.node}`);

