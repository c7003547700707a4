import { chmodSync, existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyStatus } from "../../src/lib/k8s.js";
import { CNI_BIN_DIR } from "../../src/localcluster/cni-exec.js";
import { createNetBed, isRoot, type NetBed } from "../../src/localcluster/netbed.js";
import { waitFor } from "../../src/localcluster/processes.js";
import { conditionsOf, putNodeCidr, startAgent, type TestAgent } from "../harness/agent-fixture.js";
import { useControlPlane } from "../harness/api-fixture.js";

/**
 * A pass's outcome is written on the record version the pass read, never on one seen later: the controller
 * releasing the record (its Node gone) while a pass runs, the pass's Ready=True must not land on the Released
 * record. It did: the write took the cache's version at write time, the release's own.
 */
const fx = useControlPlane();
let bed: NetBed;
let agent: TestAgent | undefined;
let binDir: string;
const OWN = "10-244-120-0-24";
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!isRoot())("node agent status on a record released during its pass (rung 3)", () => {
  beforeAll(async () => {
    bed = createNetBed("sr", 1, 80);
    const n1 = bed.nodes[0]!;
    await putNodeCidr(fx.api(), n1.name, "10.244.120.0/24", [n1.ip]);
    // A portmap whose VERSION call fails (the agent probes again on every full pass) and, while HOLD exists,
    // hangs after saying so: the test knows a pass is under way, past its read of the records.
    binDir = mkdtempSync(join(tmpdir(), "podnet-cni-bin-"));
    for (const p of ["bridge", "host-local", "loopback"]) symlinkSync(join(CNI_BIN_DIR, p), join(binDir, p));
    writeFileSync(join(binDir, "portmap"), `#!/bin/sh\nif [ -e ${binDir}/HOLD ]; then touch ${binDir}/PROBING; while [ -e ${binDir}/HOLD ]; do sleep 0.05; done; fi\nexit 1\n`);
    chmodSync(join(binDir, "portmap"), 0o755);
    agent = await startAgent(fx, n1, { "resync-period": "1s", "cni-bin-dir": binDir });
  });
  afterAll(async () => {
    rmSync(join(binDir, "HOLD"), { force: true });
    await agent?.stop();
    bed?.destroy();
    rmSync(binDir, { recursive: true, force: true });
  });

  it("does not write Ready=True on a record the controller released while the pass ran", async () => {
    const a = agent!;
    await waitFor("Ready written", async () => ((await conditionsOf(fx.api(), OWN)).some((c) => c.type === "Ready" && c.status === "True") ? true : undefined), 20_000);

    // The next full pass reads the record (Allocated) and hangs in its VERSION probe.
    writeFileSync(join(binDir, "HOLD"), "");
    await waitFor("a pass is in its probe", async () => (existsSync(join(binDir, "PROBING")) ? true : undefined), 10_000, 20);
    // Meanwhile the controller releases the record, as it does when the Node is gone; the agent's cache sees it.
    await applyStatus(fx.api("podnet-controller"), "nodecidrs", OWN, "NodeCIDR", {
      phase: "Released", releasedAt: new Date().toISOString(),
      conditions: [{ type: "Ready", status: "False", reason: "NodeDeleted", message: "node is gone", lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z") }],
    });
    await waitFor("Released seen", async () => (a.agent.records.cache.get(OWN)?.status?.phase === "Released" ? true : undefined), 10_000, 20);

    // The pass ends and hands over its outcome, computed from the Allocated record.
    const passes = a.agent.syncs;
    rmSync(join(binDir, "HOLD"));
    await waitFor("the held pass ended", async () => (a.agent.syncs > passes ? true : undefined), 10_000, 20);
    await pause(2_000); // its write, and a later pass's, would land here
    const ready = (await conditionsOf(fx.api(), OWN)).find((c) => c.type === "Ready");
    expect(ready).toMatchObject({ status: "False", reason: "NodeDeleted" });
  }, 60_000);
});
