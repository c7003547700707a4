import { describe, expect, it } from "vitest";
import { controllerConfigSchema, loadConfig } from "../config.js";
import { localControllerFlags } from "./podnet-cli.js";

describe("localControllerFlags", () => {
  const base = { kubeconfig: "/run/kubeconfig" };
  it.each([
    { replicas: 1, dualStack: false, electionFlag: "--leader-elect=false", cidrs: "10.244.0.0/16" },
    { replicas: 2, dualStack: true, electionFlag: "--leader-elect=true", cidrs: "10.244.0.0/16,fd00:10:244::/56" },
  ])("$replicas replica(s), dual-stack $dualStack: $electionFlag", ({ replicas, dualStack, electionFlag, cidrs }) => {
    const flags = localControllerFlags({ ...base, replicas, dualStack });
    expect(flags).toContain(electionFlag);
    expect(flags).toContain(`--cluster-cidr=${cidrs}`);
  });

  it("gives replicas a lease the controller's own validation accepts", () => {
    const flags = localControllerFlags({ ...base, replicas: 2, releaseCooldown: "3s" });
    expect(flags).toContain("--release-cooldown=3s");
    expect(loadConfig(controllerConfigSchema, flags, {})).toMatchObject({ "leader-elect": true, "lease-duration": 6_000 });
  });
});
