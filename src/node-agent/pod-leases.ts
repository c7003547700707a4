import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cidrContainsIp, parseIp, tryParseCidr, type IpAddr } from "../lib/cidr.js";

/** A host-local lease: the address a pod holds, and the container it was leased to (first line of the file). */
export interface PodLease { ip: string; container: string }

/** Leases named in a report, at most: a node runs ~110 pods, and a condition message has a size limit. */
const LEASES_SHOWN = 5;

const addressOf = (text: string): IpAddr | undefined => { try { return parseIp(text); } catch { return undefined; } };

/**
 * The addresses host-local leased on this node (`<dataDir>/<network>/<ip>`), or none when the directory does not
 * exist yet (no pod ever started) or cannot be read. Its other files (lock, last_reserved_ip.N) are not addresses.
 */
export function readPodLeases(dataDir: string, network: string): Array<{ ip: string; read: () => string }> {
  const dir = join(dataDir, network);
  let names: string[];
  // Missing (no pod started yet) or unreadable (a kept directory the chart does not mount): nothing to report,
  // and no reason to fail the conflist step, which this check only adds to.
  try { names = readdirSync(dir); } catch { return []; }
  return names.filter((name) => addressOf(name) !== undefined).map((ip) => ({ ip, read: () => readLeaseOwner(join(dir, ip)) }));
}

const readLeaseOwner = (path: string): string => {
  try { return readFileSync(path, "utf8").split(/\r?\n/, 1)[0]!.trim(); } catch { return ""; }
};

/**
 * Pure: the leased addresses that lie in none of this node's pod CIDRs. Such a pod started from a conflist of an
 * earlier range (the node's CIDR changed, or it registered again while its agent could not reach the API server
 * and the old conflist stayed): no node routes its address, or another node now does, so it has no network until
 * it is started again. Only the first few are read for their container; the count says how many there are.
 */
export function leasesOutside(leases: Array<{ ip: string; read: () => string }>, podCidrs: string[]): { count: number; shown: PodLease[] } | undefined {
  const cidrs = podCidrs.map((c) => tryParseCidr(c)).filter((c) => c !== undefined);
  const outside = leases.filter((l) => { const ip = addressOf(l.ip); return ip !== undefined && !cidrs.some((c) => cidrContainsIp(c, ip)); });
  if (outside.length === 0) return undefined;
  const sorted = [...outside].sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
  return { count: outside.length, shown: sorted.slice(0, LEASES_SHOWN).map((l) => ({ ip: l.ip, container: l.read().slice(0, 12) })) };
}
