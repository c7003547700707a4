#!/usr/bin/env node
// podnet CLI: `podnet controller`, `podnet agent`, `podnet agent cleanup`, `podnet demo`, `podnet demo-clean`.
// Deprecation warnings from dependencies (node-fetch's url.parse) are nothing a user can act on, and they
// would put plain-text lines into podnet's JSON logs.
process.noDeprecation = true;

import { agentCleanupConfigSchema, agentConfigSchema, ConfigError, controllerConfigSchema, describeFlags, FlagError, loadConfig } from "../config.js";
import { KubeApi } from "../lib/k8s.js";
import { createLogger, type Logger } from "../log.js";

const usage = `usage: podnet <command> [--flag=value ...]
  controller       allocate pod CIDRs to nodes (NodeCIDR objects); leader-elected
  agent            program this node's routes, CNI config, masquerade and sysctls from NodeCIDRs
  agent cleanup    remove every route, nft table, device and file podnet created on this node, nothing else
  demo             local cluster in network namespaces: allocation, routes, cross-node pod pings
  demo-clean       remove leftovers of a killed demo run
Flags: podnet <command> --help (each also from env PODNET_<FLAG>); logs: PODNET_LOG_LEVEL (default info).`;

/** The schema whose flags a command takes, for its --help. */
function flagsOf(argv: string[]): typeof controllerConfigSchema | typeof agentConfigSchema | typeof agentCleanupConfigSchema | undefined {
  if (argv[0] === "controller") return controllerConfigSchema;
  if (argv[0] === "agent") return argv[1] === "cleanup" ? agentCleanupConfigSchema : agentConfigSchema;
  return undefined;
}
const wantsHelp = (argv: string[]) => argv.some((a) => a === "--help" || a === "-h");

function onSignals(stop: () => Promise<void>, log: Logger): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, "stopping");
    void stop().finally(() => process.exit(signal === "SIGTERM" ? 0 : 130));
  };
  process.on("SIGINT", () => handler("SIGINT"));
  process.on("SIGTERM", () => handler("SIGTERM"));
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const schema = flagsOf(argv);
  if (schema && wantsHelp(rest)) {
    console.log(`usage: podnet ${argv[0]}${schema === agentCleanupConfigSchema ? " cleanup" : ""} [--flag=value ...]\n${describeFlags(schema)}`);
    return;
  }
  switch (command) {
    case "controller": {
      const config = loadConfig(controllerConfigSchema, rest);
      const log = createLogger("controller");
      const { AllocationController } = await import("../controllers/controller.js");
      const controller = new AllocationController(KubeApi.fromKubeconfig(config.kubeconfig, "podnet-controller"), config, log);
      onSignals(() => controller.stop(), log);
      await controller.start();
      log.info({ clusterCIDRs: config["cluster-cidr"], metrics: config["metrics-address"], metricsPort: controller.metricsPort }, "controller started");
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
      const agent = await runAgent(KubeApi.fromKubeconfig(config.kubeconfig, "podnet-agent"), config, log, { netns: config.netns, onLockLost: () => process.exit(1) });
      onSignals(() => agent.stop(), log);
      return;
    }
    case "demo":
    case "demo-clean": {
      if (command === "demo-clean" && rest.length) {
        if (wantsHelp(rest)) { console.log("usage: podnet demo-clean\n  removes the namespaces and run dirs of demo or test runs whose process is gone"); return; }
        throw new FlagError(`demo-clean takes no flags, got ${rest.join(" ")}`);
      }
      const { runDemo, cleanDemo } = await import("../demo/demo.js");
      await (command === "demo" ? runDemo(rest) : cleanDemo());
      return;
    }
    case undefined: case "help": case "--help": case "-h":
      console.log(usage);
      return;
    default:
      console.error(`podnet: unknown command "${command}"\n${usage}`);
      process.exitCode = 2;
  }
}

// 2 for a command line or environment podnet cannot run with (as for an unknown command), 1 for a failure.
main(process.argv.slice(2)).catch((err: unknown) => {
  const command = process.argv[2] === "agent" && process.argv[3] === "cleanup" ? "agent cleanup" : process.argv[2] ?? "";
  const usageHint = err instanceof FlagError ? ` (podnet ${command} --help lists the flags)` : "";
  console.error(`podnet: ${err instanceof Error ? err.message : String(err)}${usageHint}`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
