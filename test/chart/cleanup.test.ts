import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { agentCleanupConfigSchema, loadConfig } from "../../src/config.js";
import { kubeBin } from "../../src/localcluster/kube-bins.js";

// The uninstall aid: a DaemonSet that runs `podnet agent cleanup` once on every node (the command itself is
// proven on a node namespace in test/rung3/agent-network.test.ts).
const chart = join(import.meta.dirname, "../../charts/podnet");
interface Container { name: string; command: string[]; args?: string[]; securityContext: { capabilities: { add?: string[] } }; volumeMounts?: Array<{ name: string; mountPath: string }> }
interface PodSpec { hostNetwork: boolean; tolerations: unknown[]; initContainers: Container[]; containers: Container[]; volumes: Array<{ name: string; hostPath: { path: string } }> }
type Obj = { kind: string; metadata: { name: string }; spec: { template: { spec: PodSpec } } };

const render = (...sets: string[]): Obj[] => parseAllDocuments(execFileSync(kubeBin("helm"), ["template", "podnet", chart, "--namespace", "kube-system", "--kube-version", "1.30.0",
  ...sets.flatMap((s) => ["--set", s])], { encoding: "utf8" })).map((d) => d.toJS() as Obj).filter(Boolean);
const daemonSets = (objs: Obj[]) => objs.filter((o) => o.kind === "DaemonSet").map((o) => o.metadata.name);

describe("chart: cleanup.enabled", () => {
  it("is off by default: the agent runs, no cleanup", () => {
    expect(daemonSets(render())).toEqual(["podnet-agent"]);
  });

  it("replaces the agent by a DaemonSet whose init container cleans the node's CNI dir and network, with no node name", () => {
    const objs = render("cleanup.enabled=true", "cni.confDir=/var/lib/cni/conf", "cni.conflistName=05-podnet.conflist");
    expect(daemonSets(objs)).toEqual(["podnet-cleanup"]); // an agent left running would put everything back
    const spec = objs.find((o) => o.metadata.name === "podnet-cleanup")!.spec.template.spec;
    expect(spec.hostNetwork).toBe(true); // the node's own routes, nft tables and devices
    expect(spec.tolerations).toEqual([{ operator: "Exists" }]);
    const [cleanup] = spec.initContainers;
    expect(cleanup!.command).toEqual(["node", "/app/podnet.mjs", "agent", "cleanup"]);
    const config = loadConfig(agentCleanupConfigSchema, cleanup!.args!, {}); // no NODE_NAME in its environment
    expect(config).toMatchObject({ "cni-conf-dir": "/host/cni/net.d", "conflist-name": "05-podnet.conflist" });
    const mount = cleanup!.volumeMounts!.find((m) => m.mountPath === config["cni-conf-dir"])!;
    expect(spec.volumes.find((v) => v.name === mount.name)!.hostPath.path).toBe("/var/lib/cni/conf");
    expect(cleanup!.securityContext.capabilities.add).toEqual(["NET_ADMIN"]);
    expect(spec.containers[0]!.securityContext.capabilities.add).toBeUndefined(); // the container that stays only waits
  });

  it("an unknown flag to agent cleanup is refused by name", () => {
    expect(() => loadConfig(agentCleanupConfigSchema, ["--overlay=vxlan"], {})).toThrow(/overlay/);
  });
});
