import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, type AgentCleanupConfig } from "../config.js";
import { sleep } from "../lib/backoff.js";
import type { Logger } from "../log.js";
import { removePodBridge } from "./bridge-addresses.js";
import { isPodnetConflist, leftoversOf, readLeftovers, type CleanupItem } from "./cleanup-leftovers.js";
import { BRIDGE_NAME } from "./cni-conflist.js";
import { run } from "./exec.js";
import { removeForwardAccepts } from "./forward-accept-sync.js";
import { flushOwnRoutes } from "./ip-route.js";
import { removeNftTable } from "./masquerade.js";
import { NodeLockHeldError, takeNodeLock, type NodeLock } from "./node-lock.js";
import { removeVxlan } from "./vxlan.js";

/**
 * `podnet agent cleanup`: remove what the agent created (routes with its protocol, podnet.vxlan, its nft table,
 * its accepts in the host firewall's FORWARD chains, its conflist) and the pod bridge its conflist had the
 * bridge plugin make. Not beside a running agent, which would put it all back within a second: it takes the
 * agent's node lock (waiting `wait-for-agent` for an agent on its way out) and holds it throughout, so no agent
 * starts midway either. Every step runs even when one fails (no `nft` on a host that ran without masquerade):
 * one missing tool must not leave the bridge and the conflist behind. Then the node is read again, and what is
 * there is reported, not assumed gone. Throws at the end, naming what is left, so the command exits non-zero.
 */
export async function cleanupAgent(config: AgentCleanupConfig, log: Logger, netns?: string): Promise<void> {
  // Otherwise every step reads "No such file" as "nothing there" and the cleanup claims a success it never had.
  if (netns && !existsSync(join("/run/netns", netns))) throw new ConfigError(`network namespace ${netns} does not exist`);
  const lock = await lockOutAgents(config["lock-dir"], netns, config["wait-for-agent"], log);
  try {
    await cleanNode(config, log, netns);
  } finally {
    await lock.release();
  }
}

/** The node lock, waiting up to `waitMs` for its holder to go; past that, the refusal naming the holder. */
async function lockOutAgents(dir: string, netns: string | undefined, waitMs: number, log: Logger): Promise<NodeLock> {
  const deadline = performance.now() + waitMs;
  for (let said = false; ; said = true) {
    try {
      return await takeNodeLock(dir, netns, { role: "cleanup" });
    } catch (err) {
      if (!(err instanceof NodeLockHeldError)) throw err;
      if (performance.now() >= deadline) throw new Error(waitMs ? `${err.message} (waited ${waitMs / 1000} s for it to stop)` : err.message, { cause: err });
      if (!said) log.warn({ holder: err.holder }, `${err.message}; waiting up to ${waitMs / 1000} s for it to stop`);
      await sleep(250);
    }
  }
}

async function cleanNode(config: AgentCleanupConfig, log: Logger, netns?: string): Promise<void> {
  const node = config["node-name"];
  const pods = await podInterfacesOnBridge(netns).catch(() => []); // no `ip`: the steps that need it say so
  if (pods.length > 0) {
    log.warn({ node, interfaces: pods }, `${pods.length} pod interface(s) still on ${BRIDGE_NAME}: those pods lose their network now, and the runtime `
      + "cannot tear their sandboxes down through a CNI config that is gone; drain the node before cleanup");
  }
  const conflist = join(config["cni-conf-dir"], config["conflist-name"]);
  const steps: Array<[CleanupItem, () => Promise<unknown>]> = [
    // The conflist first: a sandbox set up after the bridge went would have the bridge plugin make it again.
    ["conflist", async () => { if (isPodnetConflist(conflist)) rmSync(conflist); }],
    ["routes", () => flushOwnRoutes(netns)],
    ["vxlan device", () => removeVxlan(netns)],
    ["nft table", () => removeNftTable(netns)],
    ["firewall FORWARD accepts", () => removeForwardAccepts(netns)],
    ["pod bridge", () => removePodBridge(netns)],
  ];
  const failed = new Map<CleanupItem, string>();
  for (const [what, step] of steps) {
    try { await step(); } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      failed.set(what, why);
      log.error({ node, step: what, err: why }, `cleanup: ${what} not removed; going on with the rest`);
    }
  }
  // A step's failure already names its item; the read names what else is there.
  const seen = leftoversOf(await readLeftovers(netns, conflist)).filter(([what]) => !failed.has(what));
  const left = [...[...failed].map(([what, why]) => `${what} (${why})`), ...seen.map(([what, why]) => `${what} (${why})`)];
  if (left.length > 0) throw new Error(`podnet cleanup left: ${left.join("; ")}`);
  log.info({ node, conflist, bridge: BRIDGE_NAME }, `nothing of podnet's left: ${steps.map(([what]) => what).join(", ")} removed where present, and none found when the node was read again`);
}

/** Ports of the pod bridge: each one is a pod's veth. */
async function podInterfacesOnBridge(netns?: string): Promise<string[]> {
  const shown = await run("ip", ["-json", "link", "show", "master", BRIDGE_NAME], { netns });
  if (shown.code !== 0) return []; // no bridge
  return (JSON.parse(shown.stdout || "[]") as Array<{ ifname: string }>).map((l) => l.ifname);
}
