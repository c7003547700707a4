import { execFileSync } from "node:child_process";
import { copyFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, parseAllDocuments } from "yaml";
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

/**
 * NOTES.txt as `helm install` prints it. helm template skips NOTES.txt and install needs a cluster, so a copy of
 * the chart renders it through tpl (files under templates/ are not in .Files).
 */
export function renderNotes(...sets: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), "podnet-notes-"));
  try {
    const copy = join(dir, "podnet");
    cpSync(chart, copy, { recursive: true });
    copyFileSync(join(copy, "templates/NOTES.txt"), join(copy, "notes.txt"));
    writeFileSync(join(copy, "templates/notes.yaml"), 'notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n');
    const out = execFileSync(kubeBin("helm"), ["template", "podnet", copy, "--namespace", "kube-system", "--kube-version", "1.32.0", "-s", "templates/notes.yaml", ...sets.flatMap((s) => ["--set", s])], { encoding: "utf8" });
    return (parse(out) as { notes: string }).notes;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
