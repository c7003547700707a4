import { formatCidr, parseCidr } from "../lib/cidr.js";
import { run, runOk } from "./exec.js";
import { normaliseDst, PODNET_PROTO, routeBatch, type ObservedRoute, type RouteAction } from "./routes-plan.js";

/** Thin shell over iproute2: read with `ip -json`, write with one `ip -batch -` process. */

interface JsonRoute { dst: string; gateway?: string; dev?: string; protocol?: string | number; table?: string }
interface JsonAddr { ifname: string; mtu: number; addr_info?: Array<{ family: string; local: string; prefixlen: number; scope: string }> }

const ownProtocol = (p: string | number | undefined) => String(p) === String(PODNET_PROTO) || p === "podnet";

/** Every route of the main table, both families, marked ours when it carries podnet's protocol. */
export async function readRoutes(netns?: string): Promise<ObservedRoute[]> {
  const out: ObservedRoute[] = [];
  for (const family of [4, 6] as const) {
    const json = await runOk("ip", [`-${family}`, "-json", "route", "show", "table", "main"], { netns });
    for (const r of JSON.parse(json || "[]") as JsonRoute[]) {
      const dst = normaliseDst(r.dst, family);
      if (!dst || (family === 6 && r.dst.startsWith("fe80:"))) continue;
      out.push({ dst, ...(r.gateway ? { gateway: r.gateway } : {}), ...(r.dev ? { dev: r.dev } : {}), ours: ownProtocol(r.protocol) });
    }
  }
  return out;
}

export interface BatchResult { errors: string[] }

/**
 * Apply route changes in one process. `ip -batch` is not transactional; with -force it goes on past a bad
 * line, and the caller re-reads the kernel to learn what really happened.
 */
export async function applyRoutes(actions: RouteAction[], netns?: string): Promise<BatchResult> {
  if (actions.length === 0) return { errors: [] };
  const r = await run("ip", ["-force", "-batch", "-"], { netns, input: routeBatch(actions), timeoutMs: 60_000 });
  const errors = r.stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  return { errors: r.code === 0 ? [] : errors.length ? errors : [`ip -batch exited ${r.code}`] };
}

export async function flushOwnRoutes(netns?: string): Promise<void> {
  for (const family of [4, 6] as const) await runOk("ip", [`-${family}`, "route", "flush", "proto", String(PODNET_PROTO)], { netns });
}

export interface LinkInfo { onLink: string[]; mtuOf: (ip: string) => number | undefined; addresses: string[] }

/** Local subnets (for "is this gateway directly reachable?") and the MTU of the interface carrying an IP. */
export async function readLinks(netns?: string): Promise<LinkInfo> {
  const links = JSON.parse((await runOk("ip", ["-json", "addr", "show"], { netns })) || "[]") as JsonAddr[];
  const onLink: string[] = [];
  const mtuByIp = new Map<string, number>();
  for (const link of links) {
    for (const a of link.addr_info ?? []) {
      if (a.scope !== "global" || (a.family !== "inet" && a.family !== "inet6")) continue;
      mtuByIp.set(a.local, link.mtu);
      try { onLink.push(formatCidr(parseCidr(`${a.local}/${a.prefixlen}`, { allowHostBits: true }))); } catch { /* not an address we route through */ }
    }
  }
  return { onLink, mtuOf: (ip) => mtuByIp.get(ip), addresses: [...mtuByIp.keys()] };
}
