import { z } from "zod";
import { maxNodeCidrPrefix, specialPurposeRanges } from "../lib/cidr.js";
import {
  cel, canonicalCidrRules, clusterCrd, conditionsSchema, ipFamilySchema, nodeIpRules, resourceSchema, type CelRule, type CrdSource,
} from "./common.js";

/**
 * What every agent would route: never a range the kernel treats specially (a node's "pod CIDR" over the
 * cloud's metadata address would take every node's traffic to it), nor a slice too small for a bridge and a pod.
 */
function nodeCidrRangeRules() {
  const list = (family: 4 | 6) => `[${specialPurposeRanges(family).map((r) => `'${r}'`).join(", ")}]`;
  return [
    {
      rule: `!isCIDR(self) || cidr(self).prefixLength() <= (cidr(self).ip().family() == 4 ? ${maxNodeCidrPrefix(4)} : ${maxNodeCidrPrefix(6)})`,
      message: `must be at most /${maxNodeCidrPrefix(4)} (IPv4) or /${maxNodeCidrPrefix(6)} (IPv6): the node's bridge takes one address and its pods need more`,
    },
    {
      rule: `!isCIDR(self) || !(cidr(self).ip().family() == 4 ? ${list(4)} : ${list(6)}).exists(r, cidr(r).containsCIDR(cidr(self)) || cidr(self).containsCIDR(cidr(r)))`,
      message: `must not overlap a special-purpose range (${[...specialPurposeRanges(4), ...specialPurposeRanges(6)].join(", ")})`,
    },
  ];
}

/**
 * The object's name is its CIDR spelt with '-' for '.', ':' and '/'. Only checked on a valid, canonical CIDR:
 * otherwise the cidr field's own rules say what is wrong, and a name derived from a bad CIDR would be no advice.
 * The message names the expected name; a root rule cannot point at metadata.name (fieldPath must be in the schema).
 */
function nameFromCidrRule(): CelRule {
  const cidr = "self.spec.cidr";
  const expected = `${cidr}.replace('.', '-').replace(':', '-').replace('/', '-')`;
  const validCidr = `isCIDR(${cidr}) && cidr(${cidr}).masked() == cidr(${cidr}) && ip.isCanonical(${cidr}.substring(0, ${cidr}.indexOf('/')))`;
  return {
    rule: `!(${validCidr}) || self.metadata.name == ${expected}`,
    message: "metadata.name must be spec.cidr with '.', ':' and '/' replaced by '-' (10.244.1.0/24 → 10-244-1-0-24)",
    messageExpression: `'metadata.name must be ' + ${expected} + ": spec.cidr with '.', ':' and '/' replaced by '-'"`,
  };
}

/** The Node address type a record's node IPs were mirrored from. */
export const nodeIPSourceSchema = z.enum(["InternalIP", "ExternalIP"]);
export type NodeIPSource = z.infer<typeof nodeIPSourceSchema>;

/**
 * NodeCIDR: one object per pod CIDR handed to a node. The object's name is derived from the CIDR
 * (10.244.1.0/24 → 10-244-1-0-24), so the API server itself refuses a second holder of the same CIDR.
 * A dual-stack node has two: one per family.
 */
export const nodeCidrSpecSchema = z
  .object({
    nodeName: z.string().min(1).max(253).meta({
      description: "Node this CIDR is allocated to.",
      ...cel({ rule: "self == oldSelf", message: "nodeName is immutable" }),
    }),
    cidr: z.string().min(4).max(49).meta({
      description: "Canonical pod CIDR of the node (no host bits).",
      ...cel({ rule: "self == oldSelf", message: "cidr is immutable" }, ...canonicalCidrRules, ...nodeCidrRangeRules()),
    }),
    family: ipFamilySchema.meta({
      description: "IP family of cidr.",
      ...cel({ rule: "self == oldSelf", message: "family is immutable" }),
    }),
    pool: z.string().min(1).max(253).meta({ description: "PodCIDRPool the CIDR was taken from." }),
    nodeIPs: z
      .array(z.string().min(2).max(45).meta(cel(...nodeIpRules)))
      .max(8)
      .optional()
      .meta({ description: "The node's InternalIPs, or its ExternalIPs when it has none, mirrored by the controller so agents watch only NodeCIDRs." }),
    nodeIPsFrom: nodeIPSourceSchema.optional().meta({
      description: "Which of the node's address types nodeIPs came from, written with them. A Node that stops listing InternalIPs keeps "
        + "InternalIP-sourced nodeIPs (a warning on the Node) instead of having its pods routed via its ExternalIPs. Absent on records "
        + "written before the field: the controller adds it once.",
    }),
    adopted: z.boolean().optional().meta({ description: "True when the CIDR came from node.spec.podCIDRs." }),
    nodeUID: z.string().min(1).max(64).optional().meta({
      description: "UID of the Node object it was allocated to: a Node registered again under the same name is another holder.",
      ...cel({ rule: "self == oldSelf", message: "nodeUID is immutable" }),
    }),
  })
  .meta({
    description: "The allocation, written by the controller: the CIDR, its Node and pool, and the Node's IPs that other nodes route it through. "
      + "nodeName, cidr, family and nodeUID never change.",
    ...cel({
      rule: "!isCIDR(self.cidr) || (self.family == 'IPv4') == (cidr(self.cidr).ip().family() == 4)",
      message: "family must match the address family of cidr",
      fieldPath: ".family",
    }),
  });

export const agentReportSchema = z.object({
  routesDesired: z.number().int().min(0).optional().meta({ description: "Routes to other nodes' pod CIDRs this node should have." }),
  routesInstalled: z.number().int().min(0).optional().meta({ description: "podnet's routes in the kernel after the last pass." }),
  routeConflicts: z.number().int().min(0).optional().meta({ description: "Pod CIDRs another owner already routes here; left alone (RoutesProgrammed names them)." }),
  unreachableNodes: z.number().int().min(0).optional().meta({ description: "Nodes this node has no path to (RoutesProgrammed names them)." }),
  overlayRoutes: z.number().int().min(0).optional().meta({ description: "Routes that go through the VXLAN overlay (nodes on another subnet)." }),
  cniConfigPath: z.string().max(4096).optional().meta({ description: "The CNI conflist the agent wrote on this node." }),
  mtu: z.number().int().min(0).max(65535).optional().meta({ description: "MTU of the pods' interfaces." }),
  lastSyncTime: z.iso.datetime().optional().meta({ description: "When the agent last wrote this report (written when something changes, not as a heartbeat)." }),
});

export const nodeCidrStatusSchema = z.object({
  phase: z.enum(["Allocated", "Released", "Quarantined"]).optional().meta({
    description: "Allocated: in use. Released: node gone, CIDR held through the cooldown. Quarantined: bad record, never used.",
  }),
  releasedAt: z.iso.datetime().optional().meta({
    description: "When the controller released the CIDR (its Node gone); it is handed out again once the release cooldown has passed since.",
  }),
  observedGeneration: z.number().int().min(0).optional().meta({ description: "metadata.generation the controller last wrote this status for." }),
  conditions: conditionsSchema.optional().meta({
    description: "Allocated (the controller's word: allocated, adopted, retained or quarantined, and why); Ready, RoutesProgrammed, "
      + "CNIConfigured, SysctlsReady, MasqueradeReady, FamiliesComplete and CNIConfigShadowed (the node agent's, on its own node's records).",
  }),
  agent: agentReportSchema.optional().meta({ description: "What the node agent last did on this node." }),
}).meta({ description: "What became of the allocation: the controller's phase and Allocated condition, the node agent's conditions and report." });

export const nodeCidrSchema = resourceSchema("NodeCIDR", nodeCidrSpecSchema, nodeCidrStatusSchema).meta({
  description: "A pod CIDR the podnet controller handed to a Node, one per IP family. Named after the CIDR (10.244.1.0/24 → 10-244-1-0-24), "
    + "so the API server refuses a second holder of one range. Node agents route it to its Node, whose agent reports in status.",
});

export type NodeCidrSpec = z.infer<typeof nodeCidrSpecSchema>;
export type NodeCidrStatus = z.infer<typeof nodeCidrStatusSchema>;
export type AgentReport = z.infer<typeof agentReportSchema>;

export const nodeCidrCrd: CrdSource = clusterCrd("NodeCIDR", "ncidr", {
  schema: nodeCidrSchema,
  rootRules: [nameFromCidrRule()],
  printerColumns: [
    { name: "Node", type: "string", jsonPath: ".spec.nodeName" },
    { name: "CIDR", type: "string", jsonPath: ".spec.cidr" },
    // The first node IP reads as an address; the whole list prints as a JSON array, so it is -o wide only.
    { name: "Node-IP", type: "string", jsonPath: ".spec.nodeIPs[0]" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
    { name: "Family", type: "string", jsonPath: ".spec.family", priority: 1 },
    { name: "Pool", type: "string", jsonPath: ".spec.pool", priority: 1 },
    { name: "Node-IPs", type: "string", jsonPath: ".spec.nodeIPs", priority: 1 },
    // The controller's word on the allocation: Allocated / Adopted, or why it is retained or quarantined.
    { name: "Allocation", type: "string", jsonPath: '.status.conditions[?(@.type=="Allocated")].reason', priority: 1 },
    { name: "Routes", type: "integer", jsonPath: ".status.agent.routesInstalled", priority: 1 },
    { name: "CNI", type: "string", jsonPath: '.status.conditions[?(@.type=="CNIConfigured")].reason', priority: 1 },
    { name: "Reason", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].reason', priority: 1 },
  ],
  selectableFields: [".spec.nodeName", ".spec.family", ".spec.pool"],
});
