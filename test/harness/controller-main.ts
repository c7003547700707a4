// The real AllocationController in a process of its own, so a test can freeze it (SIGSTOP) as a paused VM or
// CPU throttling would: argv holds the controller's flags as the CLI takes them. PODNET_TEST_SILENCE_MS
// shortens its API connections' silence timeout (the CLI has no flag for it).
import { controllerConfigSchema, loadConfig } from "../../src/config.js";
import { AllocationController } from "../../src/controllers/controller.js";
import { KubeApi } from "../../src/lib/k8s.js";
import { createLogger } from "../../src/log.js";

const config = loadConfig(controllerConfigSchema, process.argv.slice(2));
const silenceTimeoutMs = process.env.PODNET_TEST_SILENCE_MS ? Number(process.env.PODNET_TEST_SILENCE_MS) : undefined;
const log = createLogger("controller");
const controller = new AllocationController(KubeApi.fromKubeconfig(config.kubeconfig, "podnet-controller", { silenceTimeoutMs }), config, log);
process.on("SIGTERM", () => void controller.stop().finally(() => process.exit(0)));
await controller.start();
log.info({ metricsPort: controller.metricsPort }, "controller started");
