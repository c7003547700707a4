import { z } from "zod";
import { cel, canonicalCidrRules, clusterCrd, conditionsSchema, resourceSchema, type CrdSource } from "./common.js";

/**
 * PodCIDRPool: a range nodes get their pod CIDRs from. Pools can grow at runtime (append a CIDR) and
 * target nodes by label; the controller creates the "default" pool from its configuration.
 */
const familyPoolSchema = (maxPrefix: number, defaultPrefix: number) =>
  z
    .object({
      cidrs: z
        .array(z.string().min(4).max(49).meta(cel(...canonicalCidrRules))) // fd00::/8 is 8 characters
        .min(1)
        .max(16)
        .meta({ description: "Ranges to allocate from; append to grow the pool.", "x-kubernetes-list-type": "set" }),
      nodeMaskSize: z.number().int().min(1).max(maxPrefix).default(defaultPrefix).meta({
        description: `Prefix length of each node's CIDR (default ${defaultPrefix}); at most /${maxPrefix}: the node's bridge takes one address and its pods need more.`,
      }),
    })
    .meta(
      cel({
        rule: "self.cidrs.all(c, !isCIDR(c) || cidr(c).prefixLength() <= self.nodeMaskSize)",
        message: "nodeMaskSize must be at least the prefix length of every range (a node slice cannot be larger than its range)",
        fieldPath: ".nodeMaskSize",
      }),
    ).meta({ description: "Ranges of one IP family and the size of each node's slice of them." });

// A key or value no Node can carry would leave the pool selecting nothing, silently. The syntax of Kubernetes label
// keys (optional DNS-subdomain prefix up to 253 characters, then a name of up to 63) and values (a name, or empty).
// Character classes rather than escapes keep the rule readable in YAML. maxProperties bounds the map for the API
// server's CEL cost estimate (per key, times the keys): without it, 1.32.13's CRD validation prices these rules at
// 35× and 1.4× the budget and refuses the CRD; with 32 it takes them (checked against apiextensions-apiserver v0.32.13).
const LABEL_NAME = "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?";
const DNS_SUBDOMAIN = "[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
// The message cannot name the key: a messageExpression joining keys of unbounded length is priced past the budget.
const labelKeyRule = {
  rule: `self.all(k, k.matches('^(${DNS_SUBDOMAIN}/)?${LABEL_NAME}$') && k.indexOf('/') <= 253)`,
  message: "keys must be label keys: an optional DNS subdomain prefix (lower-case, at most 253 characters) and '/', then a name of 1-63 letters, digits, '-', '_' or '.' that begins and ends with a letter or digit; no node can carry another key",
};
const labelValueRule = {
  rule: `self.matches('^(${LABEL_NAME})?$')`,
  message: "must be a label value: empty, or at most 63 letters, digits, '-', '_' or '.' that begin and end with a letter or digit; no node can carry another value",
};

export const poolSpecSchema = z
  .object({
    ipv4: familyPoolSchema(30, 24).optional(),
    ipv6: familyPoolSchema(126, 64).optional(),
    nodeSelector: z
      .record(z.string().max(317), z.string().max(63).meta(cel(labelValueRule)))
      .optional()
      .meta({
        description: "Labels a node must carry to use this pool. Without one, the pool serves every node no other pool's selector matches; of several pools without one, only the oldest that has a valid range in each of its families does (the others say so in their Valid condition). At most 32 labels.",
        maxProperties: 32,
        ...cel(labelKeyRule),
      }),
  })
  .meta(
    cel(
      { rule: "has(self.ipv4) || has(self.ipv6)", message: "a pool needs ipv4 or ipv6 ranges" },
      {
        rule: "!has(self.ipv4) || self.ipv4.cidrs.all(c, !isCIDR(c) || cidr(c).ip().family() == 4)",
        message: "ipv4.cidrs must all be IPv4",
        fieldPath: ".ipv4.cidrs",
      },
      {
        rule: "!has(self.ipv6) || self.ipv6.cidrs.all(c, !isCIDR(c) || cidr(c).ip().family() == 6)",
        message: "ipv6.cidrs must all be IPv6",
        fieldPath: ".ipv6.cidrs",
      },
      {
        rule: "!has(oldSelf.ipv4) || (has(self.ipv4) && oldSelf.ipv4.cidrs.all(c, c in self.ipv4.cidrs) && self.ipv4.nodeMaskSize == oldSelf.ipv4.nodeMaskSize)",
        message: "ipv4 ranges can be added but not removed, and nodeMaskSize cannot change (nodes hold CIDRs from them)",
        fieldPath: ".ipv4",
      },
      {
        rule: "!has(oldSelf.ipv6) || (has(self.ipv6) && oldSelf.ipv6.cidrs.all(c, c in self.ipv6.cidrs) && self.ipv6.nodeMaskSize == oldSelf.ipv6.nodeMaskSize)",
        message: "ipv6 ranges can be added but not removed, and nodeMaskSize cannot change (nodes hold CIDRs from them)",
        fieldPath: ".ipv6",
      },
    ),
  );

const familyUsageSchema = z.object({
  size: z.string().max(40).meta({ description: "Node slices in the valid ranges (decimal; IPv6 counts exceed 2^53)." }),
  allocated: z.number().int().min(0).meta({ description: "Node slices not free: allocated, released in cooldown, quarantined, holding a node's IP, or inside a wider CIDR a node holds (capped at 2^53-1)." }),
  free: z.string().max(40).meta({ description: "Node slices left to hand out (decimal, as size)." }),
}).meta({ description: "Node slices of the family's valid ranges: how many, how many taken, how many free." });

export const poolStatusSchema = z.object({
  observedGeneration: z.number().int().min(0).optional().meta({ description: "metadata.generation the controller last wrote this status for." }),
  ipv4: familyUsageSchema.optional(),
  ipv6: familyUsageSchema.optional(),
  conditions: conditionsSchema.optional().meta({
    description: "Valid (every range usable, none overlapping another pool's), Exhausted (Nodes wait for a CIDR) and "
      + "PodAddresses (a node's slice holds the pods its Nodes admit).",
  }),
}).meta({ description: "Usage per family and conditions, written by the controller." });

const poolSpecDescription = "IPv4 and/or IPv6 ranges (dual-stack Nodes get one CIDR of each), and the Nodes the pool serves.";
export const poolSchema = resourceSchema("PodCIDRPool", poolSpecSchema.meta({ description: poolSpecDescription }), poolStatusSchema).meta({
  description: "A set of ranges Nodes get their pod CIDRs from, for the Nodes nodeSelector picks. The controller creates pool default from its "
    + "flags; ranges can be added, never removed.",
});

export type PoolSpec = z.infer<typeof poolSpecSchema>;
export type PoolStatus = z.infer<typeof poolStatusSchema>;

export const poolCrd: CrdSource = clusterCrd("PodCIDRPool", "pcpool", {
  schema: poolSchema,
  rootRules: [],
  printerColumns: [
    { name: "IPv4", type: "string", jsonPath: ".spec.ipv4.cidrs" },
    { name: "V4-Used", type: "integer", jsonPath: ".status.ipv4.allocated" },
    { name: "V4-Free", type: "string", jsonPath: ".status.ipv4.free" },
    { name: "IPv6", type: "string", jsonPath: ".spec.ipv6.cidrs" },
    { name: "V6-Used", type: "integer", jsonPath: ".status.ipv6.allocated" },
    { name: "V6-Free", type: "string", jsonPath: ".status.ipv6.free" },
    { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: "Valid", type: "string", jsonPath: '.status.conditions[?(@.type=="Valid")].status' },
    { name: "Exhausted", type: "string", jsonPath: '.status.conditions[?(@.type=="Exhausted")].status' },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
    { name: "Selector", type: "string", jsonPath: ".spec.nodeSelector", priority: 1 },
  ],
  selectableFields: [],
});
