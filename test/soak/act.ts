import type { LocalCluster } from "../../src/localcluster/cluster.js";
import { runtimeConfigFiles } from "../../src/node-agent/cni-files.js";
import type { Operation } from "./operation-plan.js";

/** Shell: carries out one chosen operation on the local cluster. It decides nothing the plan did not. */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ActOutcome {
  /** Said after the operation in the round's line ("already down", the exit of a signalled agent). */
  note?: string;
  /** What went wrong in carrying it out that the invariants would not see (an agent failing its SIGTERM). */
  violations: string[];
}

/** With overlap on, restarts of killed processes are queued here and run after the round's other operations. */
export type Restart = () => Promise<void>;

export async function applyOperation(cluster: LocalCluster, op: Operation, overlap: boolean, restarts: Restart[]): Promise<ActOutcome> {
  const restartLater = async (pauseMs: number, restart: Restart): Promise<void> => {
    if (overlap) restarts.push(restart);
    else { await sleep(pauseMs); await restart(); }
  };
  switch (op.kind) {
    case "join": await cluster.addNode(op.node); return { violations: [] };
    case "delete": await cluster.removeNode(op.node); return { violations: [] };
    case "rejoin": case "rejoinFast":
      await cluster.removeNode(op.node);
      await sleep(op.pauseMs);
      await cluster.addNode(op.node);
      return { violations: [] };
    case "agentKill": case "agentTerm": {
      const agent = cluster.nodes.get(op.node)?.agent;
      if (!agent || agent.child.exitCode !== null || agent.child.signalCode !== null) return { note: "already down", violations: [] };
      const signal = op.kind === "agentKill" ? "SIGKILL" : "SIGTERM";
      const exit = await cluster.signal(agent, signal);
      // Restarted only if the node is still there with this (dead) agent: a later operation may have replaced it.
      await restartLater(op.pauseMs, async () => { if (cluster.nodes.get(op.node)?.agent === agent) await cluster.startAgent(op.node); });
      const violations = signal === "SIGTERM" && exit !== 0 ? [`agent of ${op.node} exited ${exit} on SIGTERM, not 0`] : [];
      return { note: `exit ${exit}${overlap ? ", restart deferred" : ""}`, violations };
    }
    case "controllerKill": {
      const replica = cluster.controllers[op.replica];
      if (!replica || replica.child.exitCode !== null || replica.child.signalCode !== null) return { note: "already down", violations: [] };
      await cluster.signal(replica, "SIGKILL");
      await restartLater(op.pauseMs, async () => { if (cluster.controllers[op.replica] === replica) cluster.startController(op.replica); });
      return { note: overlap ? "restart deferred" : undefined, violations: [] };
    }
    case "apiserverBounce":
      await cluster.cp.stopApiserver();
      await sleep(op.downMs);
      await cluster.cp.startApiserver();
      return { violations: [] };
    case "podAdd":
      // kubelet starts no pod before the node's network is ready (the runtime reports no CNI config): nor does the soak.
      if (!runtimeConfigFiles(cluster.nodes.get(op.node)!.confDir).length) return { note: "skipped: no CNI config on the node yet", violations: [] };
      try {
        cluster.addPod(op.node, op.pod);
        return { violations: [] };
      } catch (err) {
        return { violations: [`pod ${op.pod} not added on ${op.node}: ${String(err).slice(0, 300)}`] };
      }
    case "podDel": {
      const pod = cluster.pods.find((p) => p.name === op.pod);
      if (pod) cluster.deletePod(pod);
      return { violations: [] };
    }
    case "reregister": {
      const entry = cluster.nodes.get(op.node)!;
      // Pod GC and kubelet remove a deleted Node's pods; the agent and the node's namespace stay.
      for (const pod of cluster.pods.filter((p) => p.nodeNs === entry.node.ns)) cluster.deletePod(pod);
      await cluster.api.core.deleteNode({ name: op.node });
      await sleep(op.pauseMs);
      await cluster.registerNode(op.node);
      return { violations: [] };
    }
  }
}
