import { pathToFileURL } from "node:url";
import { sweepStaleRunDirs } from "../src/localcluster/control-plane.js";
import { isRoot, sweepStaleNamespaces } from "../src/localcluster/netbed.js";
import { sweepStaleAgentDirs } from "./harness/agent-fixture.js";

/**
 * After the whole run: namespaces, control-plane run dirs and in-process agents' dirs of workers
 * that ended without their exit handlers (vitest's SIGTERM, a crash, an OOM kill) are removed now rather than at the next run.
 */
export function teardown(): void {
  if (!isRoot()) return;
  const swept = [...sweepStaleNamespaces(), ...sweepStaleRunDirs(), ...sweepStaleAgentDirs()];
  // Workers vitest stopped (SIGTERM skips their exit handlers) leave their agent dirs as a crashed one would.
  if (swept.length) console.warn(`[teardown] removed what stopped or crashed test workers left: ${swept.join(", ")}`);
}

// vitest runs this before its workers have exited (and stops them with SIGTERM, which skips their exit
// handlers), so `make test` runs it once more after vitest: `tsx test/global-teardown.ts`.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) teardown();
