import { execFileSync } from "node:child_process";
import { ownerAlive, ownerToken } from "./run-owner.js";

/**
 * Network namespaces for tests: a "switch" namespace with a bridge, and node namespaces joined to it by
 * veth pairs — one L2 segment, like nodes on one rack. Every name carries the run's prefix
 * (pnt-<pid>.<start time>-…); namespaces of runs whose process is gone are swept on the next start, so a crashed run
 * leaves nothing behind for long. The host's own interfaces and routes are never touched.
 */

export const RUN_PREFIX = `pnt-${ownerToken(process.pid)}`;

const ip = (...args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "pipe", "pipe"] }).toString();
const tryIp = (...args: string[]) => { try { return ip(...args); } catch { return ""; } };

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function deleteNamespace(name: string): void {
  for (const pid of tryIp("netns", "pids", name).split("\n").filter(Boolean)) {
    try { process.kill(Number(pid), "SIGKILL"); } catch { /* gone */ }
  }
  tryIp("netns", "del", name);
}

/** podnet's namespaces (pnt-<pid>[.<start time>]-…) with the pid and owner token of the run that made each. */
export function runNamespaces(): Array<{ name: string; pid: number; owner: string }> {
  return tryIp("netns", "list").split("\n").flatMap((line) => {
    const name = line.split(" ")[0] ?? "";
    const match = /^pnt-((\d+)(?:\.[0-9a-z]+)?)-/.exec(name);
    return match ? [{ name, pid: Number(match[2]), owner: match[1]! }] : [];
  });
}

/** Remove namespaces left by test runs whose process no longer exists (or whose pid another process now has). */
export function sweepStaleNamespaces(): string[] {
  const swept: string[] = [];
  for (const { name, owner } of runNamespaces()) {
    if (!ownerAlive(owner)) { deleteNamespace(name); swept.push(name); }
  }
  return swept;
}

const created = new Set<string>();
process.on("exit", () => { for (const ns of created) deleteNamespace(ns); });

export function createNamespace(suffix: string): string {
  const name = `${RUN_PREFIX}-${suffix}`;
  deleteNamespace(name);
  ip("netns", "add", name);
  created.add(name);
  ip("-n", name, "link", "set", "lo", "up");
  return name;
}

export function destroyNamespace(name: string): void {
  deleteNamespace(name);
  created.delete(name);
}

export interface BedNode { name: string; ns: string; ip: string; ip6: string; segment: number }
export interface NetBed {
  /** One switch namespace per L2 segment; with more than one, a router namespace joins them. */
  switches: string[]; nodes: BedNode[];
  addNode(name: string, segmentIndex?: number): BedNode; removeNode(name: string): void; destroy(): void;
}

/**
 * `count` node namespaces on 192.168.<segment>.0/24 + fd00:<segment>::/64. With `segments` > 1 there are that
 * many such subnets (segment, segment+1, …), each its own L2 switch, joined by a router namespace at .1 / ::1
 * — nodes on different segments share no link, as in racks behind a router.
 */
export function createNetBed(tag: string, count: number, segment = 77, segments = 1): NetBed {
  sweepStaleNamespaces();
  const switches = Array.from({ length: segments }, (_, i) => {
    const sw = createNamespace(`${tag}-sw${i || ""}`);
    ip("-n", sw, "link", "add", "br0", "type", "bridge");
    ip("-n", sw, "link", "set", "br0", "up");
    return sw;
  });
  const router = segments > 1 ? createRouter(`${tag}-rt`, switches, segment) : undefined;
  const nodes: BedNode[] = [];
  let added = 0;
  const addNode = (name: string, segmentIndex = 0): BedNode => {
    const index = ++added; // never reuse an index: a later node must not inherit a removed node's IP
    if (index > 240) throw new Error("a net bed holds at most 240 nodes");
    const sw = switches[segmentIndex % segments]!;
    const seg = segment + (segmentIndex % segments);
    const ns = createNamespace(`${tag}-${name}`);
    // The bridge's IPv6 gateway address appears with the node's first pod; skip its duplicate detection.
    skipIpv6Dad(ns);
    // A new namespace copies IPv4 forwarding from the host's (IPv6 starts off): a node starts with it off
    // here whatever the host runs, so every pod packet between nodes shows the agent turned it on.
    execFileSync("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    const port = `p${index}`;
    ip("-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns);
    ip("-n", sw, "link", "set", port, "master", "br0", "up");
    const node: BedNode = { name, ns, ip: `192.168.${seg}.${10 + index}`, ip6: `fd00:${seg}::${10 + index}`, segment: seg };
    ip("-n", ns, "addr", "add", `${node.ip}/24`, "dev", "eth0");
    ip("-n", ns, "-6", "addr", "add", `${node.ip6}/64`, "dev", "eth0", "nodad");
    ip("-n", ns, "link", "set", "eth0", "up");
    if (router) {
      ip("-n", ns, "route", "add", "default", "via", `192.168.${seg}.1`);
      ip("-n", ns, "-6", "route", "add", "default", "via", `fd00:${seg}::1`);
    }
    nodes.push(node);
    return node;
  };
  for (let i = 1; i <= count; i++) addNode(`n${i}`);
  const removeNode = (name: string) => {
    const i = nodes.findIndex((n) => n.name === name);
    if (i < 0) return;
    destroyNamespace(nodes[i]!.ns);
    nodes.splice(i, 1);
  };
  return {
    switches, nodes, addNode, removeNode,
    destroy: () => { for (const n of nodes) destroyNamespace(n.ns); if (router) destroyNamespace(router); for (const sw of switches) destroyNamespace(sw); },
  };
}

/** A router namespace with a leg on every switch: 192.168.<segment+i>.1/24 and fd00:<segment+i>::1/64. */
function createRouter(name: string, switches: string[], segment: number): string {
  const rt = createNamespace(name);
  for (const [i, sw] of switches.entries()) {
    ip("-n", rt, "link", "add", `leg${i}`, "type", "veth", "peer", "name", `rt${i}`, "netns", sw);
    ip("-n", sw, "link", "set", `rt${i}`, "master", "br0", "up");
    ip("-n", rt, "addr", "add", `192.168.${segment + i}.1/24`, "dev", `leg${i}`);
    ip("-n", rt, "-6", "addr", "add", `fd00:${segment + i}::1/64`, "dev", `leg${i}`, "nodad");
    ip("-n", rt, "link", "set", `leg${i}`, "up");
  }
  execFileSync("ip", ["netns", "exec", rt, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
  return rt;
}

/**
 * No IPv6 duplicate address detection for interfaces created in this namespace from now on: a new address
 * would otherwise stay "tentative", unusable, for about a second. IPAM hands each pod address out once, and a
 * runtime may set the same for a pod.
 */
export function skipIpv6Dad(ns: string): void {
  execFileSync("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]);
}

export const ipJson = <T>(ns: string, ...args: string[]): T => JSON.parse(ip("-n", ns, "-json", ...args) || "[]") as T;
export const ipIn = (ns: string, ...args: string[]) => ip("-n", ns, ...args);
