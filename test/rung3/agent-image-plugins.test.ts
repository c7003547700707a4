import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { imageCniPluginsDir } from "../../src/localcluster/kube-bins.js";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { ping, sourceSeenBy } from "../../src/localcluster/udp-probe.js";
import { putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

const fx = useControlPlane();
let bed: NetBed;
const agents: TestAgent[] = [];
const pods: Pod[] = [];
const PLUGINS = ["bridge", "host-local", "portmap", "loopback"];

// The other rung-3 files use Debian's packaged plugins; the image ships upstream's, built static
// (hack/build-cni-plugins.sh, run by the Dockerfile too). These are the ones nodes actually get.
describe.skipIf(!isRoot())("the CNI plugins the image installs on nodes, with podnet's conflist (rung 3)", () => {
  let binDir: string;
  beforeAll(async () => {
    binDir = imageCniPluginsDir();
    bed = createNetBed("ip", 2, 75);
    for (const [i, n] of bed.nodes.entries()) await putNodeCidr(fx.api(), n.name, `10.244.${50 + i}.0/24`, [n.ip]);
    for (const n of bed.nodes) agents.push(await startAgent(fx, n, { "cni-bin-dir": binDir }));
    for (const a of agents) await waitFor("conflist", async () => (existsSync(join(a.confDir, "10-podnet.conflist")) ? true : undefined), 15_000);
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    for (const a of agents) await a.stop();
    bed?.destroy();
  });

  it("are statically linked: a node's own libc (or its absence) does not matter", () => {
    for (const plugin of PLUGINS) {
      const ldd = spawnSync("ldd", [join(binDir, plugin)], { encoding: "utf8" });
      expect(`${ldd.stdout}${ldd.stderr}`, plugin).toMatch(/not a dynamic executable|statically linked/);
    }
  });

  it("run pods across two nodes with the CNI version podnet chose for them: ping, no NAT, DEL cleans up", async () => {
    const conflist = JSON.parse(readFileSync(join(agents[0]!.confDir, "10-podnet.conflist"), "utf8")) as { cniVersion: string };
    const reported = JSON.parse(execFileSync(join(binDir, "bridge"), { env: { CNI_COMMAND: "VERSION" }, input: "{}", encoding: "utf8" })) as { supportedVersions: string[] };
    expect(reported.supportedVersions).toContain(conflist.cniVersion);
    const a = addPod(bed.nodes[0]!.ns, agents[0]!.confDir, "img-a", [], binDir);
    const b = addPod(bed.nodes[1]!.ns, agents[1]!.confDir, "img-b", [], binDir);
    pods.push(a, b);
    expect(a.ips[0]).toMatch(/^10\.244\.50\./);
    expect(ping(a.ns, b.ips[0]!)).toBe(true);
    expect(await sourceSeenBy(b.ns, b.ips[0]!, a.ns)).toBe(a.ips[0]);
    // host-local keeps one file per address it handed out; DEL must give b's back.
    const list = JSON.parse(readFileSync(join(agents[1]!.confDir, "10-podnet.conflist"), "utf8")) as { name: string; plugins: Array<{ ipam?: { dataDir: string } }> };
    const leases = () => readdirSync(join(list.plugins[0]!.ipam!.dataDir, list.name));
    expect(leases()).toContain(b.ips[0]!);
    deletePod(pods.pop()!);
    expect(leases()).not.toContain(b.ips[0]!);
  });
});
