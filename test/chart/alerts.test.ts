import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { controllerMetrics } from "../../src/controllers/metrics.js";
import { promtoolBin } from "../../src/localcluster/kube-bins.js";
import { agentMetrics } from "../../src/node-agent/agent-metrics.js";

const rulesFile = join(import.meta.dirname, "../../charts/podnet/alerts/podnet.rules.yaml");
const unitTests = join(import.meta.dirname, "alerts.promtool.yaml");
const dashboard = join(import.meta.dirname, "../../charts/podnet/dashboards/podnet.json");
type RuleFile = { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
const rules = () => (parse(readFileSync(rulesFile, "utf8")) as RuleFile).groups.flatMap((g) => g.rules);

function promtool(...args: string[]): { code: number | null; output: string } {
  const r = spawnSync(promtoolBin(), args, { cwd: import.meta.dirname, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

describe("alerting rules (charts/podnet/alerts) checked by promtool", () => {
  it("are valid Prometheus rules", () => {
    const r = promtool("check", "rules", rulesFile);
    expect(r.output).toContain(`SUCCESS: ${rules().length} rules found`);
    expect(r.code).toBe(0);
  });

  it("fire on a broken cluster's series with their rendered text and stay quiet on a healthy one (promtool test rules)", () => {
    const r = promtool("test", "rules", unitTests);
    expect(r.output).not.toContain("FAILED");
    expect(r.code).toBe(0);
  });

  it("every alert has a unit test in which it fires", () => {
    const tests = (parse(readFileSync(unitTests, "utf8")) as { tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }> }).tests;
    const firing = new Set(tests.flatMap((t) => t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)));
    expect(rules().map((r) => r.alert).filter((name) => !firing.has(name))).toEqual([]);
  });

  it("use only metrics podnet's controller and agent register (and Prometheus' own `up`), as does the dashboard", async () => {
    const registered = new Set(["up"]);
    for (const { registry } of [controllerMetrics(), agentMetrics()]) {
      for (const m of await registry.getMetricsAsJSON()) {
        registered.add(m.name);
        if (String(m.type) === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) registered.add(m.name + suffix);
      }
      registry.clear();
    }
    const used = (text: string) => [...text.matchAll(/\b(podnet_[a-z0-9_]+|up)\b(?=\s*[{[)\s/<>=!-]|$)/g)].map((m) => m[1]!);
    const exprs = [...rules().map((r) => r.expr), ...[...readFileSync(dashboard, "utf8").matchAll(/"expr": "([^"]+)"/g)].map((m) => m[1]!)];
    const names = new Set(exprs.flatMap(used));
    expect(names.size).toBeGreaterThan(10);
    expect([...names].filter((n) => !registered.has(n))).toEqual([]);
  });
});
