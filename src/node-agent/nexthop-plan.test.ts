import { describe, expect, it } from "vitest";
import { NEXTHOP_ID_BASE, NexthopTable, planRouteBatch, withNexthopGateways, type ObservedNexthop } from "./nexthop-plan.js";
import { planRoutes, RouteTable, type ObservedRoute, type RouteAction } from "./routes-plan.js";

const B = NEXTHOP_ID_BASE;
const eth0 = (gw: string) => (gw.startsWith("192.168.1.") ? "eth0" : undefined);
const nh = (id: number, gateway: string, dev = "eth0", ours = true, onlink = false): ObservedNexthop => ({ id, gateway, dev, onlink, ours });
const route = (dst: string, gateway: string, nhid?: number, ours = true): ObservedRoute => ({ dst, gateway, ours, ...(nhid ? { nhid } : {}) });
const add = (dst: string, via: string, dev?: string): RouteAction => ({ kind: "add", dst, via, ...(dev ? { dev } : {}) });

describe("planRouteBatch", () => {
  it.each<[string, RouteAction[], ObservedRoute[], ObservedNexthop[], string[]]>([
    ["creates one nexthop per gateway and points the route at it",
      [add("10.244.2.0/24", "192.168.1.2")], [], [],
      [`nexthop add id ${B} via 192.168.1.2 dev eth0 proto 249`, `route add 10.244.2.0/24 nhid ${B} proto 249`]],
    ["reuses podnet's nexthop for the same gateway and device",
      [add("10.244.3.0/24", "192.168.1.2")], [route("10.244.2.0/24", "192.168.1.2", B)], [nh(B, "192.168.1.2")],
      [`route add 10.244.3.0/24 nhid ${B} proto 249`]],
    ["never reuses another owner's nexthop, and skips the ids it holds",
      [add("10.244.2.0/24", "192.168.1.2")], [], [nh(B, "192.168.1.2", "eth0", false)],
      [`nexthop add id ${B + 1} via 192.168.1.2 dev eth0 proto 249`, `route add 10.244.2.0/24 nhid ${B + 1} proto 249`]],
    ["removes a podnet nexthop once its last route is gone, after the route",
      [{ kind: "delete", dst: "10.244.2.0/24" }], [route("10.244.2.0/24", "192.168.1.2", B)], [nh(B, "192.168.1.2")],
      ["route del 10.244.2.0/24 proto 249", `nexthop del id ${B}`]],
    ["keeps a nexthop another route still uses",
      [{ kind: "delete", dst: "10.244.2.0/24" }], [route("10.244.2.0/24", "192.168.1.2", B), route("10.244.3.0/24", "192.168.1.2", B)], [nh(B, "192.168.1.2")],
      ["route del 10.244.2.0/24 proto 249"]],
    ["keeps a podnet nexthop a foreign route points at",
      [], [route("10.9.0.0/16", "192.168.1.2", B, false)], [nh(B, "192.168.1.2")], []],
    ["moves a route to a new gateway and drops the old nexthop",
      [{ kind: "replace", dst: "10.244.2.0/24", via: "192.168.1.3", was: "192.168.1.2" }], [route("10.244.2.0/24", "192.168.1.2", B)], [nh(B, "192.168.1.2")],
      [`nexthop add id ${B + 1} via 192.168.1.3 dev eth0 proto 249`, `route replace 10.244.2.0/24 nhid ${B + 1} proto 249`, `nexthop del id ${B}`]],
    ["moves a route whose gateway's interface changed (eth0 bridged into br0) onto a nexthop there, and drops the one on eth0",
      [{ kind: "replace", dst: "10.244.2.0/24", via: "192.168.1.2", linkDev: "br0", was: "192.168.1.2" }], [route("10.244.2.0/24", "192.168.1.2", B)], [nh(B, "192.168.1.2")],
      [`nexthop add id ${B + 1} via 192.168.1.2 dev br0 proto 249`, `route replace 10.244.2.0/24 nhid ${B + 1} proto 249`, `nexthop del id ${B}`]],
    ["gives an overlay route an onlink nexthop on the overlay device",
      [add("10.244.9.0/24", "10.244.9.0", "podnet.vxlan")], [], [],
      [`nexthop add id ${B} via 10.244.9.0 dev podnet.vxlan onlink proto 249`, `route add 10.244.9.0/24 nhid ${B} proto 249`]],
    ["writes a route whose gateway's device is unknown the classic way",
      [add("10.244.2.0/24", "172.16.0.2")], [], [],
      ["route add 10.244.2.0/24 via 172.16.0.2 proto 249"]],
  ])("%s", (_case, actions, routes, nexthops, expected) => {
    expect(planRouteBatch(actions, routes, nexthops, eth0).text.split("\n").filter(Boolean)).toEqual(expected);
  });

  it("writes every route the classic way on a kernel without nexthop objects", () => {
    const batch = planRouteBatch([add("10.244.2.0/24", "192.168.1.2"), { kind: "delete", dst: "10.244.3.0/24" }], [], undefined, eth0);
    expect(batch.text).toBe("route add 10.244.2.0/24 via 192.168.1.2 proto 249\nroute del 10.244.3.0/24 proto 249\n");
    expect(batch.created).toEqual([]);
  });

  // applyBatch spawns no `ip` for an empty text: a lone newline spawned one on every pass with nothing to do.
  it.each<[string, ObservedNexthop[] | undefined]>([["with nexthop objects", []], ["on a kernel without nexthop objects", undefined]])(
    "writes nothing for no actions %s", (_case, nexthops) => expect(planRouteBatch([], [route("10.244.2.0/24", "192.168.1.2")], nexthops, eth0).text).toBe(""));

  it("reports what it created, deleted and which nexthop each route uses", () => {
    const batch = planRouteBatch([add("10.244.2.0/24", "192.168.1.2"), { kind: "delete", dst: "10.244.3.0/24" }],
      [route("10.244.3.0/24", "192.168.1.3", B + 7)], [nh(B + 7, "192.168.1.3")], eth0);
    expect(batch.created).toEqual([nh(B, "192.168.1.2")]);
    expect(batch.deleted).toEqual([B + 7]);
    expect(batch.nhidOf).toEqual(new Map([["10.244.2.0/24", B]]));
  });
});

describe("withNexthopGateways (nexthop_compat_mode=0 lists a route by its nexthop id alone)", () => {
  const listed = (dst: string, nhid?: number, ours = true): ObservedRoute => ({ dst, ours, ...(nhid ? { nhid } : {}) });
  const overlay = nh(B + 1, "10.244.9.0", "podnet.vxlan", true, true);
  const group: ObservedNexthop = { id: 7, onlink: false, ours: false };
  it.each<[string, ObservedRoute[], ObservedNexthop[] | undefined, ObservedRoute[]]>([
    ["fills gateway and device from the nexthop, IPv4 and IPv6", [listed("10.244.2.0/24", B), listed("fd00:10:244:2::/64", B + 2)], [nh(B, "192.168.1.2"), nh(B + 2, "fd00:1::2")],
      [{ ...listed("10.244.2.0/24", B), gateway: "192.168.1.2", dev: "eth0" }, { ...listed("fd00:10:244:2::/64", B + 2), gateway: "fd00:1::2", dev: "eth0" }]],
    ["fills an overlay route's onlink nexthop on podnet.vxlan", [listed("10.244.9.0/24", B + 1)], [overlay],
      [{ ...listed("10.244.9.0/24", B + 1), gateway: "10.244.9.0", dev: "podnet.vxlan" }]],
    ["fills a foreign route's too (a conflict names its gateway)", [listed("10.9.0.0/16", B, false)], [nh(B, "192.168.1.2", "eth0", false)],
      [{ ...listed("10.9.0.0/16", B, false), gateway: "192.168.1.2", dev: "eth0" }]],
    ["leaves a route listed with its gateway (compat mode 1) as it is", [route("10.244.2.0/24", "192.168.1.2", B)], [nh(B, "192.168.1.3")], [route("10.244.2.0/24", "192.168.1.2", B)]],
    ["leaves a route through a group, an unknown id and one without nexthop alone", [listed("10.9.0.0/16", 7, false), listed("10.244.3.0/24", B + 9), { dst: "192.168.1.0/24", dev: "eth0", ours: false }], [group],
      [listed("10.9.0.0/16", 7, false), listed("10.244.3.0/24", B + 9), { dst: "192.168.1.0/24", dev: "eth0", ours: false }]],
    ["leaves routes alone on a kernel without nexthop objects", [listed("10.244.2.0/24")], undefined, [listed("10.244.2.0/24")]],
  ])("%s", (_case, routes, nexthops, expected) => expect(withNexthopGateways(routes, nexthops)).toEqual(expected));

  it("reads as unchanged what the planner wrote: a resolved listing plans nothing", () => {
    const routes = withNexthopGateways([listed("10.244.2.0/24", B), listed("10.244.9.0/24", B + 1)], [nh(B, "192.168.1.2"), overlay]);
    expect(planRoutes([{ dst: "10.244.2.0/24", via: "192.168.1.2", nodeName: "n", linkDev: "eth0" }, { dst: "10.244.9.0/24", via: "10.244.9.0", nodeName: "o", dev: "podnet.vxlan" }], routes).actions).toEqual([]);
  });
});

describe("route and nexthop tables kept in step with applied batches", () => {
  // The kernel after a batch, as a fresh read would show it: what the tables must agree with.
  const kernelAfter = (routes: ObservedRoute[], nexthops: ObservedNexthop[], actions: RouteAction[], batch: ReturnType<typeof planRouteBatch>) => {
    const byDst = new Map(routes.map((r) => [`${r.ours}|${r.dst}`, r]));
    for (const a of actions) {
      byDst.delete(`true|${a.dst}`);
      if (a.kind !== "delete") byDst.set(`true|${a.dst}`, { ...route(a.dst, a.via, batch.nhidOf.get(a.dst)), ...(a.dev ? { dev: a.dev } : {}) });
    }
    const gone = new Set(batch.deleted);
    return { routes: [...byDst.values()], nexthops: [...nexthops.filter((n) => !gone.has(n.id)), ...batch.created] };
  };

  it("plans exactly what a fresh read of the kernel would, over 300 random passes", () => {
    let seed = 7;
    const random = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return Math.floor(seed / 65536) % n; };
    // A foreign route on one of podnet's nexthops, and an idle podnet nexthop left by an earlier run.
    let kernel = { routes: [route("10.9.0.0/16", "192.168.1.2", B, false)], nexthops: [nh(B, "192.168.1.2"), nh(B + 3, "192.168.1.9")] };
    const routes = new RouteTable(kernel.routes);
    const nexthops = new NexthopTable(kernel.nexthops, kernel.routes);
    for (let pass = 0; pass < 300; pass++) {
      const desired = Array.from({ length: random(12) }, () => random(16)).map((i) => {
        const gateway = [`192.168.1.${2 + random(4)}`, "172.16.0.2"][random(5) === 0 ? 1 : 0]!;
        return random(6) === 0 ? { dst: `10.244.${i}.0/24`, via: `10.244.${i}.0`, nodeName: "n", dev: "podnet.vxlan" } : { dst: `10.244.${i}.0/24`, via: gateway, nodeName: "n" };
      }).filter((r, i, all) => all.findIndex((o) => o.dst === r.dst) === i);
      const { actions } = planRoutes(desired, routes);
      const fresh = planRouteBatch(actions, kernel.routes, kernel.nexthops, eth0);
      const kept = planRouteBatch(actions, routes, nexthops, eth0);
      expect(kept.text).toBe(fresh.text);
      const byDst = (list: RouteAction[]) => [...list].sort((a, b) => a.dst.localeCompare(b.dst));
      expect(byDst(planRoutes(desired, kernel.routes).actions)).toEqual(byDst(actions));
      routes.applyActions(actions, kept.nhidOf);
      nexthops.applyBatch(kept);
      kernel = kernelAfter(kernel.routes, kernel.nexthops, actions, kept);
    }
    // Removing everything podnet routes must free every podnet nexthop except the one the foreign route uses.
    const all = planRoutes([], routes).actions;
    expect(planRouteBatch(all, routes, nexthops, eth0).text).toBe(planRouteBatch(all, kernel.routes, kernel.nexthops, eth0).text);
    expect(planRouteBatch(all, routes, nexthops, eth0).deleted).not.toContain(B);
  });
});
