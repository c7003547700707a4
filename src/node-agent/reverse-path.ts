import { canonicalIp } from "../lib/cidr.js";
import { run, runOk } from "./exec.js";
import { VXLAN_DEVICE, type OverlayMode } from "./overlay-plan.js";
import type { HostAddress } from "./pod-cidr-holders.js";
import type { SyncOutcome } from "./report.js";
import type { KernelView } from "./route-sync.js";
import type { SyncInput } from "./sync.js";

/**
 * Reverse-path filtering against nodes that see each other differently. A node whose subnet holds a peer's IP
 * (n1, a /24) routes that peer's pods straight over its uplink, while the peer (n4, a /32 or a narrower mask
 * on the same segment) counts n1 off-link and sends to n1's pods through podnet.vxlan. With strict filtering
 * (rp_filter 1, CIS-recommended) each side drops the other's pod traffic: n1 gets n4's pods' packets on
 * podnet.vxlan but routes them back over the uplink, n4 gets n1's on its uplink but routes them back through
 * the tunnel. Loose filtering (2) only asks for some route back. The kernel filters by the larger of
 * conf.all and conf.<device>, so 2 on the device loosens it whatever conf.all says; nothing else changes.
 */

export const RP_LOOSE = 2;
const RP_STRICT = 1;

export interface ReversePathInput {
  overlay: OverlayMode;
  /** podnet.vxlan exists: any peer that counts this node off-link sends into it. */
  overlayDevice: boolean;
  /** The device carrying the node IP, when it is a real link (not lo or a dummy device). */
  uplink?: string;
  /** This node routes some peer's pods through podnet.vxlan: those pods' packets may still arrive on the uplink. */
  tunnelsToPeers: boolean;
}

/**
 * Pure: the devices whose reverse-path filter matters to pod traffic between nodes. None with the overlay off
 * (no tunnel: both sides route directly). The uplink only while this node tunnels to a peer: on a node that
 * routes every peer directly, a peer's pods' packets arrive where their route goes, and its uplink stays as
 * its owner set it.
 */
export function reversePathDevices(input: ReversePathInput): string[] {
  if (input.overlay === "none") return [];
  return [...(input.overlayDevice ? [VXLAN_DEVICE] : []), ...(input.uplink && input.tunnelsToPeers ? [input.uplink] : [])];
}

/**
 * Pure: the device carrying the node IP. Not lo or a dummy device (a node IP announced by BGP): peers' packets
 * arrive on the uplinks there, whichever they are, and podnet leaves those alone.
 */
export function uplinkOf(nodeIP: string | undefined, addresses: readonly HostAddress[]): string | undefined {
  const ip = nodeIP === undefined ? undefined : canonicalIp(nodeIP);
  const holder = ip === undefined ? undefined : addresses.find((a) => canonicalIp(a.local) === ip);
  return holder && holder.dev !== "lo" && holder.kind !== "dummy" ? holder.dev : undefined;
}

/** Pure: of `devices`, those the kernel filters strictly (the larger of conf.all and conf.<device> is 1). */
export function strictDevices(devices: string[], all: number | undefined, perDevice: ReadonlyMap<string, number>): string[] {
  return devices.filter((dev) => {
    const own = perDevice.get(dev);
    return own !== undefined && Math.max(all ?? 0, own) === RP_STRICT;
  });
}

const RP_VALUES: Record<string, number> = { off: 0, strict: RP_STRICT, loose: RP_LOOSE };

/** Pure: `ip -4 -json netconf show` → interface (`all` among them) → rp_filter as the sysctl spells it. */
export function parseRpFilters(json: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const entry of JSON.parse(json || "[]") as Array<{ interface?: string; rp_filter?: string }>) {
    const value = entry.rp_filter === undefined ? undefined : RP_VALUES[entry.rp_filter];
    if (entry.interface !== undefined && value !== undefined) values.set(entry.interface, value);
  }
  return values;
}

/** Pure: a failed write → what it costs and how to set it by hand (sysctl spells a device's dots as slashes). */
export function reversePathProblem(devices: string[], err: string): string {
  const keys = devices.map((d) => `net.ipv4.conf.${d.replaceAll(".", "/")}.rp_filter=${RP_LOOSE}`).join(" ");
  return `reverse-path filtering is strict on ${devices.join(", ")} and could not be made loose (${err}): pod traffic between this node and a node that `
    + `sees it differently (one routes directly, the other through ${VXLAN_DEVICE}) is dropped; set it on the node: sysctl -w ${keys}`;
}

export interface ReversePathStep { loosened: string[]; wouldLoosen?: string[] }

/**
 * Thin shell: reads every device's filter in one netlink dump (`ip netconf`, which needs no /proc), loosens the
 * strict ones through their files under `confDir` (the chart mounts the host's there, its container's /proc/sys
 * being read-only; `sysctl` knows /proc/sys alone) and reads them back. Throws naming the devices left strict.
 */
export async function loosenReversePath(devices: string[], opts: { netns?: string; confDir: string; dryRun: boolean }): Promise<ReversePathStep> {
  if (devices.length === 0) return { loosened: [] };
  const read = async () => parseRpFilters(await runOk("ip", ["-4", "-json", "netconf", "show"], { netns: opts.netns }));
  const before = await read();
  const strict = strictDevices(devices, before.get("all"), before);
  if (strict.length === 0) return { loosened: [] };
  if (opts.dryRun) return { loosened: [], wouldLoosen: strict };
  const errors: string[] = [];
  for (const dev of strict) {
    const r = await run("sh", ["-c", 'printf %s "$1" > "$2"', "sh", String(RP_LOOSE), `${opts.confDir}/${dev}/rp_filter`], { netns: opts.netns }).catch((err: unknown) => ({ code: -1, stdout: "", stderr: String(err) }));
    if (r.code !== 0) errors.push(r.stderr.trim() || `exit ${r.code}`);
  }
  const after = await read();
  const left = strict.filter((dev) => after.get(dev) !== RP_LOOSE);
  if (left.length) throw new Error(reversePathProblem(left, errors[0] ?? `read back ${left.map((d) => `${d}=${after.get(d) ?? "?"}`).join(", ")}`));
  return { loosened: strict };
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Per namespace: the devices whose reverse-path filter was last checked. */
const reversePathCheckedFor = new Map<string, string>();

/**
 * The reverse-path step of a pass, right after the routes: on full passes, and as soon as the devices that
 * matter change (the tunnel just made, which starts with conf.default's filter; the first peer routed through it).
 */
export async function syncReversePath(input: SyncInput, view: KernelView, outcome: SyncOutcome): Promise<void> {
  const devices = reversePathDevices({ overlay: input.config.overlay, overlayDevice: view.vxlan?.device !== undefined,
    uplink: uplinkOf(input.nodeIP, view.links.addresses), tunnelsToPeers: outcome.routes.overlay > 0 });
  const key = input.netns ?? "";
  if (!input.full && reversePathCheckedFor.get(key) === devices.join(",")) return;
  // Also after a failure: an event pass does not retry what the next full pass will (a write refused stays refused).
  reversePathCheckedFor.set(key, devices.join(","));
  try {
    const step = await loosenReversePath(devices, { netns: input.netns, confDir: input.config["ipv4-conf-dir"], dryRun: input.config["dry-run"] });
    if (step.wouldLoosen) input.log.info({ devices: step.wouldLoosen, rpFilter: 2 }, "dry-run: would make reverse-path filtering loose");
    if (step.loosened.length) input.log.info({ devices: step.loosened, rpFilter: 2 }, "reverse-path filtering made loose: strict filtering drops pod traffic between nodes that see each other differently");
  } catch (err) {
    outcome.sysctls.reversePathError = errorText(err);
    input.log.error({ devices, err: errorText(err) }, "reverse-path filtering could not be made loose");
  }
}
