import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { runtimeConfigFiles } from "../node-agent/cni-files.js";
import { createNamespace, destroyNamespace, skipIpv6Dad } from "./netbed.js";

/**
 * Invokes the real CNI plugins the way a container runtime does: take the alphabetically first config
 * in the node's conf dir, run each plugin of the list in order for ADD (feeding each the previous result)
 * and in reverse for DEL. The plugins run in the node's namespace and wire a fresh pod namespace to it.
 */

export const CNI_BIN_DIR = "/usr/lib/cni";

interface PluginConf { type: string; [key: string]: unknown }
interface NetConfList { cniVersion: string; name: string; plugins: PluginConf[] }
export interface CniResult { ips?: Array<{ address: string; gateway?: string }>; [key: string]: unknown }
/** A hostPort, as kubelet hands it to the runtime (CNI's portMappings capability). */
export interface PortMapping { hostPort: number; containerPort: number; protocol: "tcp" | "udp" }
export interface Pod { name: string; ns: string; nodeNs: string; ips: string[]; conflist: NetConfList; result: CniResult; portMappings: PortMapping[]; binDir: string }

export function runtimeConfigFile(confDir: string): string {
  const files = runtimeConfigFiles(confDir);
  if (!files[0]) throw new Error(`no CNI config in ${confDir}`);
  return join(confDir, files[0]);
}

/** What the runtime adds to a plugin's config: runtimeConfig for each capability the plugin declares (here only portMappings). */
function withRuntimeConfig(plugin: PluginConf, portMappings: PortMapping[]): PluginConf {
  const capabilities = plugin.capabilities as Record<string, boolean> | undefined;
  return capabilities?.portMappings && portMappings.length ? { ...plugin, runtimeConfig: { portMappings } } : plugin;
}

function invoke(nodeNs: string, command: "ADD" | "DEL", pod: { name: string; ns: string; portMappings: PortMapping[]; binDir: string }, list: NetConfList, plugin: PluginConf, prevResult?: CniResult): CniResult | undefined {
  const stdin = JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...withRuntimeConfig(plugin, pod.portMappings), ...(prevResult ? { prevResult } : {}) });
  const out = execFileSync("ip", ["netns", "exec", nodeNs, join(pod.binDir, plugin.type)], {
    input: stdin, timeout: 20_000, stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, CNI_COMMAND: command, CNI_CONTAINERID: pod.name, CNI_NETNS: `/run/netns/${pod.ns}`, CNI_IFNAME: "eth0", CNI_PATH: pod.binDir },
  }).toString();
  return out.trim() ? (JSON.parse(out) as CniResult) : undefined;
}

/** A pod as a runtime makes one: the config it would pick, each plugin's ADD from `binDir` (Debian's by default). */
export function addPod(nodeNs: string, confDir: string, name: string, portMappings: PortMapping[] = [], binDir = CNI_BIN_DIR): Pod {
  const file = runtimeConfigFile(confDir);
  const parsed = JSON.parse(readFileSync(file, "utf8")) as NetConfList & PluginConf;
  const list: NetConfList = parsed.plugins ? parsed : { cniVersion: parsed.cniVersion, name: parsed.name, plugins: [parsed] };
  const ns = createNamespace(`pod-${name}`);
  skipIpv6Dad(ns);
  let result: CniResult | undefined;
  try {
    for (const plugin of list.plugins) result = invoke(nodeNs, "ADD", { name, ns, portMappings, binDir }, list, plugin, result) ?? result;
  } catch (err) {
    destroyNamespace(ns);
    const stderr = (err as { stdout?: Buffer }).stdout?.toString() ?? "";
    throw new Error(`CNI ADD for ${name} failed: ${(err as Error).message} ${stderr}`, { cause: err });
  }
  const ips = (result?.ips ?? []).map((i) => i.address.split("/")[0]!);
  return { name, ns, nodeNs, ips, conflist: list, result: result ?? {}, portMappings, binDir };
}

export function deletePod(pod: Pod): void {
  // DEL gets the same runtimeConfig as ADD: portmap finds the rules to remove by it.
  for (const plugin of [...pod.conflist.plugins].reverse()) {
    try { invoke(pod.nodeNs, "DEL", pod, pod.conflist, plugin, pod.result); } catch { /* DEL is best effort, like runtimes */ }
  }
  destroyNamespace(pod.ns);
}
