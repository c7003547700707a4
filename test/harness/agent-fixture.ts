import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { agentConfigSchema } from "../../src/config.js";
import { cidrObjectName } from "../../src/lib/cidr.js";
import { applyStatus, podnetResource, type KubeApi } from "../../src/lib/k8s.js";
import { createLogger, silentLogger, type Logger } from "../../src/log.js";
import { NodeAgent, type AgentOptions } from "../../src/node-agent/agent.js";
import type { ApiFixture } from "./api-fixture.js";
import { CNI_BIN_DIR } from "../../src/localcluster/cni-exec.js";
import { RUN_PREFIX, type BedNode } from "../../src/localcluster/netbed.js";
import { ownerAlive } from "../../src/localcluster/run-owner.js";

/**
 * Agents' dirs carry the run's owner token: a CNI DEL after an agent's stop (a test's teardown of its pods)
 * makes host-local create its data dir there again, and a crashed worker leaves them all. The worker's exit
 * removes its own; the global teardown sweeps those of runs that are gone.
 */
const AGENT_DIR_PREFIX = `podnet-agent-${RUN_PREFIX}-`;
const agentDirs = new Set<string>();
process.on("exit", () => { for (const dir of agentDirs) rmSync(dir, { recursive: true, force: true }); });

/**
 * This worker's node-lock directory (node-lock.ts), not the host's /run/podnet: each test's namespaces are its
 * own, so agents of one worker lock among themselves.
 */
export function testLockDir(): string {
  const dir = join(tmpdir(), `${AGENT_DIR_PREFIX}locks-${process.pid}`);
  if (!agentDirs.has(dir)) { mkdirSync(dir, { recursive: true, mode: 0o700 }); agentDirs.add(dir); }
  return dir;
}

export function sweepStaleAgentDirs(): string[] {
  const swept: string[] = [];
  for (const name of readdirSync(tmpdir())) {
    const owner = /^podnet-agent-pnt-(\d+\.[0-9a-z]+)-/.exec(name)?.[1];
    if (owner && !ownerAlive(owner)) { rmSync(join(tmpdir(), name), { recursive: true, force: true }); swept.push(name); }
  }
  return swept;
}

export interface TestAgent { agent: NodeAgent; confDir: string; dir: string; stop(): Promise<void> }

/**
 * A node agent in-process, programming the given node namespace, with its own conf and IPAM dirs; `opts.api`
 * replaces its client (one through a proxy the test can cut).
 */
export async function startAgent(fx: ApiFixture, node: BedNode, flags: Record<string, string> = {}, opts: Omit<AgentOptions, "netns"> & { api?: KubeApi } = {}, logger?: Logger): Promise<TestAgent> {
  const dir = mkdtempSync(join(tmpdir(), `${AGENT_DIR_PREFIX}${node.name}-`));
  agentDirs.add(dir);
  const confDir = join(dir, "net.d");
  mkdirSync(confDir);
  const config = agentConfigSchema.parse({
    "node-name": node.name, "cni-conf-dir": confDir, "cni-bin-dir": CNI_BIN_DIR, "ipam-data-dir": join(dir, "ipam"),
    "metrics-address": "127.0.0.1:0", "resync-period": "1s", "lock-dir": testLockDir(), ...flags,
  });
  const log = logger ?? (process.env.PODNET_TEST_LOGS ? createLogger(`agent-${node.name}`, "debug") : silentLogger());
  const { api, ...agentOpts } = opts;
  const agent = new NodeAgent(api ?? fx.api("podnet-agent"), config, log, { netns: node.ns, ...agentOpts });
  try {
    await agent.start();
  } catch (err) {
    // A failed start may have begun its loops and servers: stop them, or they outlive the test.
    await agent.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return { agent, confDir, dir, stop: async () => { await agent.stop(); rmSync(dir, { recursive: true, force: true }); } };
}

/** A NodeCIDR as the controller would leave it: created, then marked Allocated through the status. */
export async function putNodeCidr(api: KubeApi, nodeName: string, cidr: string, nodeIPs: string[], pool = "default", nodeUID?: string): Promise<string> {
  const name = cidrObjectName(cidr);
  await api.custom.createClusterCustomObject({ ...podnetResource("nodecidrs"), body: {
    apiVersion: "podnet.io/v1alpha1", kind: "NodeCIDR", metadata: { name },
    spec: { nodeName, cidr, family: cidr.includes(":") ? "IPv6" : "IPv4", pool, nodeIPs, ...(nodeUID ? { nodeUID } : {}) },
  } });
  await applyStatus(api, "nodecidrs", name, "NodeCIDR", { phase: "Allocated" });
  return name;
}

export async function conditionsOf(api: KubeApi, name: string): Promise<Array<{ type: string; status: string; reason: string; message: string }>> {
  const obj = (await api.custom.getClusterCustomObject({ ...podnetResource("nodecidrs"), name })) as { status?: { conditions?: Array<{ type: string; status: string; reason: string; message: string }> } };
  return obj.status?.conditions ?? [];
}

/** The tool shells this process started for its agents' ip/nft calls (see tool-shell.ts): SIGSTOP one to hang a pass. */
export function toolShells(): number[] {
  const children = readdirSync(`/proc/${process.pid}/task`).flatMap((t) => readFileSync(`/proc/${process.pid}/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number));
  return children.filter((pid) => { try { return readFileSync(`/proc/${pid}/cmdline`, "utf8") === "/bin/sh\0"; } catch { return false; } });
}
