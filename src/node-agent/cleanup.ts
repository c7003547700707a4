import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, type AgentCleanupConfig } from "../config.js";
import type { Logger } from "../log.js";
import { removePodBridge } from "./bridge-addresses.js";
import { BRIDGE_NAME } from "./cni-conflist.js";
import { run } from "./exec.js";
import { removeForwardAccepts } from "./forward-accept-sync.js";
import { flushOwnRoutes } from "./ip-route.js";
import { removeNftTable } from "./masquerade.js";
import { removeVxlan } from "./vxlan.js";

/**
 * `podnet agent cleanup`: remove what the agent created (routes with its protocol, podnet.vxlan, its nft table,
 * its accepts in the host firewall's FORWARD chains, its conflist) and the pod bridge its conflist had the
 * bridge plugin make. Every step runs even when one
 * fails (no `nft` on a host that ran without masquerade): one missing tool must not leave the bridge and the
 * conflist behind. Throws at the end, naming what is left, so the command exits non-zero.
 */
export async function cleanupAgent(config: AgentCleanupConfig, log: Logger, netns?: string): Promise<void> {
  const node = config["node-name"];
  // Otherwise every step reads "No such file" as "nothing there" and the cleanup claims a success it never had.
  if (netns && !existsSync(join("/run/netns", netns))) throw new ConfigError(`network namespace ${netns} does not exist`);
  const pods = await podInterfacesOnBridge(netns).catch(() => []); // no `ip`: the steps that need it say so
  if (pods.length > 0) {
    log.warn({ node, interfaces: pods }, `${pods.length} pod interface(s) still on ${BRIDGE_NAME}: those pods lose their network now, and the runtime `
      + "cannot tear their sandboxes down through a CNI config that is gone; drain the node before cleanup");
  }
  const conflist = join(config["cni-conf-dir"], config["conflist-name"]);
  const steps: Array<[string, () => Promise<unknown>]> = [
    // The conflist first: a sandbox set up after the bridge went would have the bridge plugin make it again.
    ["conflist", async () => { if (existsSync(conflist) && readFileSync(conflist, "utf8").includes('"name": "podnet"')) rmSync(conflist); }],
    ["routes", () => flushOwnRoutes(netns)],
    ["vxlan device", () => removeVxlan(netns)],
    ["nft table", () => removeNftTable(netns)],
    ["firewall FORWARD accepts", () => removeForwardAccepts(netns)],
    ["pod bridge", () => removePodBridge(netns)],
  ];
  const left: string[] = [];
  for (const [what, step] of steps) {
    try { await step(); } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      left.push(`${what} (${why})`);
      log.error({ node, step: what, err: why }, `cleanup: ${what} not removed; going on with the rest`);
    }
  }
  if (left.length > 0) throw new Error(`podnet cleanup left: ${left.join("; ")}`);
  log.info({ node, conflist, bridge: BRIDGE_NAME }, `nothing of podnet's left: ${steps.map(([what]) => what).join(", ")} removed where present`);
}

/** Ports of the pod bridge: each one is a pod's veth. */
async function podInterfacesOnBridge(netns?: string): Promise<string[]> {
  const shown = await run("ip", ["-json", "link", "show", "master", BRIDGE_NAME], { netns });
  if (shown.code !== 0) return []; // no bridge
  return (JSON.parse(shown.stdout || "[]") as Array<{ ifname: string }>).map((l) => l.ifname);
}
