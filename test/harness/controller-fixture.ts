import { controllerConfigSchema, type ControllerConfig } from "../../src/config.js";
import { AllocationController } from "../../src/controllers/controller.js";
import { createLogger, silentLogger, type Logger } from "../../src/log.js";
import type { ApiFixture } from "./api-fixture.js";

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
