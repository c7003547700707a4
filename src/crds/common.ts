import { z } from "zod";

export const GROUP = "podnet.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

/** CEL rule attached to a schema node; it lands in the CRD as x-kubernetes-validations. */
export interface CelRule {
  rule: string;
  message: string;
  /** CEL building the message from the object (the value that would pass, say); `message` stands when it fails. */
  messageExpression?: string;
  reason?: "FieldValueInvalid" | "FieldValueForbidden" | "FieldValueRequired" | "FieldValueDuplicate";
  fieldPath?: string;
}

export const cel = (...rules: CelRule[]) => ({ "x-kubernetes-validations": rules });

/** metav1.Condition, as Kubernetes API conventions describe it. */
export const conditionSchema = z.object({
  type: z.string().min(1).max(316).meta({ description: "What the condition is about; one condition of each type." }),
  status: z.enum(["True", "False", "Unknown"]).meta({ description: "Whether the condition holds; Unknown when it cannot be told." }),
  reason: z.string().min(1).max(1024).meta({ description: "Why, as one CamelCase word for tools and alerts." }),
  message: z.string().max(32768).meta({ description: "Why, for people: what is wrong and what to do about it." }),
  observedGeneration: z.number().int().min(0).optional().meta({ description: "metadata.generation of the object the condition was set for." }),
  lastTransitionTime: z.iso.datetime().meta({ description: "When status last changed." }),
});
export type Condition = z.infer<typeof conditionSchema>;

/** Conditions as a map keyed by type, so the controller and the agent can each own theirs under SSA. */
export const conditionsSchema = z
  .array(conditionSchema)
  .max(32)
  .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] });

/** Printer column of a CRD version (apiextensions.k8s.io/v1 CustomResourceColumnDefinition). */
export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description?: string;
  priority?: number;
}

/** Everything generate.ts needs to turn a zod schema into a CustomResourceDefinition. */
export interface CrdSource {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  categories: string[];
  scope: "Cluster" | "Namespaced";
  schema: z.ZodType;
  rootRules: CelRule[];
  printerColumns: PrinterColumn[];
  selectableFields: string[];
}

export const ipFamilySchema = z.enum(["IPv4", "IPv6"]);
export type IpFamilyName = z.infer<typeof ipFamilySchema>;

// CEL rules on CIDR/IP strings. Canonical text (no host bits, RFC 5952) keeps one spelling per CIDR, which
// is what makes "object name = CIDR" a uniqueness guarantee enforced by the API server.
export const canonicalCidrRules: CelRule[] = [
  { rule: "isCIDR(self)", message: "must be a CIDR such as 10.244.1.0/24 or fd00:10:244:1::/64" },
  {
    rule: "!isCIDR(self) || cidr(self).masked() == cidr(self)",
    message: "must not have host bits set (use the network address, e.g. 10.244.1.0/24)",
  },
  {
    rule: "!isCIDR(self) || ip.isCanonical(self.substring(0, self.indexOf('/')))",
    message: "must be written canonically (lower-case, compressed IPv6, no leading zeros)",
  },
];

export const nodeIpRules: CelRule[] = [
  { rule: "isIP(self)", message: "must be an IP address" },
  {
    rule: "!isIP(self) || ip(self).isGlobalUnicast()",
    message: "must be a unicast node address (not loopback, link-local, multicast or unspecified)",
  },
];

/** The top-level object schema every podnet kind shares: apiVersion/kind/metadata around spec and status. */
export function resourceSchema<K extends string, S extends z.ZodType, T extends z.ZodType>(kind: K, spec: S, status: T) {
  return z.object({
    apiVersion: z.literal(API_VERSION).optional(),
    kind: z.literal(kind).optional(),
    metadata: z.object({}).loose(),
    spec,
    status: status.optional(),
  });
}

/** CRD naming shared by podnet's cluster-scoped kinds: plural = lower-case kind + "s", category "podnet". */
export function clusterCrd(kind: string, shortName: string, rest: Pick<CrdSource, "schema" | "rootRules" | "printerColumns" | "selectableFields">): CrdSource {
  const singular = kind.toLowerCase();
  return { kind, plural: `${singular}s`, singular, shortNames: [shortName], categories: ["podnet"], scope: "Cluster", ...rest };
}
