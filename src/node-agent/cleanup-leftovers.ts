import { existsSync, readFileSync } from "node:fs";
import { BRIDGE_NAME, isPodnetConflistText } from "./cni-conflist.js";
import { MissingToolError, run, runOk } from "./exec.js";
import { iptablesLegacy } from "./forward-accept-legacy.js";
import { iptablesNft, planForwardAccepts } from "./forward-accept.js";
import { NFT_TABLE } from "./masquerade.js";
import { VXLAN_DEVICE } from "./overlay-plan.js";
import { PODNET_PROTO } from "./routes-plan.js";

/** What `podnet agent cleanup` removes, by the names its steps and its report use. */
export type CleanupItem = "conflist" | "routes" | "vxlan device" | "nft table" | "firewall FORWARD accepts" | "pod bridge";

/**
 * The node as read again after the cleanup's steps: podnet's marks still there. A step that raised no error
 * can still leave something: an agent that ran meanwhile, or a second cleanup, or an `ip` that printed nothing.
 */
export interface NodeLeftoverView {
  conflist?: string; routes: number; nexthops: number; vxlan: boolean; nftTable: boolean; forwardAccepts: number; podBridge: boolean;
  /** Items the read could not see, with why (a tool missing, a firewall unreadable). */
  unreadable: Partial<Record<CleanupItem, string>>;
}

/** Pure: each item still on the node (or not readable), said in a few words. */
export function leftoversOf(v: NodeLeftoverView): Array<[CleanupItem, string]> {
  const found: Array<[CleanupItem, string | undefined]> = [
    ["conflist", v.conflist],
    ["routes", v.routes || v.nexthops ? `${v.routes} route(s) and ${v.nexthops} nexthop(s) of protocol ${PODNET_PROTO}` : undefined],
    ["vxlan device", v.vxlan ? VXLAN_DEVICE : undefined],
    ["nft table", v.nftTable ? `table inet ${NFT_TABLE}` : undefined],
    ["firewall FORWARD accepts", v.forwardAccepts ? `${v.forwardAccepts} rule(s) of podnet's` : undefined],
    ["pod bridge", v.podBridge ? BRIDGE_NAME : undefined],
  ];
  return found.flatMap(([item, what]) => {
    const why = v.unreadable[item];
    return why ? [[item, `not readable: ${why}`]] : what ? [[item, `still there: ${what}`]] : [];
  });
}

/** podnet's conflist: the file by that name, if it is podnet's network (another network's file is left alone). */
export const isPodnetConflist = (path: string) => existsSync(path) && isPodnetConflistText(readFileSync(path, "utf8"));

/** Shell: read every mark of podnet's on the node (routes of its protocol, its devices, table, rules, conflist). */
export async function readLeftovers(netns: string | undefined, conflist: string): Promise<NodeLeftoverView> {
  const unreadable: NodeLeftoverView["unreadable"] = {};
  const attempt = async <T>(item: CleanupItem, none: T, read: () => Promise<T>): Promise<T> => {
    try { return await read(); } catch (err) { unreadable[item] = err instanceof Error ? err.message : String(err); return none; }
  };
  const count = async (args: string[]) => (JSON.parse((await runOk("ip", ["-json", ...args], { netns })) || "[]") as unknown[]).length;
  const routes = await attempt("routes", 0, async () => await count(["-4", "route", "show", "proto", String(PODNET_PROTO)]) + await count(["-6", "route", "show", "proto", String(PODNET_PROTO)]));
  // A kernel without nexthop objects (< 5.3) refuses the read and has none.
  const nexthops = await attempt("routes", 0, () => count(["nexthop", "show", "proto", String(PODNET_PROTO)]).catch((err: unknown) => {
    if (err instanceof MissingToolError) throw err;
    return 0;
  }));
  const linkKind = async (dev: string) => {
    const r = await run("ip", ["-d", "-json", "link", "show", "dev", dev], { netns });
    return r.code === 0 ? (JSON.parse(r.stdout || "[]") as Array<{ linkinfo?: { info_kind?: string } }>)[0]?.linkinfo?.info_kind ?? "" : undefined;
  };
  return {
    conflist: isPodnetConflist(conflist) ? conflist : undefined, routes, nexthops,
    vxlan: await attempt("vxlan device", false, async () => (await linkKind(VXLAN_DEVICE)) !== undefined),
    podBridge: await attempt("pod bridge", false, async () => (await linkKind(BRIDGE_NAME)) === "bridge"),
    nftTable: await attempt("nft table", false, async () => (await run("nft", ["list", "table", "inet", NFT_TABLE], { netns })).code === 0),
    forwardAccepts: await attempt("firewall FORWARD accepts", 0, () => podnetForwardAccepts(netns)),
    unreadable,
  };
}

/** podnet's accepts in every FORWARD chain of either firewall, as the removal step finds them. */
async function podnetForwardAccepts(netns: string | undefined): Promise<number> {
  let n = 0;
  for (const backend of [iptablesNft, iptablesLegacy]) {
    for (const family of [4, 6] as const) {
      const chain = await backend.read(family, netns);
      if (chain) n += planForwardAccepts({ ...chain, policy: "accept" }, []).deleteHandles.length;
    }
  }
  return n;
}
