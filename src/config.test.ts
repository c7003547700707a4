import { describe, expect, it } from "vitest";
import { controllerConfigSchema } from "./config.js";

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
