import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

// One node whose IPv6 range arrives after its IPv4 one, with the default 30 s resync: the IPv6 record must not
// be reported ready on the IPv4-only full pass's sysctls while IPv6 forwarding is still off.
const fx = useControlPlane();
let bed: NetBed;
let agent: TestAgent;
const sysctl = (key: string) => execFileSync("ip", ["netns", "exec", bed.nodes[0]!.ns, "sysctl", "-n", key], { encoding: "utf8" }).trim();
const setSysctl = (key: string, value: string) => execFileSync("ip", ["netns", "exec", bed.nodes[0]!.ns, "sysctl", "-qw", `${key}=${value}`]);
const ready = async (name: string) => (await conditionsOf(fx.api(), name)).some((c) => c.type === "Ready" && c.status === "True");

describe.skipIf(!isRoot())("node agent: IPv6 forwarding when a node's IPv6 range comes later (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("fw6", 1, 57);
    setSysctl("net.ipv6.conf.all.forwarding", "0");
    setSysctl("net.ipv6.conf.eth0.accept_ra", "1");
    const n1 = bed.nodes[0]!;
    const v4 = await putNodeCidr(fx.api(), n1.name, "10.57.1.0/24", [n1.ip, n1.ip6]);
    agent = await startAgent(fx, n1, { "resync-period": "30s" });
    await waitFor("the IPv4 record Ready", async () => (await ready(v4)) || undefined, 15_000);
  });
  afterAll(async () => {
    await agent?.stop();
    bed?.destroy();
  });

  it("turns IPv6 forwarding on (accept_ra 1 → 2 first) when the IPv6 range arrives, before its record says Ready", async () => {
    expect(sysctl("net.ipv6.conf.all.forwarding")).toBe("0"); // IPv4 alone needs no IPv6 forwarding
    const n1 = bed.nodes[0]!;
    const v6 = await putNodeCidr(fx.api(), n1.name, "fd00:57:1::/64", [n1.ip, n1.ip6]);
    // Well inside the 30 s resync: only the event pass the new record wakes can have done it.
    await waitFor("the IPv6 record Ready", async () => (await ready(v6)) || undefined, 10_000);
    expect(sysctl("net.ipv6.conf.all.forwarding")).toBe("1");
    expect(sysctl("net.ipv6.conf.eth0.accept_ra")).toBe("2");
    const sysctls = (await conditionsOf(fx.api(), v6)).find((c) => c.type === "SysctlsReady");
    expect(sysctls).toMatchObject({ status: "True", reason: "Set" });
    expect(sysctls!.message).toContain("forwarding enabled (IPv4, IPv6)");
  });

  it("moves accept_ra 1 → 2 also where IPv6 forwarding was already on (the bridge plugin turns it on for a pod's first IPv6 address)", async () => {
    // As after a pod's ADD raced the agent: forwarding on, an interface still at 1, ignoring router advertisements.
    setSysctl("net.ipv6.conf.all.forwarding", "1");
    setSysctl("net.ipv6.conf.eth0.accept_ra", "1");
    await agent.agent.syncNow(); // a full pass
    expect(sysctl("net.ipv6.conf.eth0.accept_ra")).toBe("2");
  });
});
