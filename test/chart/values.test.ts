import { describe, expect, it } from "vitest";
import { controllerConfigSchema, loadConfig } from "../../src/config.js";
import { args, find, render } from "./helm.js";

// Values the README promises work (or are refused at render time, before any pod crash-loops).
describe("chart values", () => {
  it("takes more than two pool ranges: an upgrade that adds one grows the pool (the CRD allows 16 per family)", () => {
    const objs = render("pool.clusterCIDRs={10.244.0.0/16,fd00:10:244::/56,10.245.0.0/16}");
    const controller = loadConfig(controllerConfigSchema, args(find(objs, "Deployment", "podnet-controller")).slice(1), {});
    expect(controller["cluster-cidr"]).toEqual(["10.244.0.0/16", "fd00:10:244::/56", "10.245.0.0/16"]);
  });
});
