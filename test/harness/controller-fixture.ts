import { controllerConfigSchema, type ControllerConfig } from "../../src/config.js";
import { AllocationController } from "../../src/controllers/controller.js";
import { createLogger, silentLogger, type Logger } from "../../src/log.js";
import { afterEach } from "vitest";
import type { ApiFixture } from "./api-fixture.js";
import { emptyCluster, listNodeCidrs } from "./cluster-objects.js";
import { waitFor } from "../../src/localcluster/processes.js";

/** An in-process controller against the fixture's API server; flags as the CLI would take them. */
export async function startController(fx: ApiFixture, flags: Record<string, string> = {}, logger?: Logger): Promise<AllocationController> {
  const config: ControllerConfig = controllerConfigSchema.parse({
    "metrics-address": "127.0.0.1:0", "leader-elect": "false", "lease-namespace": "default", "release-cooldown": "2s",
    "resync-period": "10s", ...flags,
  });
  const log = logger ?? (process.env.PODNET_TEST_LOGS ? createLogger("controller", "debug") : silentLogger());
  const controller = new AllocationController(fx.api("podnet-controller"), config, log);
  await controller.start();
  return controller;
}

/**
 * After each test: its controller stopped, then the cluster emptied. Cleaning up inside a test raced its own
 * controller, which recreates its default pool as soon as it sees it deleted: a catch-all pool left behind then
 * served the next test's nodes (seen under load).
 */
export function stopAndEmptyAfterEach(fx: ApiFixture, running: () => AllocationController | undefined, forget: () => void): void {
  afterEach(async () => {
    await running()?.stop();
    forget();
    await emptyCluster(fx.api());
  });
}

/** A Node's NodeCIDRs, whatever their phase. */
export const recordsOfNode = async (fx: ApiFixture, node: string) => (await listNodeCidrs(fx.api())).filter((r) => r.spec.nodeName === node);

/** Poll every 100 ms, 20 s by default: long enough for a loaded 2-core CI machine. */
export const until = <T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000) => waitFor(what, probe, ms, 100);
