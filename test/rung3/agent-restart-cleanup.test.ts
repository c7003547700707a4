import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { podnetResource } from "../../src/lib/k8s.js";
import { flushOwnRoutes } from "../../src/node-agent/ip-route.js";
import { conditionsOf, putNodeCidr, startAgent, testLockDir } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { createNodeMarkedUnavailable, networkUnavailableOf, ownNexthops, ownRoutes } from "../harness/node-reads.js";
import { createNetBed, ipIn, ipJson, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { podnetCliArgv, podnetCliEnv } from "../../src/localcluster/podnet-cli.js";

const fx = useControlPlane();
const nodecidrs = podnetResource("nodecidrs");

describe.skipIf(!isRoot())("agent restart, dry-run, unwritable config dir and cleanup (rung 3)", () => {
  let bed2: NetBed;
  beforeAll(() => { bed2 = createNetBed("rs", 2, 78); });
  afterAll(() => bed2?.destroy());

  it("converges after being down while nodes came and went: no stale route, new routes in place", async () => {
    const [m1, m2] = bed2.nodes;
    await putNodeCidr(fx.api(), m1!.name + "x", "10.245.1.0/24", [m1!.ip]);
    await putNodeCidr(fx.api(), "gone-node", "10.245.7.0/24", ["192.168.78.50"]); // a neighbour on m2's segment
    const first = await startAgent(fx, m2!, { "node-name": "m2x" });
    await waitFor("two routes", async () => (ownRoutes(m2!.ns).length === 2 ? true : undefined), 10_000);
    await first.stop();
    await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name: "10-245-7-0-24" });
    await putNodeCidr(fx.api(), "new-node", "10.245.8.0/24", [m1!.ip]);
    const second = await startAgent(fx, m2!, { "node-name": "m2x" });
    await waitFor("converged", async () => (ownRoutes(m2!.ns).join() === "10.245.1.0/24 via 192.168.78.11,10.245.8.0/24 via 192.168.78.11" ? true : undefined), 10_000);
    expect(ownNexthops(m2!.ns)).toEqual(["192.168.78.11"]); // the departed node's nexthop went with its route
    await second.stop();
  });

  it("adds routes while its first list is still paging in; the full pass after it withholds records that overlap", async () => {
    const [m1, m2] = bed2.nodes;
    // Listed in name order: the /16 arrives on an earlier page than the /24 inside it.
    const names = [await putNodeCidr(fx.api(), "wide", "10.246.0.0/16", [m1!.ip]), await putNodeCidr(fx.api(), "narrow", "10.246.1.0/24", [m1!.ip])];
    // An empty table, so the healthy records' routes (from the test before) are there to be added early.
    await flushOwnRoutes(m2!.ns);
    const a = await startAgent(fx, m2!, { "node-name": "m2x" }, { listPageSize: 1 });
    const outcome = await a.agent.syncNow();
    const early = (await a.agent.metrics.routeChanges.get()).values.find((v) => v.labels.op === "early-add");
    expect(early?.value).toBeGreaterThan(0);
    expect(outcome.rejected.map((r) => r.reason)).toEqual(["OverlappingCIDR", "OverlappingCIDR"]);
    expect(ownRoutes(m2!.ns).filter((r) => r.startsWith("10.246."))).toEqual([]);
    expect(ownRoutes(m2!.ns)).toHaveLength(outcome.routes.installed);
    await a.stop();
    for (const name of names) await fx.api().custom.deleteClusterCustomObject({ ...nodecidrs, name });
  });

  it("--dry-run changes nothing", async () => {
    const [, m2] = bed2.nodes;
    await createNodeMarkedUnavailable(fx.api(), "dry");
    await flushOwnRoutes(m2!.ns); // the two routes via m1 that the tests before left are what it would add
    const dry = await startAgent(fx, m2!, { "node-name": "dry", "dry-run": "true" });
    const outcome = await dry.agent.syncNow();
    expect((await networkUnavailableOf(fx.api(), "dry"))?.status).toBe("True");
    expect(outcome.routes.added).toBe(2); // would add
    expect((await dry.agent.metrics.routeChanges.get()).values.reduce((n, v) => n + v.value, 0)).toBe(0); // changed nothing
    expect(ownRoutes(m2!.ns)).toEqual([]);
    expect(readdirSync(dry.confDir)).toEqual([]);
    await dry.stop();
  });

  it("reports an unwritable CNI config dir without leaving a partial file, and cleanup removes only podnet's state", async () => {
    const [m1, m2] = bed2.nodes;
    await putNodeCidr(fx.api(), "m1", "10.245.2.0/24", [m1!.ip]);
    await putNodeCidr(fx.api(), "m1-peer", "10.245.3.0/24", [m2!.ip]); // a route to install whatever ran before
    await createNodeMarkedUnavailable(fx.api(), "m1");
    const a = await startAgent(fx, m1!, { "node-name": "m1", "cni-conf-dir": "/proc/podnet-no-such-dir" });
    const outcome = await a.agent.syncNow();
    expect(outcome.cni.error).toContain("does not exist");
    expect(outcome.routes.installed).toBeGreaterThan(0); // other work still done
    const cond = await waitFor("WriteFailed", async () => (await conditionsOf(fx.api(), "10-245-2-0-24")).find((c) => c.reason === "WriteFailed"), 10_000);
    expect(cond.status).toBe("False");
    expect((await networkUnavailableOf(fx.api(), "m1"))?.status).toBe("True"); // pods cannot be networked here: the taint stays
    expect(a.agent.networkCondition.cleared).toBe(false);
    await a.stop();
    ipIn(m1!.ns, "route", "add", "10.99.0.0/24", "via", "192.168.78.12", "proto", "static");
    // The agent's own directory went with it: cleanup gets one holding podnet's conflist and another network's.
    const confDir = mkdtempSync(join(tmpdir(), "podnet-cleanup-"));
    const { conflistText, renderConflist } = await import("../../src/node-agent/cni-conflist.js");
    writeFileSync(join(confDir, "10-podnet.conflist"), conflistText(renderConflist({ cniVersion: "1.0.0", podCidrs: ["10.245.2.0/24"], mtu: 1500 })));
    writeFileSync(join(confDir, "20-other.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "other", plugins: [{ type: "bridge" }] }));
    if (!ipJson<Array<{ ifname: string }>>(m1!.ns, "link", "show").some((l) => l.ifname === "podnet.vxlan")) ipIn(m1!.ns, "link", "add", "podnet.vxlan", "type", "vxlan", "id", "1", "dstport", "8472");
    execFileSync("ip", ["netns", "exec", m1!.ns, "nft", "add", "table", "inet", "podnet"]);
    // The pod bridge as the bridge plugin leaves it (gateway address, connected route), and another network's bridge.
    for (const [bridge, gateway] of [["podnet0", "10.245.2.1/24"], ["cni0", "10.88.0.1/16"]] as const) {
      ipIn(m1!.ns, "link", "add", bridge, "type", "bridge");
      ipIn(m1!.ns, "addr", "add", gateway, "dev", bridge);
      ipIn(m1!.ns, "link", "set", bridge, "up");
    }
    // The command as the cleanup DaemonSet runs it: the bundle, no node name (it finds podnet's state by podnet's marks).
    const cliDir = mkdtempSync(join(tmpdir(), "podnet-cleanup-cli-"));
    try {
      const [node, ...cli] = await podnetCliArgv(cliDir);
      const { NODE_NAME: _unset, ...env } = process.env;
      execFileSync(node!, [...cli, "agent", "cleanup", `--netns=${m1!.ns}`, `--cni-conf-dir=${confDir}`, `--lock-dir=${testLockDir()}`], { env: { ...env, ...podnetCliEnv(cliDir) }, timeout: 30_000, stdio: "pipe" });
    } finally { rmSync(cliDir, { recursive: true, force: true }); }
    expect(readdirSync(confDir)).toEqual(["20-other.conflist"]);
    rmSync(confDir, { recursive: true });
    expect(execFileSync("ip", ["netns", "exec", m1!.ns, "nft", "list", "tables"], { encoding: "utf8" })).not.toContain("podnet");
    expect(ipJson(m1!.ns, "link", "show")).not.toContainEqual(expect.objectContaining({ ifname: "podnet.vxlan" }));
    const links = ipJson<Array<{ ifname: string }>>(m1!.ns, "link", "show").map((l) => l.ifname);
    expect(links).not.toContain("podnet0");
    expect(links).toContain("cni0");
    expect(ipJson(m1!.ns, "route", "show", "10.245.2.0/24")).toEqual([]); // the old pod range's connected route went with the bridge
    expect(ownRoutes(m1!.ns)).toEqual([]);
    expect(ownNexthops(m1!.ns)).toEqual([]);
    expect(ipJson(m1!.ns, "route", "show", "10.99.0.0/24")).toHaveLength(1);
    expect(ipIn(m1!.ns, "-j", "link").length).toBeGreaterThan(0);
  });
});
