import { cidrContainsIp, parseCidr, parseIp } from "../lib/cidr.js";
import type { Logger } from "../log.js";
import { BRIDGE_NAME } from "./cni-conflist.js";
import { run, runOk } from "./exec.js";

/**
 * A Node deleted and registered again under its name gets a new pod CIDR, but the bridge plugin leaves the
 * old gateway address on the bridge. It then refuses every new pod (IPv4: "already has an IP address
 * different from …", flannel's best-known support question), and the old range's connected route shadows
 * the route to that range's next owner. podnet owns its bridge, so the agent removes what no longer fits.
 */

export interface BridgeAddress { local: string; prefixlen: number }

/**
 * Pure: the bridge's global addresses that lie in none of this node's pod CIDRs of their family, as
 * `ip addr del` takes them. A family without a pod CIDR keeps its addresses: the node may be without one only
 * for a moment (a NodeCIDR recreated by hand, withheld while it overlaps another), and running pods must not
 * lose their gateway for that.
 */
export function staleBridgeAddresses(addresses: BridgeAddress[], ownCidrs: string[]): string[] {
  const own = ownCidrs.map((c) => parseCidr(c));
  return addresses
    .filter((a) => {
      const ip = parseIp(a.local);
      const sameFamily = own.filter((c) => c.family === ip.family);
      return sameFamily.length > 0 && !sameFamily.some((c) => cidrContainsIp(c, ip));
    })
    .map((a) => `${a.local}/${a.prefixlen}`);
}

interface JsonLink { addr_info?: Array<{ local: string; prefixlen: number; scope: string }> }

/** Shell: read the bridge's addresses and delete the stale ones; returns what it removed (or would, dry-run). */
export async function removeStaleBridgeAddresses(ownCidrs: string[], opts: { netns?: string; dryRun: boolean; log: Logger }): Promise<string[]> {
  const shown = await run("ip", ["-json", "addr", "show", "dev", BRIDGE_NAME], { netns: opts.netns });
  if (shown.code !== 0) return []; // no bridge yet: no pod was ever started on this node
  const links = JSON.parse(shown.stdout || "[]") as JsonLink[];
  const addresses = links.flatMap((l) => (l.addr_info ?? []).filter((a) => a.scope === "global"));
  const stale = staleBridgeAddresses(addresses, ownCidrs);
  for (const address of stale) {
    if (opts.dryRun) { opts.log.info({ bridge: BRIDGE_NAME, address, podCidrs: ownCidrs }, "dry-run: would remove a stale address from the bridge"); continue; }
    await runOk("ip", ["addr", "del", address, "dev", BRIDGE_NAME], { netns: opts.netns });
    opts.log.warn({ bridge: BRIDGE_NAME, address, podCidrs: ownCidrs }, "removed an address outside this node's pod CIDRs from the bridge; pods still holding addresses from the old range must be recreated");
  }
  return stale;
}

/**
 * `podnet agent cleanup`: podnet's pod bridge goes too. Left behind, its gateway address and the connected
 * route to this node's old pod range stay, and shadow the routes of a network installed next on the same
 * range. Only a bridge by that name is removed; pods still attached lose their network, as with any uninstall.
 */
export async function removePodBridge(netns?: string): Promise<boolean> {
  const shown = await run("ip", ["-d", "-json", "link", "show", "dev", BRIDGE_NAME], { netns });
  if (shown.code !== 0) return false; // no such device
  const [link] = JSON.parse(shown.stdout || "[]") as Array<{ linkinfo?: { info_kind?: string } }>;
  if (link?.linkinfo?.info_kind !== "bridge") return false;
  await runOk("ip", ["link", "del", "dev", BRIDGE_NAME], { netns });
  return true;
}
