import { isDeepStrictEqual } from "node:util";
import { z } from "zod";
import { cidrsOverlap, parseCidr, tryParseCidr } from "../lib/cidr.js";
import { compareText } from "../lib/order.js";

export interface ConflistInput {
  cniVersion: string;
  podCidrs: string[];
  mtu: number;
  bridgeName?: string;
  networkName?: string;
  /** host-local state dir; per node when several "nodes" share one machine (local cluster). */
  ipamDataDir?: string;
}

/** The bridge podnet's conflist names: podnet owns it (its addresses are the gateways of this node's pod CIDRs). */
export const BRIDGE_NAME = "podnet0";

const conflistSchema = z.object({
  cniVersion: z.string().regex(/^\d+\.\d+\.\d+$/),
  name: z.string().min(1),
  loadOnlyInlinedPlugins: z.literal(true),
  plugins: z.tuple([
    z.object({
      type: z.literal("bridge"), bridge: z.string().min(1).max(15), isGateway: z.literal(true), ipMasq: z.literal(false),
      hairpinMode: z.boolean(), mtu: z.number().int().min(576).max(65535),
      ipam: z.object({
        type: z.literal("host-local"),
        ranges: z.array(z.array(z.object({ subnet: z.string() })).length(1)).min(1).max(2),
        routes: z.array(z.object({ dst: z.string() })).min(1),
        dataDir: z.string().optional(),
      }),
    }),
    z.object({ type: z.literal("portmap"), capabilities: z.object({ portMappings: z.literal(true) }), snat: z.boolean() }),
  ]),
});
export type Conflist = z.infer<typeof conflistSchema>;

/** The conflist's network name: host-local keeps this network's leases in `<dataDir>/podnet`. */
export const POD_NETWORK_NAME = "podnet";

/**
 * Pure: this node's pod CIDRs → the CNI network config list. Masquerade is left to the agent's nft table
 * (ipMasq false) so pod→pod traffic is never NATed; every family gets a default route or pods cannot leave.
 */
export function renderConflist(input: ConflistInput): Conflist {
  const families = input.podCidrs.map((c) => parseCidr(c).family);
  // Each range's default route goes into the pod: two of one family, and every ADD fails ("file exists").
  if (new Set(families).size !== families.length) throw new Error(`one pod CIDR per family, not ${input.podCidrs.join(", ")}`);
  const conflist: Conflist = {
    cniVersion: input.cniVersion,
    name: input.networkName ?? POD_NETWORK_NAME,
    // libcni ≥ 1.3 (CNI spec 1.1) otherwise appends any <conf dir>/<network name>/*.conf to the chain, plugins
    // podnet never sees; older libcni ignores the key.
    loadOnlyInlinedPlugins: true,
    plugins: [
      {
        type: "bridge", bridge: input.bridgeName ?? BRIDGE_NAME, isGateway: true, ipMasq: false, hairpinMode: true, mtu: input.mtu,
        ipam: {
          type: "host-local",
          ranges: input.podCidrs.map((subnet) => [{ subnet }]),
          routes: families.map((f) => ({ dst: f === 4 ? "0.0.0.0/0" : "::/0" })),
          ...(input.ipamDataDir ? { dataDir: input.ipamDataDir } : {}),
        },
      },
      { type: "portmap", capabilities: { portMappings: true }, snat: true },
    ],
  };
  return conflistSchema.parse(conflist);
}

/** What goes on disk: podnet's conflist with the plugins others chained after it (see chainedPlugins). */
export type ConflistOnDisk = Omit<Conflist, "plugins"> & { plugins: Array<Conflist["plugins"][number] | ChainedPlugin> };

export const conflistText = (c: ConflistOnDisk) => `${JSON.stringify(c, null, 2)}\n`;

/** A plugin another installer put in podnet's list, kept as it wrote it. */
export type ChainedPlugin = { type: string } & Record<string, unknown>;

/** Types renderConflist writes, host-local (bridge's IPAM) and loopback (the runtime's own): never anyone else's plugin. */
const PODNET_PLUGIN_TYPES = new Set(["bridge", "portmap", "host-local", "loopback"]);

/**
 * Pure: the plugins another installer chained after podnet's in the podnet conflist on disk, in their order.
 * Istio CNI (chained mode) and Linkerd CNI append their plugin to the primary network's list and put it back
 * whenever it goes; rewriting the file without it would have the runtime reload on every round, and pods
 * created in between would miss the mesh. A plugin of a type podnet writes, or one placed before podnet's
 * bridge, is not kept: podnet's own entries are podnet's to restore.
 */
export function chainedPlugins(existingText: string | undefined, networkName = POD_NETWORK_NAME): ChainedPlugin[] {
  const plugins = existingText === undefined ? undefined : podnetList(existingText, networkName)?.plugins;
  if (!plugins) return [];
  const bridge = plugins.findIndex((p) => (p as { type?: unknown })?.type === "bridge");
  if (bridge < 0) return [];
  return plugins.slice(bridge + 1).filter((p): p is ChainedPlugin => {
    const type = (p as { type?: unknown })?.type;
    return typeof p === "object" && p !== null && !Array.isArray(p) && typeof type === "string" && type !== "" && !PODNET_PLUGIN_TYPES.has(type);
  });
}

/**
 * Pure: of the chained plugins, those the runtime can run (`kept`) and those it cannot (`dropped`): `missing`
 * names the types whose binary the CNI bin dir lacks. libcni fails every ADD on a plugin it cannot find, and an
 * installer gone without its cleanup (SIGKILL, a reboot) or a hand edit leaves such an entry for good: kept, no
 * pod would start while podnet says it is configured. A dropped plugin's installer, when back, puts it back.
 */
export function runnableChained(chained: ChainedPlugin[], missing: readonly string[]): { kept: ChainedPlugin[]; dropped: ChainedPlugin[] } {
  const gone = new Set(missing);
  return { kept: chained.filter((p) => !gone.has(p.type)), dropped: chained.filter((p) => gone.has(p.type)) };
}

/** Pure: podnet's conflist with the chained plugins after its own. */
export const withChainedPlugins = (c: Conflist, chained: ChainedPlugin[]): ConflistOnDisk =>
  (chained.length ? { ...c, plugins: [...c.plugins, ...chained] } : c);

/**
 * Pure: does the file's text already say `desired`? Compared as JSON, not as text: an installer that rewrites
 * the file (Go's encoder sorts keys) must not make every pass rewrite it back and the runtime reload.
 */
export function conflistMatches(text: string | undefined, desired: ConflistOnDisk): boolean {
  if (text === undefined) return false;
  try { return isDeepStrictEqual(JSON.parse(text), JSON.parse(JSON.stringify(desired))); } catch { return false; }
}

/** Highest CNI spec version every plugin supports (each answers CNI_COMMAND=VERSION), capped at `max`. */
export function commonCniVersion(supported: string[][], max = "1.0.0"): string | undefined {
  const key = (v: string) => v.split(".").map((n) => n.padStart(4, "0")).join(".");
  const common = supported.reduce((acc, list) => acc.filter((v) => list.includes(v)));
  return common.filter((v) => key(v) <= key(max)).sort((a, b) => compareText(key(b), key(a)))[0];
}

/** The conflist's cniVersion; `fallback` when the plugins named none in common (kept: the file's own, default: 1.0.0). */
export interface CniVersionChoice { version: string; fallback?: "kept" | "default" }

/**
 * Pure: the version the probe found; without one (a plugin missing, its VERSION call failed or timed out), the
 * podnet conflist's own, else 1.0.0. Writing 1.0.0 over a file that says 0.4.0 for plugins older than 1.0 would
 * break a working node on a failed probe.
 */
export function cniVersionInEffect(probed: string | undefined, existing: string | undefined): CniVersionChoice {
  if (probed) return { version: probed };
  if (existing) return { version: existing, fallback: "kept" };
  return { version: "1.0.0", fallback: "default" };
}

/** host-local's own default, in effect for a conflist that names no dataDir. */
const HOST_LOCAL_DEFAULT_DATA_DIR = "/var/lib/cni/networks";

export interface IpamDataDirChoice {
  /** The host-local state directory the conflist names. */
  dataDir: string;
  /** Set when the configured directory is not used: the one this node's pods already hold leases in. */
  keptInsteadOf?: string;
}

/**
 * Pure: which host-local state directory the conflist may name, given the conflist already on this node
 * (`readPodnetConflist` of its text).
 * host-local knows a pod's address only from its lease file, so pointing a node that runs pods at another,
 * empty directory would lease their addresses again to new pods (two pods, one IP). A directory change
 * therefore waits until the node's podnet conflist is gone (a new node, or one drained and cleaned up).
 */
export function ipamDataDirInEffect(existing: PodnetConflistFacts | undefined, configured: string): IpamDataDirChoice {
  const current = existing?.dataDir;
  if (current === undefined || current === configured) return { dataDir: configured };
  return { dataDir: current, keptInsteadOf: configured };
}

/**
 * What a podnet conflist on disk says: its host-local dataDir (host-local's default when it names none), the
 * MTU it gives pods and its cniVersion. Undefined for anything else (another network's file, broken JSON).
 */
export interface PodnetConflistFacts { dataDir: string; mtu?: number; cniVersion?: string }

export function readPodnetConflist(text: string, networkName = "podnet"): PodnetConflistFacts | undefined {
  const list = podnetList(text, networkName) as { cniVersion?: unknown; plugins: Array<{ mtu?: unknown; ipam?: { type?: unknown; dataDir?: unknown } } | null> } | undefined;
  if (!list) return undefined;
  const plugin = list.plugins.find((p) => p?.ipam?.type === "host-local");
  if (!plugin?.ipam) return undefined;
  const dataDir = typeof plugin.ipam.dataDir === "string" && plugin.ipam.dataDir !== "" ? plugin.ipam.dataDir : HOST_LOCAL_DEFAULT_DATA_DIR;
  const cniVersion = typeof list.cniVersion === "string" && /^\d+\.\d+\.\d+$/.test(list.cniVersion) ? list.cniVersion : undefined;
  return { dataDir, ...(typeof plugin.mtu === "number" ? { mtu: plugin.mtu } : {}), ...(cniVersion ? { cniVersion } : {}) };
}

/** A subnet the podnet conflist on disk hands out, now inside (or around) another node's live pod CIDR. */
export interface RangeHeldByOther { subnet: string; heldAs: string; nodeName: string; earlierNode?: boolean }

/**
 * Pure: the host-local subnets (ranges[][].subnet) of the podnet conflist `text` that overlap another node's live
 * pod CIDR (`others`: other nodes' Allocated CIDRs, routed or not: desiredNodeState's othersLive). Empty for any other file.
 */
export function rangesHeldByOthers(text: string, others: ReadonlyArray<{ dst: string; nodeName: string; earlierNode?: boolean }>, networkName = "podnet"): RangeHeldByOther[] {
  const list = podnetList(text, networkName) as { plugins: Array<{ ipam?: { type?: unknown; ranges?: unknown } } | null> } | undefined;
  if (!list) return [];
  const subnets = list.plugins.flatMap((p) => (p?.ipam?.type === "host-local" && Array.isArray(p.ipam.ranges) ? p.ipam.ranges : []))
    .flatMap((set: unknown) => (Array.isArray(set) ? set : []))
    .flatMap((r: { subnet?: unknown }) => (typeof r?.subnet === "string" ? [r.subnet] : []));
  const held: RangeHeldByOther[] = [];
  for (const subnet of subnets) {
    // host-local takes a subnet with host bits set (it masks them), so this reads it the same way.
    let mine;
    try { mine = parseCidr(subnet, { allowHostBits: true }); } catch { continue; }
    for (const r of others) {
      const theirs = tryParseCidr(r.dst);
      if (theirs && cidrsOverlap(mine, theirs)) held.push({ subnet, heldAs: r.dst, nodeName: r.nodeName, ...(r.earlierNode ? { earlierNode: true } : {}) });
    }
  }
  return held;
}

/** Pure: whether a conflist's text is podnet's network list (parsed: spacing and plugin names do not count). */
export const isPodnetConflistText = (text: string, networkName = "podnet") => podnetList(text, networkName) !== undefined;

/** Pure: a conflist's text as podnet's network list (its name and a plugin array), undefined for anything else. */
function podnetList(text: string, networkName: string): { plugins: unknown[] } & Record<string, unknown> | undefined {
  let parsed: unknown;
  try { parsed = JSON.parse(text); } catch { return undefined; }
  const list = parsed as { name?: unknown; plugins?: unknown } | null;
  return list?.name === networkName && Array.isArray(list.plugins) ? (list as { plugins: unknown[] } & Record<string, unknown>) : undefined;
}
