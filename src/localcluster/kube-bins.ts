import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(fileURLToPath(import.meta.url), "../../..");

/** Directory holding the Go-built kube binaries (hack/build-kube.sh decides it from hack/versions.env). */
export function kubeBinDir(): string {
  if (process.env.PODNET_KUBE_BIN) return process.env.PODNET_KUBE_BIN;
  const script = join(repoRoot, "hack/build-kube.sh");
  // The single-file bundle (the image's podnet.mjs) has no hack/ beside it: say what to do, not bash's error.
  if (!existsSync(script)) throw new Error("no kube-apiserver and etcd found: run the demo from a checkout (make demo), or set PODNET_KUBE_BIN to a directory holding kube-apiserver, etcd and kubectl");
  return execFileSync("bash", [script, "--print"], { encoding: "utf8" }).trim();
}

export function kubeBin(name: "kube-apiserver" | "etcd" | "kubectl" | "kube-controller-manager" | "helm"): string {
  const path = join(kubeBinDir(), name);
  if (!existsSync(path)) throw new Error(`${path} is missing: run hack/build-kube.sh (make kube-bins) first`);
  return path;
}

/** A path printed by one of hack/'s build scripts (`--print`); it must exist: make test's deps build it. */
function builtPath(script: string): string {
  const path = execFileSync("bash", [join(repoRoot, "hack", script), "--print"], { encoding: "utf8" }).trim();
  if (!existsSync(path)) throw new Error(`${path} is missing: run hack/${script} (make test builds it) first`);
  return path;
}

/** promtool, built from its Go module: checks podnet's alert rules. */
export const promtoolBin = () => builtPath("build-promtool.sh");
/** The static upstream CNI plugins the image installs on nodes. */
export const imageCniPluginsDir = () => builtPath("build-cni-plugins.sh");
