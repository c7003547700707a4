import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNetBed, ipIn, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

/**
 * A node migrated from flannel keeps flannel.1 (VNI 1 on UDP 8472, podnet's defaults), or something else holds
 * the port. The kernel refuses podnet.vxlan, and iproute2's words named neither the port nor the holder.
 */
const fx = useControlPlane();
let bed: NetBed;
const agents: TestAgent[] = [];
let holder: ChildProcess | undefined;
const N2 = "10-238-2-0-24";
const routesProgrammed = async () => (await conditionsOf(fx.api(), N2)).find((c) => c.type === "RoutesProgrammed");

describe.skipIf(!isRoot())("node agent whose VXLAN port or VNI is taken (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("vc", 0, 82, 2); // two segments behind a router: n1 and n2 need the tunnel
    bed.addNode("n1", 0);
    bed.addNode("n2", 1);
    const n2 = bed.nodes[1]!;
    ipIn(n2.ns, "link", "add", "flannel.1", "type", "vxlan", "id", "1", "dstport", "8472", "local", n2.ip, "nolearning");
    ipIn(n2.ns, "link", "set", "flannel.1", "up");
    for (const [i, n] of bed.nodes.entries()) await putNodeCidr(fx.api(), n.name, `10.238.${i + 1}.0/24`, [n.ip]);
    for (const n of bed.nodes) agents.push(await startAgent(fx, n, { "resync-period": "1s" }));
  });
  afterAll(async () => {
    holder?.kill();
    for (const a of agents) await a.stop();
    bed?.destroy();
  });

  it("names flannel.1 and --vxlan-id, then names a socket on the port and --vxlan-port, and tunnels once both are gone", async () => {
    const n2 = bed.nodes[1]!;
    const byDevice = await waitFor("the clash reported", async () => {
      const c = await routesProgrammed();
      return c?.status === "False" && c.message.includes("flannel.1") ? c : undefined;
    }, 20_000);
    expect(byDevice.message).toContain("VNI 1 on UDP port 8472 is taken by flannel.1 (VNI 1): delete that device if it is a former CNI's, or give the agent another --vxlan-id");

    // The device goes; a process holds the port instead.
    ipIn(n2.ns, "link", "del", "flannel.1");
    holder = spawn("ip", ["netns", "exec", n2.ns, "python3", "-c", "import socket,time;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('0.0.0.0',8472));time.sleep(120)"], { stdio: "ignore" });
    const bySocket = await waitFor("the socket reported", async () => {
      const c = await routesProgrammed();
      return c?.status === "False" && c.message.includes("another socket") ? c : undefined;
    }, 20_000);
    expect(bySocket.message).toContain("UDP port 8472 is taken by another socket (`ss -ulpn sport = :8472` names it): stop it, or give the agent another --vxlan-port");

    holder.kill();
    await waitFor("routes programmed through the tunnel", async () => ((await routesProgrammed())?.status === "True" ? true : undefined), 20_000);
  });
});
