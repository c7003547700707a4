import { describe, expect, it } from "vitest";
import { agentConfigSchema, ConfigError, controllerConfigSchema, loadConfig } from "./config.js";
import { logLevelFrom } from "./log.js";

describe("controller flags: leader election timing", () => {
  it("accepts the defaults and a lease whose renew deadline sits between the retry period and the lease duration", () => {
    expect(controllerConfigSchema.safeParse({}).success).toBe(true);
    expect(controllerConfigSchema.safeParse({ "lease-duration": "3s", "renew-deadline": "2s", "retry-period": "200ms" }).success).toBe(true);
  });

  it.each([
    ["a renew deadline past the lease duration (two leaders at once)", { "lease-duration": "10s", "renew-deadline": "15s" }],
    ["a renew deadline equal to the lease duration", { "lease-duration": "10s", "renew-deadline": "10s" }],
    ["a renew deadline that leaves one retry", { "renew-deadline": "2s", "retry-period": "2s" }],
  ])("refuses %s, naming the flags", (_name, flags) => {
    const r = controllerConfigSchema.safeParse(flags);
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toMatch(/must be below --lease-duration \(\d+ ms\) and above 1\.2 × --retry-period/);
  });

  it("does not judge lease timing with leader election off", () => {
    expect(controllerConfigSchema.safeParse({ "leader-elect": "false", "renew-deadline": "30s" }).success).toBe(true);
  });
});

/** The flags as a command line: loadConfig names the flag in each problem. */
const withFlags = (schema: typeof controllerConfigSchema | typeof agentConfigSchema, flags: Record<string, string>) =>
  loadConfig(schema, Object.entries(flags).map(([k, v]) => `--${k}=${v}`), {});

describe("durations and the cluster range", () => {
  it.each([
    ["controller", controllerConfigSchema, { "resync-period": "0s" }, "--resync-period: must be at least 1s"],
    ["controller", controllerConfigSchema, { "retry-period": "0", "renew-deadline": "1s", "lease-duration": "2s" }, "--retry-period: must be at least 100ms"],
    ["controller", controllerConfigSchema, { "release-cooldown": "720h" }, "--release-cooldown: must be below 596h"],
    ["agent", agentConfigSchema, { "node-name": "n1", "resync-period": "0ms" }, "--resync-period: must be at least 1s"],
    ["agent", agentConfigSchema, { "node-name": "n1", "resync-period": "600h" }, "--resync-period: must be below 596h"],
  ])("%s: refuses a loop period of %j (a busy loop)", (_who, schema, flags, message) => {
    expect(() => withFlags(schema, flags)).toThrow(message);
  });

  it("takes a release cooldown of 0 (reuse at once) and the longest timer", () => {
    expect(controllerConfigSchema.parse({ "release-cooldown": "0s" })["release-cooldown"]).toBe(0);
    expect(controllerConfigSchema.parse({ "resync-period": "596h" })["resync-period"]).toBe(596 * 3_600_000);
  });

  it.each([
    [{ "cluster-cidr": "" }, "--cluster-cidr: at least one range is required"],
    [{ "cluster-cidr": "10.0.0.0/26" }, "--cluster-cidr: 10.0.0.0/26 is smaller than one node's slice (--node-mask-v4=24)"],
    [{ "cluster-cidr": "10.244.0.0/16,fd00::/120" }, "--cluster-cidr: fd00::/120 is smaller than one node's slice (--node-mask-v6=64)"],
    [{ "cluster-cidr": "10.96.0.0/12" }, "--cluster-cidr: 10.96.0.0/12 overlaps --service-cidr 10.96.0.0/12"],
    [{ "cluster-cidr": "10.0.0.0/8" }, "--cluster-cidr: 10.0.0.0/8 overlaps --service-cidr 10.96.0.0/12"],
    [{ "cluster-cidr": "127.0.0.0/16" }, "--cluster-cidr: 127.0.0.0/16 overlaps 127.0.0.0/8 (loopback), which pods cannot use"],
    [{ "cluster-cidr": "fe80::/56" }, "--cluster-cidr: fe80::/56 overlaps fe80::/10 (link-local), which pods cannot use"],
    [{ "default-pool": "Bad_Name" }, "--default-pool: must be a Kubernetes object name"],
  ])("refuses a cluster range no default pool can be made of: %j", (flags, message) => {
    expect(() => withFlags(controllerConfigSchema, flags)).toThrow(message);
  });

  it("takes a range exactly one slice wide", () => {
    expect(controllerConfigSchema.parse({ "cluster-cidr": "10.0.0.0/24" })["cluster-cidr"]).toEqual(["10.0.0.0/24"]);
  });
});

describe("whole-number flags", () => {
  it.each([
    [{ "node-name": "n1", "vxlan-port": "0x1F" }, "--vxlan-port: must be a whole number"],
    [{ "node-name": "n1", mtu: "" }, "--mtu: must be a whole number"],
    [{ "node-name": "n1", mtu: "500" }, "--mtu: must be 0 (the node's own) or 576 to 65535"],
  ])("refuses %j", (flags, message) => {
    expect(() => withFlags(agentConfigSchema, flags)).toThrow(message);
  });

  it("takes decimal values and the defaults", () => {
    expect(agentConfigSchema.parse({ "node-name": "n1", mtu: "1450", "vxlan-port": "4789" })).toMatchObject({ mtu: 1450, "vxlan-port": 4789, "vxlan-id": 1 });
    expect(agentConfigSchema.parse({ "node-name": "n1" })).toMatchObject({ mtu: 0, "vxlan-port": 8472 });
  });

  it("takes a VXLAN ID as Helm prints a large number", () => {
    expect(agentConfigSchema.parse({ "node-name": "n1", "vxlan-id": "1.6777215e+07" })["vxlan-id"]).toBe(16_777_215);
    expect(agentConfigSchema.safeParse({ "node-name": "n1", "vxlan-id": "1.5" }).success).toBe(false);
  });
});

describe("log level from the environment", () => {
  it.each([[undefined, "info"], ["", "info"], [" Debug ", "debug"], ["silent", "silent"]])("PODNET_LOG_LEVEL=%j → %s", (value, level) => {
    expect(logLevelFrom({ PODNET_LOG_LEVEL: value })).toBe(level);
  });
  it("refuses an unknown level by name", () => {
    expect(() => logLevelFrom({ PODNET_LOG_LEVEL: "verbose" })).toThrow(ConfigError);
  });
});

describe("flags from the environment", () => {
  it("names the variable a bad value came from", () => {
    expect(() => loadConfig(agentConfigSchema, [], { NODE_NAME: "n1", PODNET_MTU: "12" })).toThrow("PODNET_MTU: must be 0 (the node's own) or 576 to 65535");
    expect(() => loadConfig(agentConfigSchema, ["--mtu=12"], { NODE_NAME: "n1" })).toThrow("--mtu: must be 0");
  });
  it("takes an empty variable as unset: it hides neither NODE_NAME nor a default", () => {
    const config = loadConfig(agentConfigSchema, [], { PODNET_NODE_NAME: "", NODE_NAME: "n1", PODNET_MTU: "", PODNET_RESYNC_PERIOD: "" });
    expect([config["node-name"], config.mtu, config["resync-period"]]).toEqual(["n1", 0, 30_000]);
  });
});

describe("switches", () => {
  it.each([
    [["--dry-run"], true], [["--dry-run=true"], true], [["--dry-run", "false"], false], [["--dry-run=false"], false], [["--dry-run", "--mtu=1400"], true], [[], false],
  ])("%j → dry-run %s", (argv, dryRun) => {
    expect(loadConfig(agentConfigSchema, [...argv], { NODE_NAME: "n1" })["dry-run"]).toBe(dryRun);
  });
  it("still wants a value for a flag that is no switch", () => {
    expect(() => loadConfig(agentConfigSchema, ["--mtu"], { NODE_NAME: "n1" })).toThrow(/argument missing/);
  });
});

describe("metrics address", () => {
  it.each([[":9091"], ["127.0.0.1:0"], ["[::1]:9092"], ["0.0.0.0:65535"]])("takes %s", (address) => {
    expect(loadConfig(agentConfigSchema, [`--metrics-address=${address}`], { NODE_NAME: "n1" })["metrics-address"]).toBe(address);
    expect(loadConfig(controllerConfigSchema, [`--metrics-address=${address}`], {})["metrics-address"]).toBe(address);
  });
  it.each([["bogus"], ["9091"], [":65536"], [":http"], [""]])("refuses %j as a bad flag, naming it", (address) => {
    for (const load of [() => loadConfig(agentConfigSchema, [`--metrics-address=${address}`], { NODE_NAME: "n1" }), () => loadConfig(controllerConfigSchema, [`--metrics-address=${address}`], {})]) {
      expect(load).toThrow(ConfigError);
      expect(load).toThrow(`--metrics-address: invalid listen address "${address}"`);
    }
  });
});
