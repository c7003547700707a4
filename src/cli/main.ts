#!/usr/bin/env node
// podnet CLI: `podnet controller`, `podnet agent`, `podnet agent cleanup`, `podnet demo`, `podnet demo-clean`.
// Deprecation warnings from dependencies (node-fetch's url.parse) are nothing a user can act on, and they
// would put plain-text lines into podnet's JSON logs.
process.noDeprecation = true;

import { agentCleanupConfigSchema, agentConfigSchema, controllerConfigSchema, loadConfig } from "../config.js";
import { KubeApi } from "../lib/k8s.js";
import { createLogger } from "../log.js";

const usage = `usage: podnet <command> [--flag=value ...]
  controller       allocate pod CIDRs to nodes (NodeCIDR objects); leader-elected
  agent            program this node's routes, CNI config, masquerade and sysctls from NodeCIDRs
  agent cleanup    remove every route, nft table, device and file podnet created on this node, nothing else
  demo             local cluster in network namespaces: allocation, routes, cross-node pod pings
  demo-clean       remove leftovers of a killed demo run
Flags: see src/config.ts (also env PODNET_<FLAG>, NODE_NAME).`;

function onSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    void stop().finally(() => process.exit(signal === "SIGTERM" ? 0 : 130));
  };
  process.on("SIGINT", () => handler("SIGINT"));
  process.on("SIGTERM", () => handler("SIGTERM"));
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case "controller": {
      const config = loadConfig(controllerConfigSchema, rest);
      const log = createLogger("controller");
      const { AllocationController } = await import("../controllers/controller.js");
      const controller = new AllocationController(KubeApi.fromKubeconfig(config.kubeconfig, "podnet-controller"), config, log);
      onSignals(() => controller.stop());
      await controller.start();
      log.info({ clusterCIDRs: config["cluster-cidr"], metrics: config["metrics-address"] }, "controller started");
      return;
    }
    case "agent": {
      const log = createLogger("agent");
      const { runAgent } = await import("../node-agent/agent.js");
      const { cleanupAgent } = await import("../node-agent/cleanup.js");
      if (rest[0] === "cleanup") {
        const config = loadConfig(agentCleanupConfigSchema, rest.slice(1));
        await cleanupAgent(config, log, config.netns);
        return;
      }
      const config = loadConfig(agentConfigSchema, rest);
      const agent = await runAgent(KubeApi.fromKubeconfig(config.kubeconfig, "podnet-agent"), config, log, { netns: config.netns });
      onSignals(() => agent.stop());
      return;
    }
    case "demo":
    case "demo-clean": {
      const { runDemo, cleanDemo } = await import("../demo/demo.js");
      await (command === "demo" ? runDemo(rest) : cleanDemo());
      return;
    }
    default:
      console.error(usage);
      process.exitCode = command === undefined || command === "help" || command === "--help" ? 0 : 2;
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(`podnet: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
