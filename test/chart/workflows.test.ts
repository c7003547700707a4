import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const repo = join(import.meta.dirname, "../..");

describe("rung 5 (kind) artefacts: written and linted here, run in GitHub Actions", () => {
  it("the workflows pass actionlint (built from its Go module, shellcheck on every run step) and the kind e2e script passes shellcheck", () => {
    expect(() => execFileSync("bash", [join(repo, "scripts/lint-workflows.sh")], { stdio: "pipe", timeout: 280_000 })).not.toThrow();
  }, 300_000);

  it("the kind e2e script parses", () => {
    expect(() => execFileSync("bash", ["-n", join(repo, "test/e2e/kind-e2e.sh")])).not.toThrow();
  });
});
