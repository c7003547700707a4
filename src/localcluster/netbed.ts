import { execFileSync } from "node:child_process";

/**
 * Network namespaces for tests: a "switch" namespace with a bridge, and node namespaces joined to it by
 * veth pairs — one L2 segment, like nodes on one rack. Every name carries the run's prefix
 * (pnt-<pid>-…); namespaces of runs whose process is gone are swept on the next start, so a crashed run
 * leaves nothing behind for long. The host's own interfaces and routes are never touched.
 */

export const RUN_PREFIX = `pnt-${process.pid}`;

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

/** Remove namespaces left by test runs whose process no longer exists. */
export function sweepStaleNamespaces(): string[] {
  const swept: string[] = [];
  for (const line of tryIp("netns", "list").split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const match = /^pnt-(\d+)-/.exec(name);
    if (!match) continue;
    const pid = Number(match[1]);
    let alive = true;
    try { process.kill(pid, 0); } catch { alive = false; }
    if (!alive) { deleteNamespace(name); swept.push(name); }
  }
  return swept;
}

export interface BedNode { name: string; ns: string; ip: string; ip6: string }
export interface NetBed { switchNs: string; nodes: BedNode[]; addNode(name: string): BedNode; removeNode(name: string): void; destroy(): void }

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

/** A switch plus `count` node namespaces on 192.168.<segment>.0/24 and fd00:<segment>::/64. */
export function createNetBed(tag: string, count: number, segment = 77): NetBed {
  sweepStaleNamespaces();
  const switchNs = createNamespace(`${tag}-sw`);
  ip("-n", switchNs, "link", "add", "br0", "type", "bridge");
  ip("-n", switchNs, "link", "set", "br0", "up");
  const nodes: BedNode[] = [];
  let added = 0;
  const addNode = (name: string): BedNode => {
    const index = ++added; // never reuse an index: a later node must not inherit a removed node's IP
    if (index > 240) throw new Error("a net bed holds at most 240 nodes");
    const ns = createNamespace(`${tag}-${name}`);
    const port = `p${index}`;
    ip("-n", switchNs, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns);
    ip("-n", switchNs, "link", "set", port, "master", "br0", "up");
    const node: BedNode = { name, ns, ip: `192.168.${segment}.${10 + index}`, ip6: `fd00:${segment}::${10 + index}` };
    ip("-n", ns, "addr", "add", `${node.ip}/24`, "dev", "eth0");
    ip("-n", ns, "-6", "addr", "add", `${node.ip6}/64`, "dev", "eth0", "nodad");
    ip("-n", ns, "link", "set", "eth0", "up");
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
    switchNs, nodes, addNode, removeNode,
    destroy: () => { for (const n of nodes) destroyNamespace(n.ns); destroyNamespace(switchNs); },
  };
}

export const ipJson = <T>(ns: string, ...args: string[]): T => JSON.parse(ip("-n", ns, "-json", ...args) || "[]") as T;
export const ipIn = (ns: string, ...args: string[]) => ip("-n", ns, ...args);
