import { parseArgs } from "node:util";
import { z } from "zod";
import { canonicalCidr, cidrsOverlap, InvalidCidrError, parseCidr, specialPurposeOverlap } from "./lib/cidr.js";
import { splitHostPort } from "./lib/health.js";

/** "500ms", "30s", "2m", "1h" or a bare number of seconds → milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new Error(`invalid duration "${text}" (examples: 500ms, 30s, 2m)`);
  const factor = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[(match[2] ?? "s") as "ms" | "s" | "m" | "h"];
  return Math.round(Number(match[1]) * factor);
}

const duration = z.string().transform((text, ctx) => {
  try { return parseDuration(text); } catch (err) { ctx.addIssue({ code: "custom", message: (err as Error).message }); return z.NEVER; }
});
/**
 * Bounded: 0 would make a resync or retry loop spin, and past 2^31−1 ms Node fires a timer after 1 ms (with a
 * warning in the JSON logs), which spins just the same.
 */
const MAX_TIMER_MS = 2_147_483_647;
const formatMs = (ms: number) => (ms % 1000 ? `${ms}ms` : `${ms / 1000}s`);
const durationWithin = (minMs: number, maxMs = MAX_TIMER_MS) => duration.pipe(z.number()
  .min(minMs, `must be at least ${formatMs(minMs)}`).max(maxMs, "must be below 596h (Node's longest timer)"));
const boolean = z.enum(["true", "false"]).transform((v) => v === "true");
const cidrList = z.string().transform((text, ctx) => {
  const items = text.split(",").map((s) => s.trim()).filter(Boolean);
  try { return items.map((c) => canonicalCidr(c)); } catch (err) {
    ctx.addIssue({ code: "custom", message: err instanceof InvalidCidrError ? err.message : String(err) });
    return z.NEVER;
  }
});
// Checked here, not when the server starts: a bad address is a bad flag (exit 2, named), not a failed start.
const listenAddress = z.string().superRefine((text, ctx) => {
  try { splitHostPort(text); } catch (err) { ctx.addIssue({ code: "custom", message: (err as Error).message }); }
});
// Decimal only: z.coerce.number read "0x1F" as 31 and an empty "--mtu=" as 0. Helm prints a value of a million
// or more as 1.6777215e+07, so that form is taken (and must still be whole).
const int = (min: number, max: number) => z.union([z.number(), z.string().regex(/^\d+(\.\d+)?(e\+?\d+)?$/i, "must be a whole number")])
  .transform(Number).pipe(z.number().int().min(min).max(max));

export const controllerConfigSchema = z.object({
  kubeconfig: z.string().optional(),
  "cluster-cidr": cidrList.prefault("10.244.0.0/16"),
  // As the pool's schema: a node's bridge takes one address of its slice, and its pods need more.
  "node-mask-v4": int(8, 30).prefault(24),
  "node-mask-v6": int(16, 126).prefault(64),
  "service-cidr": cidrList.prefault("10.96.0.0/12"),
  "release-cooldown": durationWithin(0).prefault("60s"),
  "fill-node-podcidrs": boolean.prefault("true"),
  "leader-elect": boolean.prefault("true"),
  "lease-namespace": z.string().prefault("kube-system"),
  "lease-name": z.string().prefault("podnet-controller"),
  "lease-duration": durationWithin(1_000).prefault("15s"),
  "renew-deadline": durationWithin(100).prefault("10s"),
  "retry-period": durationWithin(100).prefault("2s"),
  "resync-period": durationWithin(1_000).prefault("60s"),
  "metrics-address": listenAddress.prefault(":9090"),
  "default-pool": z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, "must be a Kubernetes object name (lower-case letters, digits, '-' and '.')").prefault("default"),
}).superRefine((c, ctx) => {
  // The default pool is made from these: one the API server refuses leaves the controller Ready and no Node served.
  if (c["cluster-cidr"].length === 0) ctx.addIssue({ code: "custom", path: ["cluster-cidr"], message: "at least one range is required" });
  for (const range of c["cluster-cidr"]) {
    const cidr = parseCidr(range);
    const mask = c[`node-mask-v${cidr.family}`];
    if (cidr.prefix > mask) ctx.addIssue({ code: "custom", path: ["cluster-cidr"], message: `${range} is smaller than one node's slice (--node-mask-v${cidr.family}=${mask})` });
    // What the pool would refuse for good: a pool's range cannot be removed once created, so say it now.
    const service = c["service-cidr"].find((s) => cidrsOverlap(parseCidr(s), cidr));
    if (service) ctx.addIssue({ code: "custom", path: ["cluster-cidr"], message: `${range} overlaps --service-cidr ${service}` });
    const special = specialPurposeOverlap(cidr);
    if (special) ctx.addIssue({ code: "custom", path: ["cluster-cidr"], message: `${range} overlaps ${special}, which pods cannot use` });
  }
  // As client-go requires: a leader must give up (renew deadline) before others may take over (lease
  // duration), and get more than one try at renewing before that.
  if (c["leader-elect"] && !(c["lease-duration"] > c["renew-deadline"] && c["renew-deadline"] > 1.2 * c["retry-period"])) {
    ctx.addIssue({ code: "custom", path: ["renew-deadline"], message: `must be below --lease-duration (${c["lease-duration"]} ms) and above 1.2 × --retry-period (${c["retry-period"]} ms); it is ${c["renew-deadline"]} ms` });
  }
});
export type ControllerConfig = z.infer<typeof controllerConfigSchema>;

export const agentConfigSchema = z.object({
  kubeconfig: z.string().optional(),
  "node-name": z.string({ error: "node name is required (--node-name or NODE_NAME)" }).min(1, "node name is required (--node-name or NODE_NAME)"),
  "cni-conf-dir": z.string().prefault("/etc/cni/net.d"),
  "cni-bin-dir": z.string().prefault("/opt/cni/bin"),
  "conflist-name": z.string().regex(/^[\w.-]+\.conflist$/, "must be a file name ending in .conflist").prefault("10-podnet.conflist"),
  // host-local's lease files (one per pod address). On tmpfs, as kindnet keeps them: a reboot ends every pod
  // without a CNI DEL, and leases kept on disk would then fill the node's range for good.
  "ipam-data-dir": z.string().prefault("/run/cni-ipam-state"),
  mtu: int(0, 65535).refine((v) => v === 0 || v >= 576, "must be 0 (the node's own) or 576 to 65535").prefault(0),
  masquerade: boolean.prefault("true"),
  // Destinations pods reach with their own address although they lie outside the pod network (a peered or
  // on-premises range that routes the pod ranges back), as ip-masq-agent's nonMasqueradeCIDRs.
  "no-masquerade-cidrs": cidrList.prefault(""),
  // auto: direct routes to nodes on a shared subnet, VXLAN to the rest; vxlan: everything encapsulated;
  // none: only direct routes (nodes behind a router are reported unreachable).
  overlay: z.enum(["auto", "vxlan", "none"]).prefault("auto"),
  "vxlan-id": int(1, 16_777_215).prefault(1),
  "vxlan-port": int(1, 65_535).prefault(8472),
  // Where the node's per-device IPv4 settings are (reverse-path filtering, reverse-path.ts): the chart mounts
  // the host's here, since a container's /proc/sys is read-only.
  "ipv4-conf-dir": z.string().prefault("/proc/sys/net/ipv4/conf"),
  "resync-period": durationWithin(1_000).prefault("30s"),
  "metrics-address": listenAddress.prefault(":9091"),
  "dry-run": boolean.prefault("false"),
  // Clear the Node's NetworkUnavailable condition (and so the network-unavailable taint) once this node
  // can network pods; off for clusters where another component owns that condition.
  "clear-network-unavailable": boolean.prefault("true"),
  // A node whose pool serves two families waits this long for the second family's NodeCIDR before its first
  // CNI config (pods started with one family keep it for life); then it networks pods with what it has.
  "family-grace-period": durationWithin(0).prefault("10s"),
  // Program a named network namespace instead of the agent's own: the local cluster runs every agent on the
  // host (where the apiserver listens on loopback) and points each at its node's namespace.
  netns: z.string().optional(),
  // Where the node lock lives (node-lock.ts): a directory only root writes to, shared by the agent and cleanup.
  "lock-dir": z.string().min(1).prefault("/run/podnet"),
});
export type AgentConfig = z.infer<typeof agentConfigSchema>;

/**
 * `podnet agent cleanup`: what podnet put on a node is found by podnet's own marks (route protocol, device and
 * table names, the conflist's network name), not by the node's name, so cleanup needs none.
 */
export const agentCleanupConfigSchema = agentConfigSchema.pick({ "cni-conf-dir": true, "conflist-name": true, netns: true, "lock-dir": true })
  .extend({
    "node-name": z.string().optional(),
    // How long to wait for an agent still running on the node to stop (a pod of a DaemonSet being deleted)
    // before giving up with an error; 0: give up at once.
    "wait-for-agent": durationWithin(0).prefault("60s"),
  });
export type AgentCleanupConfig = z.infer<typeof agentCleanupConfigSchema>;

/** A command line or environment the program cannot run with: the CLI prints it and exits 2, as for a usage error. */
export class ConfigError extends Error {}
/** A ConfigError about the command line's flags, which `--help` lists. */
export class FlagError extends ConfigError {}

const envName = (key: string) => `PODNET_${key.toUpperCase().replaceAll("-", "_")}`;

/**
 * Flags (--name=value or --name value) override env vars (PODNET_NAME, NODE_NAME for node-name);
 * zod reports every bad value with the flag's name.
 */
export function loadConfig<S extends z.ZodObject>(schema: S, argv: string[], env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const keys = Object.keys(schema.shape);
  let values: Record<string, string | undefined>;
  try {
    argv = withBareSwitches(schema, argv);
    values = parseArgs({ args: argv, options: Object.fromEntries(keys.map((k) => [k, { type: "string" as const }])), strict: true, allowPositionals: false }).values as typeof values;
  } catch (err) {
    throw new FlagError((err as Error).message); // node names the unknown flag or stray argument
  }
  const raw: Record<string, string> = {};
  const named = new Map<string, string>(); // where a value came from, for the error: the flag or the env var
  // An empty variable counts as unset (a manifest's `value: ""`): it must not hide NODE_NAME or a default.
  const set = (v: string | undefined) => (v === "" ? undefined : v);
  for (const key of keys) {
    const [value, from] = values[key] !== undefined ? [values[key], `--${key}`]
      : set(env[envName(key)]) !== undefined ? [env[envName(key)], envName(key)]
        : key === "node-name" && set(env.NODE_NAME) !== undefined ? [env.NODE_NAME, "NODE_NAME"] : [undefined, ""];
    if (value !== undefined) { raw[key] = value; named.set(key, from); }
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => { const key = i.path.join("."); return `${named.get(key) ?? `--${key}`}: ${i.message}`; }).join("; ");
    throw new FlagError(`invalid configuration: ${problems}`);
  }
  return parsed.data;
}

/** A flag that takes exactly true or false. */
const isSwitch = (field: z.ZodType) => field.safeParse("true").success && field.safeParse("false").success && !field.safeParse("maybe").success;

/** `--dry-run` alone means `--dry-run=true`, as for most CLIs; `--dry-run false` and `--dry-run=false` still work. */
function withBareSwitches(schema: z.ZodObject, argv: string[]): string[] {
  return argv.map((arg, i) => {
    const key = /^--([a-z0-9-]+)$/.exec(arg)?.[1];
    const field = key === undefined ? undefined : (schema.shape[key] as z.ZodType | undefined);
    if (!field || !isSwitch(field)) return arg;
    const next = argv[i + 1];
    return next === "true" || next === "false" ? arg : `${arg}=true`;
  });
}

/** One line per flag for `podnet <command> --help`: its env var and the default it gets when unset. */
export function describeFlags(schema: z.ZodObject): string {
  const width = Math.max(...Object.keys(schema.shape).map((k) => k.length));
  return Object.entries(schema.shape).map(([key, field]) => {
    const def = (field as z.ZodType)._zod.def as { type: string; defaultValue?: unknown };
    const fallback = def.type === "prefault" ? ` (default ${def.defaultValue === "" ? "empty" : String(def.defaultValue)})` : "";
    const env = key === "node-name" ? `${envName(key)} or NODE_NAME` : envName(key);
    return `  --${key.padEnd(width)}  env ${env}${fallback}`;
  }).join("\n");
}
