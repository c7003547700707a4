import { formatCidr, parseCidr } from "../lib/cidr.js";
import { run } from "./exec.js";
import { VXLAN_DEVICE } from "./overlay-plan.js";
import { vxlanClash, type OtherVxlan, type VxlanLines, type VxlanObserved } from "./vxlan-plan.js";

/** Thin shell over iproute2 for podnet.vxlan: one `ip -batch` read, one `bridge` read; batched writes. */

interface JsonLink {
  address: string; mtu: number; flags?: string[];
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; local6?: string; port?: number } };
}
interface JsonAddr { addr_info?: Array<{ local: string; prefixlen: number; scope: string }> }
interface JsonNeigh { dst: string; lladdr?: string }
interface JsonFdb { mac: string; dst?: string }

export async function readVxlan(netns?: string): Promise<VxlanObserved> {
  // `ip -d addr show` carries the device's details and its addresses in one object. (In a batch, an
  // `addr show` after a `link show` prints no addresses, hence not both.) -force keeps going past a failed
  // line, so a missing device simply prints nothing.
  const shows = `addr show dev ${VXLAN_DEVICE}\nneigh show dev ${VXLAN_DEVICE}\n`;
  const r = await run("ip", ["-d", "-json", "-force", "-batch", "-"], { netns, input: shows });
  const lines = r.stdout.split("\n").filter((l) => l.trim().startsWith("["));
  const [link] = lines.length === 2 ? JSON.parse(lines[0]!) as Array<JsonLink & JsonAddr> : [];
  if (!link) return { fdb: [], neighbors: [] }; // no device, so no entries on it either: skip the bridge read
  const neighbors = (JSON.parse(lines[1]!) as JsonNeigh[]).filter((n) => n.lladdr).map((n) => ({ ip: n.dst, mac: n.lladdr! }));
  const fdbOut = await run("bridge", ["-json", "fdb", "show", "dev", VXLAN_DEVICE], { netns });
  const fdb = (JSON.parse(fdbOut.stdout || "[]") as JsonFdb[]).filter((f) => f.dst && f.mac !== "00:00:00:00:00:00").map((f) => ({ mac: f.mac, dst: f.dst! }));
  const info = link.linkinfo?.info_data ?? {};
  const addrs = (link.addr_info ?? []).filter((a) => a.scope !== "link");
  return {
    device: {
      // iproute2 names an IPv6 source address local6: read as absent, it had the device re-created every pass.
      kind: link.linkinfo?.info_kind ?? "unknown", vni: info.id, port: info.port, local: info.local ?? info.local6, mac: link.address, mtu: link.mtu,
      up: (link.flags ?? []).includes("UP"),
      addresses: addrs.map((a) => formatCidr(parseCidr(`${a.local}/${a.prefixlen}`, { allowHostBits: true }))),
    },
    fdb, neighbors,
  };
}

/** Device and neighbours first (routes through the device need it up), then the forwarding entries. */
export async function applyVxlan(plan: VxlanLines, netns?: string): Promise<string[]> {
  const errors: string[] = [];
  for (const [tool, lines] of [["ip", plan.ip], ["bridge", plan.bridge]] as const) {
    if (lines.length === 0) continue;
    const r = await run(tool, ["-force", "-batch", "-"], { netns, input: `${lines.join("\n")}\n` });
    if (r.code !== 0) errors.push(...(r.stderr.split("\n").map((l) => l.trim()).filter(Boolean).slice(0, 3)), ...(r.stderr.trim() ? [] : [`${tool} -batch exited ${r.code}`]));
  }
  return errors;
}

/** The refusal's errors, led by what holds the port or VNI when that is the cause. */
export async function explainVxlanErrors(errors: string[], want: { port: number; vni: number }, netns?: string): Promise<string[]> {
  if (!vxlanClash(errors, want, [])) return errors;
  const r = await run("ip", ["-d", "-json", "link", "show", "type", "vxlan"], { netns });
  let others: OtherVxlan[] = [];
  try {
    others = (JSON.parse(r.stdout || "[]") as Array<JsonLink & { ifname: string }>).filter((l) => l.ifname !== VXLAN_DEVICE)
      .map((l) => ({ name: l.ifname, vni: l.linkinfo?.info_data?.id, port: l.linkinfo?.info_data?.port }));
  } catch { /* unreadable: name no device */ }
  return [vxlanClash(errors, want, others)!, ...errors];
}

/** `podnet agent cleanup`: the device goes, and with it its addresses, neighbours, fdb entries and routes. */
export async function removeVxlan(netns?: string): Promise<void> {
  const r = await run("ip", ["link", "del", VXLAN_DEVICE], { netns });
  if (r.code !== 0 && !/Cannot find device|does not exist/i.test(r.stderr)) throw new Error(`ip link del ${VXLAN_DEVICE} failed: ${r.stderr.trim()}`);
}
