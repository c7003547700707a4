import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cidrObjectName } from "../../src/lib/cidr.js";
import { podnetResource } from "../../src/lib/k8s.js";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { putNodeCidr, startAgent, toolShells, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

/**
 * The agent's intervals against a wall clock that steps, as NTP steps a clock found far off or a resumed VM's
 * does. The agent runs in this process with Date swapped for one offset by `wallClockStep`: Date.now() and
 * new Date() jump, performance.now() and timers do not (they are monotonic on a real host too).
 */
const RealDate = Date;
let wallClockStep = 0;
class SteppedDate extends RealDate {
  constructor(...args: ConstructorParameters<DateConstructor> | []) {
    if (args.length === 0) super(RealDate.now() + wallClockStep);
    else super(...(args as [number]));
  }
  static override now() { return RealDate.now() + wallClockStep; }
}

const fx = useControlPlane();
let bed: NetBed;
let agent: TestAgent;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ipForward = (ns: string) => execFileSync("ip", ["netns", "exec", ns, "sysctl", "-n", "net.ipv4.ip_forward"], { encoding: "utf8" }).trim();
const healthz = async () => (await fetch(`http://127.0.0.1:${agent.agent.metricsPort}/healthz`)).status;
/** Resolves as a pass ends: the loop's idle time starts from here. */
async function passEnded(): Promise<void> {
  const seen = agent.agent.syncs;
  while (agent.agent.syncs === seen) await pause(50);
}
const turnForwardingOff = (ns: string) => execFileSync("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=0"]);

/** A peer's NodeCIDR created and deleted every `ms`, as joins and leaves in a busy cluster: each wakes the agent. */
function churnPeer(peerIp: string, ms: number): () => Promise<void> {
  const cidr = "10.244.61.0/24";
  let on = true;
  const loop = (async () => {
    while (on) {
      await putNodeCidr(fx.api(), "peer", cidr, [peerIp]).catch(() => undefined);
      await pause(ms / 2);
      await fx.api().custom.deleteClusterCustomObject({ ...podnetResource("nodecidrs"), name: cidrObjectName(cidr) }).catch(() => undefined);
      await pause(ms / 2);
    }
  })();
  return async () => { on = false; await loop; };
}

/** Seconds until the agent has turned ip_forward on again, or undefined if not within `ms`. */
async function forwardingBackWithin(ns: string, ms: number): Promise<number | undefined> {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    if (ipForward(ns) === "1") return (performance.now() - t0) / 1000;
    await pause(200);
  }
  return undefined;
}

describe.skipIf(!isRoot())("node agent under a stepped wall clock (rung 3)", () => {
  beforeAll(async () => {
    globalThis.Date = SteppedDate as DateConstructor;
    bed = createNetBed("clk", 2, 59);
    await putNodeCidr(fx.api(), bed.nodes[0]!.name, "10.244.59.0/24", [bed.nodes[0]!.ip]);
    // /healthz's limits here: idle 3 resyncs + 30 s (60 s), a pass 5 s (10 minutes by default).
    agent = await startAgent(fx, bed.nodes[0]!, { "resync-period": "10s" }, { stuckPassMs: 5_000 });
    expect(await forwardingBackWithin(bed.nodes[0]!.ns, 20_000)).toBeDefined();
  }, 120_000);
  afterAll(async () => {
    for (const pid of toolShells()) try { process.kill(pid, "SIGCONT"); } catch { /* gone */ }
    wallClockStep = 0;
    globalThis.Date = RealDate;
    await agent?.stop();
    bed?.destroy();
  });

  // A node woken by events more often than the resync period never sees its resync timer fire: the full pass
  // (the only one that checks sysctls) is due by the time since the last one.
  it("a busy node still repairs drift within a resync after its clock steps back an hour", async () => {
    const ns = bed.nodes[0]!.ns;
    const measure = async () => {
      const stopChurn = churnPeer(bed.nodes[1]!.ip, 2_000);
      try {
        await pause(3_000);
        turnForwardingOff(ns);
        return await forwardingBackWithin(ns, 30_000);
      } finally { await stopChurn(); }
    };
    const clockRight = await measure();
    wallClockStep = -3_600_000;
    let steppedBack: number | undefined;
    try { steppedBack = await measure(); } finally { wallClockStep = 0; }
    console.log(`ip_forward back under churn (resync 10 s): clock right ${clockRight?.toFixed(1)} s; clock stepped back 1 h ${steppedBack === undefined ? "not within 30 s" : `${steppedBack.toFixed(1)} s`}`);
    expect(clockRight ?? Infinity).toBeLessThan(15);
    expect(steppedBack ?? Infinity).toBeLessThan(15);
  }, 120_000);

  it("/healthz stays 200 when the clock steps forward 10 minutes between passes", async () => {
    await passEnded();
    wallClockStep = 10 * 60_000;
    const statuses: number[] = [];
    try {
      // Past the next resync's pass: until then the loop is as idle as it was.
      for (const t0 = performance.now(); performance.now() - t0 < 12_000; await pause(500)) statuses.push(await healthz());
    } finally { wallClockStep = 0; }
    console.log(`/healthz every 0.5 s after a +10 min step: ${statuses.join(" ")}`);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
  }, 60_000);

  it("/healthz fails for a hung pass although the clock stepped back an hour while it ran", async () => {
    await passEnded();
    const shells = toolShells();
    expect(shells.length).toBeGreaterThan(0);
    for (const pid of shells) process.kill(pid, "SIGSTOP");
    const passes = agent.agent.syncs;
    let answered: number | undefined;
    try {
      await putNodeCidr(fx.api(), "peer2", "10.244.62.0/24", [bed.nodes[1]!.ip]); // a routing input: a pass starts and hangs on its ip call
      await pause(1_500);
      wallClockStep = -3_600_000;
      const t0 = performance.now();
      while (performance.now() - t0 < 15_000 && answered === undefined) { if (await healthz() === 503) answered = (performance.now() - t0) / 1000; else await pause(200); }
    } finally {
      wallClockStep = 0;
      for (const pid of shells) try { process.kill(pid, "SIGCONT"); } catch { /* gone */ }
    }
    console.log(`/healthz with a pass hung and the clock stepped back 1 h: ${answered === undefined ? "200 throughout 15 s" : `503 after ${answered.toFixed(1)} s`} (pass limit 5 s)`);
    expect(agent.agent.syncs).toBe(passes); // the pass was hung, not done
    expect(answered).toBeDefined();
    for (const t0 = performance.now(); await healthz() !== 200; await pause(200)) expect(performance.now() - t0).toBeLessThan(10_000);
  }, 60_000);
});
