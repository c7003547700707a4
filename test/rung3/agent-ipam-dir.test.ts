import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentConfigSchema } from "../../src/config.js";
import { addPod, deletePod, type Pod } from "../../src/localcluster/cni-exec.js";
import { CNI_BIN_DIR } from "../../src/localcluster/cni-exec.js";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { silentLogger } from "../../src/log.js";
import { NodeAgent } from "../../src/node-agent/agent.js";
import { IPAM_DATA_DIR_KEPT } from "../../src/node-agent/report.js";
import { conditionsOf, putNodeCidr, testLockDir } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { eventsFor } from "../harness/cluster-objects.js";

const fx = useControlPlane();
let bed: NetBed;
let home: string;
let agent: NodeAgent | undefined;
const pods: Pod[] = [];
const CIDR = "10.244.80.0/24";

type Conflist = { name: string; plugins: Array<{ ipam?: { dataDir?: string } }> };
const conflistPath = () => join(home, "net.d", "10-podnet.conflist");
const dataDirOfConflist = () => (JSON.parse(readFileSync(conflistPath(), "utf8")) as Conflist).plugins[0]!.ipam!.dataDir;
const leasesIn = (dataDir: string) => (existsSync(join(dataDir, "podnet")) ? readdirSync(join(dataDir, "podnet")).filter((f) => /^\d/.test(f)) : []);

async function startAgentWith(ipamDataDir: string): Promise<NodeAgent> {
  const node = bed.nodes[0]!;
  const config = agentConfigSchema.parse({ "node-name": node.name, "cni-conf-dir": join(home, "net.d"), "cni-bin-dir": CNI_BIN_DIR,
    "ipam-data-dir": ipamDataDir, "metrics-address": "127.0.0.1:0", "resync-period": "1h", "lock-dir": testLockDir() });
  const started = new NodeAgent(fx.api("podnet-agent"), config, silentLogger(), { netns: node.ns });
  await started.start();
  return started;
}

// host-local knows which addresses are taken only from its lease files. A node whose pods hold leases in one
// directory must not be pointed at another (empty) one, or new pods get the running pods' addresses.
describe.skipIf(!isRoot())("the node's host-local state directory (rung 3: real agent, real CNI plugins)", () => {
  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), "podnet-ipam-dir-"));
    mkdirSync(join(home, "net.d"));
    bed = createNetBed("ia", 1, 70);
    await putNodeCidr(fx.api(), bed.nodes[0]!.name, CIDR, [bed.nodes[0]!.ip]);
  });
  afterAll(async () => {
    for (const p of pods) deletePod(p);
    await agent?.stop();
    bed?.destroy();
    rmSync(home, { recursive: true, force: true });
  });

  it("is tmpfs by default (/run), so a reboot, which ends pods without a CNI DEL, leaves no leases behind", () => {
    expect(agentConfigSchema.parse({ "node-name": "n" })["ipam-data-dir"]).toBe("/run/cni-ipam-state");
  });

  it("keeps the directory this node's pods hold leases in when the configuration names another, and says so", async () => {
    const first = join(home, "ipam-first");
    const second = join(home, "ipam-second");
    agent = await startAgentWith(first);
    await waitFor("conflist", async () => (existsSync(conflistPath()) ? true : undefined), 15_000);
    expect(dataDirOfConflist()).toBe(first);
    pods.push(addPod(bed.nodes[0]!.ns, join(home, "net.d"), "ia-1"), addPod(bed.nodes[0]!.ns, join(home, "net.d"), "ia-2"));
    expect(leasesIn(first)).toHaveLength(2);

    // The agent restarts with another directory configured (a changed chart value).
    await agent.stop();
    agent = await startAgentWith(second);
    await agent.syncNow();
    expect(dataDirOfConflist()).toBe(first);
    const c = await waitFor("kept condition", async () => (await conditionsOf(fx.api(), "10-244-80-0-24")).find((x) => x.type === "CNIConfigured" && x.reason === IPAM_DATA_DIR_KEPT), 10_000);
    expect(c.status).toBe("True");
    expect(c.message).toContain(`not the configured ${second}`);
    const events = await waitFor("event", async () => {
      const found = (await eventsFor(fx.api(), "NodeCIDR", "10-244-80-0-24")).filter((e) => e.reason === IPAM_DATA_DIR_KEPT);
      return found.length ? found : undefined;
    }, 10_000);
    expect(events[0]!.type).toBe("Warning");

    // A pod started now gets an address no running pod has (pointed at the empty directory, it got ia-1's).
    const third = addPod(bed.nodes[0]!.ns, join(home, "net.d"), "ia-3");
    pods.push(third);
    expect(pods.slice(0, 2).flatMap((p) => p.ips)).not.toContain(third.ips[0]);
    expect(leasesIn(second)).toHaveLength(0);

    // Drained and its conflist deleted, the node takes the configured directory.
    for (const p of pods.splice(0)) deletePod(p);
    rmSync(conflistPath());
    await agent.syncNow();
    expect(dataDirOfConflist()).toBe(second);
    await waitFor("Written again", async () => (await conditionsOf(fx.api(), "10-244-80-0-24")).find((x) => x.type === "CNIConfigured" && x.reason === "Written"), 10_000);
    pods.push(addPod(bed.nodes[0]!.ns, join(home, "net.d"), "ia-4"));
    expect(leasesIn(second)).toEqual([pods[0]!.ips[0]]);
  });
});
