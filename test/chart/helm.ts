import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { kubeBin } from "../../src/localcluster/kube-bins.js";

/** The chart the chart tests render, with the repo's own helm. */
export const chart = join(import.meta.dirname, "../../charts/podnet");
export type Obj = { kind: string; metadata: { name: string }; spec?: Record<string, unknown> } & Record<string, unknown>;

export function render(...sets: string[]): Obj[] {
  const out = execFileSync(kubeBin("helm"), ["template", "podnet", chart, "--namespace", "kube-system", "--kube-version", "1.32.0", ...sets.flatMap((s) => ["--set", s])], { encoding: "utf8" });
  return parseAllDocuments(out).map((d) => d.toJS() as Obj).filter(Boolean);
}
export const find = (objs: Obj[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name)!;
export const args = (o: Obj) => ((o.spec as { template: { spec: { containers: Array<{ args: string[] }> } } }).template.spec.containers[0]!.args);
