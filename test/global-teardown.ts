import { sweepStaleRunDirs } from "../src/localcluster/control-plane.js";
import { isRoot, sweepStaleNamespaces } from "../src/localcluster/netbed.js";

/**
 * After the whole run, when every test worker has exited: namespaces and control-plane run dirs of workers
 * that died without their exit handlers (a crash, an OOM kill) are removed now rather than at the next run.
 */
export function teardown(): void {
  if (!isRoot()) return;
  const swept = [...sweepStaleNamespaces(), ...sweepStaleRunDirs()];
  if (swept.length) console.warn(`[teardown] removed what crashed test workers left: ${swept.join(", ")}`);
}
