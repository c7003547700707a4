import { runOk } from "./exec.js";

const IPV6_FORWARDING = "net.ipv6.conf.all.forwarding";

/** Pure: the sysctls a node needs for the families it serves. */
export function neededSysctls(families: Array<4 | 6>): Record<string, string> {
  return {
    "net.ipv4.ip_forward": "1",
    ...(families.includes(6) ? { [IPV6_FORWARDING]: "1" } : {}),
  };
}

/**
 * Pure: the sysctls that send bridged pod traffic through the node's netfilter hooks. Pods on one node share
 * podnet's bridge, so a Service's reply from a pod on the client's node is switched straight back to it at
 * layer 2 unless br_netfilter hands it to conntrack, which undoes kube-proxy's DNAT; without that the client
 * gets an answer from the backend's own address and drops it (same-node Services and DNS fail).
 */
export function bridgeNetfilterSysctls(families: Array<4 | 6>): Record<string, string> {
  return {
    "net.bridge.bridge-nf-call-iptables": "1",
    ...(families.includes(6) ? { "net.bridge.bridge-nf-call-ip6tables": "1" } : {}),
  };
}

/** Pure: a failed bridge sysctl → what the user should know (the module is the usual cause). */
export function bridgeNetfilterProblem(err: string): string {
  const missing = /cannot stat|No such file/i.test(err);
  return (missing ? "the br_netfilter module is not loaded (no /proc/sys/net/bridge; load it: modprobe br_netfilter)" : err)
    + ": a Service's reply from a pod on this node would skip kube-proxy's reverse NAT, so same-node Services and DNS fail";
}

/**
 * Pure: a failed forwarding write → what to do about it. The chart's agent container has /proc/sys read-only:
 * its privileged init container sets forwarding, IPv6 only when the chart's values name an IPv6 range. An
 * IPv6 range added to a pool by hand (kubectl) reaches the agents, but not that init container.
 */
export function forwardingProblem(err: string): string {
  // procps reports a read-only /proc/sys as "permission denied on key" (measured), other tools as EROFS.
  if (!/read-only file system|permission denied on key/i.test(err)) return err;
  if (/accept_ra/.test(err)) return `${err}: /proc/sys is not writable in the agent's container, and an interface at accept_ra 1 ignores router advertisements `
    + "while IPv6 forwarding is on (the node loses its RA-learned default route when it expires): the chart's init container moves them to 2; delete this node's agent pod, or set accept_ra 2 on the node";
  // The init container always enables IPv4 forwarding: a refused IPv4 key means it did not run (or failed).
  if (!/ipv6/i.test(err)) return `${err}: /proc/sys is not writable in the agent's container, and IPv4 forwarding is off: the chart's init container sets it; check that it ran, or enable forwarding on the node`;
  return `${err}: /proc/sys is not writable in the agent's container, and the chart's init container enables IPv6 forwarding only when `
    + "pool.clusterCIDRs names an IPv6 range: add IPv6 ranges through the chart's values (helm upgrade), or enable forwarding on the node";
}

/**
 * Pure: `sysctl -a --pattern accept_ra$` output → the writes that keep the node accepting IPv6 router
 * advertisements once forwarding is on. With forwarding, the kernel ignores RAs on every interface whose
 * accept_ra is 1 (the default), and the node loses its RA-learned default route and SLAAC addresses when
 * they expire; 2 accepts them even while forwarding. Interfaces set to 0 or 2 by their owner are left alone.
 */
export function keepAcceptingRouterAdvertisements(listing: string): Record<string, string> {
  const writes: Record<string, string> = {};
  for (const line of listing.split("\n")) {
    const match = /^(net\.ipv6\.conf\.([^.\s]+)\.accept_ra)\s*=\s*(\d+)\s*$/.exec(line.trim());
    if (match && match[2] !== "all" && match[3] === "1") writes[match[1]!] = "2";
  }
  return writes;
}

/** Set and read back; sysctls under net.* belong to the network namespace the tool runs in. */
export async function ensureSysctls(wanted: Record<string, string>, netns?: string): Promise<void> {
  for (const [key, value] of Object.entries(wanted)) {
    // Whether or not forwarding is on already: the bridge plugin turns it on itself for a pod's first IPv6
    // address (isGateway), so "already on" does not mean an owner chose to ignore RAs, and the kernel ignores
    // them on interfaces at 1 however forwarding came on.
    if (key === IPV6_FORWARDING && value === "1") {
      const listing = await runOk("sysctl", ["-a", "--pattern", "accept_ra$"], { netns });
      for (const [raKey, raValue] of Object.entries(keepAcceptingRouterAdvertisements(listing))) await runOk("sysctl", ["-w", `${raKey}=${raValue}`], { netns });
    }
    const current = (await runOk("sysctl", ["-n", key], { netns })).trim();
    if (current === value) continue;
    await runOk("sysctl", ["-w", `${key}=${value}`], { netns });
    const after = (await runOk("sysctl", ["-n", key], { netns })).trim();
    if (after !== value) throw new Error(`sysctl ${key} is ${after} after setting ${value}`);
  }
}
