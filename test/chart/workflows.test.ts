import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { kubeBin } from "../../src/localcluster/kube-bins.js";

const repo = join(import.meta.dirname, "../..");

describe("rung 5 (kind) artefacts: written and linted here, run in GitHub Actions", () => {
  it("the workflows pass actionlint (built from its Go module, shellcheck on every run step) and the kind e2e script passes shellcheck", () => {
    expect(() => execFileSync("bash", [join(repo, "scripts/lint-workflows.sh")], { stdio: "pipe", timeout: 280_000 })).not.toThrow();
  }, 300_000);

  it("the workflows use the Helm and kind versions hack/versions.env pins", () => {
    const pinned = Object.fromEntries(readFileSync(join(repo, "hack/versions.env"), "utf8").split("\n").filter((l) => /^[A-Z_]+=/.test(l)).map((l) => l.split("=") as [string, string]));
    type Step = { uses?: string; with?: { version?: string } };
    const steps = (file: string) => Object.values((parse(readFileSync(join(repo, ".github/workflows", file), "utf8")) as { jobs: Record<string, { steps: Step[] }> }).jobs).flatMap((j) => j.steps);
    const versionsOf = (prefix: string) => ["kind-e2e.yaml", "release.yaml"].flatMap(steps).filter((s) => s.uses?.startsWith(prefix)).map((s) => s.with?.version);
    expect(versionsOf("azure/setup-helm@")).toEqual([pinned.HELM_VERSION, pinned.HELM_VERSION]);
    expect(versionsOf("helm/kind-action@")).toEqual([pinned.KIND_VERSION]);
  });

  it("the kind e2e script parses", () => {
    expect(() => execFileSync("bash", ["-n", join(repo, "test/e2e/kind-e2e.sh")])).not.toThrow();
  });

  it("the kind e2e script's helm template renders with this repo's helm too (built without the Kubernetes version ldflags, it takes a cluster for 1.20)", () => {
    const script = readFileSync(join(repo, "test/e2e/kind-e2e.sh"), "utf8").replace(/\\\n\s*/g, " ");
    const commands = [...script.matchAll(/^helm template [^|\n]*/gm)].map((m) => m[0]);
    expect(commands.length).toBeGreaterThan(0);
    for (const command of commands) {
      const env = { ...process.env, PATH: `${dirname(kubeBin("helm"))}:${process.env.PATH}` };
      expect(execFileSync("bash", ["-euc", command], { cwd: repo, encoding: "utf8", env, stdio: "pipe" })).toContain("name: podnet-cleanup");
    }
  });

  it("the release workflow publishes only a tag naming the chart's version, to the tag owner's registry, lower-cased", () => {
    const workflow = parse(readFileSync(join(repo, ".github/workflows/release.yaml"), "utf8")) as { jobs: { release: { steps: Array<{ id?: string; run?: string }> } } };
    const script = workflow.jobs.release.steps.find((s) => s.id === "meta")!.run!;
    const version = /^version: *(\S+)/m.exec(readFileSync(join(repo, "charts/podnet/Chart.yaml"), "utf8"))![1]!;
    const dir = mkdtempSync(join(tmpdir(), "podnet-release-"));
    try {
      const run = (tag: string) => {
        const output = join(dir, `${tag}.out`);
        const r = spawnSync("bash", ["-e", "-c", script], { cwd: repo, encoding: "utf8", env: { ...process.env, GITHUB_REF_NAME: tag, GITHUB_REPOSITORY_OWNER: "PodNet", GITHUB_OUTPUT: output } });
        return { code: r.status, stdout: r.stdout, out: r.status === 0 ? readFileSync(output, "utf8") : "" };
      };
      expect(run(`v${version}`)).toMatchObject({ code: 0, out: `version=${version}\nimage=ghcr.io/podnet/podnet\ncharts=oci://ghcr.io/podnet/charts\n` });
      // The chart it packages names the image it pushed, not podnet's own default.
      const chartImage = workflow.jobs.release.steps.find((s) => s.id === "chart-image")!.run!;
      execFileSync("cp", ["-r", join(repo, "charts"), dir]);
      const named = spawnSync("bash", ["-e", "-c", chartImage], { cwd: dir, encoding: "utf8", env: { ...process.env, IMAGE: "ghcr.io/a-fork/podnet" } });
      expect(named.status).toBe(0);
      const rendered = execFileSync(kubeBin("helm"), ["template", "podnet", join(dir, "charts/podnet"), "-n", "kube-system", "--kube-version", "1.33.0"], { encoding: "utf8" });
      expect(rendered).toContain(`image: ghcr.io/a-fork/podnet:${version}`);
      expect(rendered).not.toContain("ghcr.io/podnet/podnet");
      const wrong = run("v9.9.9");
      expect(wrong.code).not.toBe(0);
      expect(wrong.stdout).toContain(`does not match charts/podnet/Chart.yaml (version ${version}, appVersion ${version})`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
