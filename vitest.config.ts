import { defineConfig } from "vitest/config";

// Unit tests (rung 1) sit next to the code; integration rungs live under test/ and start real parts
// through test/harness. Network-namespace tests need root; they skip with a reason when not root.
export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    globalSetup: ["test/global-teardown.ts"],
    reporters: ["default"],
  },
});
