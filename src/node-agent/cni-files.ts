import { randomBytes } from "node:crypto";
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { run } from "./exec.js";

export class CniConfigError extends Error {
  override name = "CniConfigError";
}

/**
 * Write a file atomically: temp file in the same directory, fsync, rename, fsync the directory. A reader
 * (the container runtime) sees the old file or the new one, never half of one. Unchanged content is not
 * rewritten, so the runtime's file watcher is not poked every resync.
 */
export function writeFileAtomic(dir: string, name: string, content: string, known?: { current: string | undefined }): boolean {
  const target = join(dir, name);
  if (!existsSync(dir)) throw new CniConfigError(`CNI config directory ${dir} does not exist`);
  // `known`: the caller just read the file (undefined: it did not exist), so it is not read twice.
  if ((known ? known.current : readIfPresent(target)) === content) return false;
  // A fresh name, created exclusively: the agent runs as root in a directory other programs write too, and a
  // name known in advance (the pid is 1 in a container) could be planted as a symlink to write through.
  // Temp files a killed agent left are removed first (a symlink among them goes, not its target).
  const prefix = `.${name}.tmp-`;
  for (const leftover of readdirSync(dir).filter((f) => f.startsWith(prefix))) rmSync(join(dir, leftover), { force: true });
  const tmp = join(dir, `${prefix}${randomBytes(6).toString("hex")}`);
  try {
    const fd = openSync(tmp, "wx", 0o644);
    try {
      // writeFileSync loops until all is written: a single write(2) on a nearly full disk writes part of the
      // file and reports success, and that part would be renamed over the whole old file.
      writeFileSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
    const dirFd = openSync(dir, "r");
    try { fsyncSync(dirFd); } finally { closeSync(dirFd); }
    return true;
  } catch (err) {
    rmSync(tmp, { force: true });
    // Without the random part: the message goes into CNIConfigured, and one that changed every pass would be a
    // status write every pass, delivered to every agent, for as long as the directory refuses writes.
    throw new CniConfigError(`cannot write ${target}: ${(err as Error).message.replaceAll(tmp, join(dir, `${prefix}*`))}`);
  }
}

/** A file's text, undefined if there is none; a read that fails names the file. */
export function readIfPresent(path: string): string | undefined {
  try {
    return existsSync(path) ? readFileSync(path, "utf8") : undefined;
  } catch (err) {
    throw new CniConfigError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The config files a container runtime considers, in the order it tries them: libcni's ConfFiles (regular
 * entries by extension, dotfiles included), sorted. Our own temp files end in `.tmp-<pid>` and never count.
 */
export function runtimeConfigFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => !e.isDirectory() && /\.(conflist|conf|json)$/.test(e.name))
    .map((e) => e.name)
    .sort();
}

/**
 * Which config the runtime picks (the alphabetically first) against ours. `usedThrough`: the one it picks sorts
 * first but hands pods to podnet's network (Multus), `usedThroughCopy` when it does so with its own copy of
 * podnet's conflist; `shadowedBy`: files sorting first that do not.
 */
export interface ConfigPrecedence { shadowedBy: string[]; usedThrough?: string; usedThroughCopy?: boolean }

export function configPrecedence(dir: string, ourName: string, networkName = "podnet"): ConfigPrecedence {
  const earlier = runtimeConfigFiles(dir).filter((f) => f < ourName);
  if (earlier.length === 0) return { shadowedBy: [] };
  let first: string | undefined;
  try { first = readIfPresent(join(dir, earlier[0]!)); } catch { first = undefined; } // unreadable: the runtime cannot use it as ours either
  const delegation = first === undefined ? undefined : delegatesToPodnet(first, networkName, ourName);
  if (delegation) return { shadowedBy: [], usedThrough: earlier[0]!, ...(delegation === "copy" ? { usedThroughCopy: true } : {}) };
  return { shadowedBy: earlier };
}

/**
 * How a config hands pods to podnet's network: `reference`, naming podnet's conflist or network (Multus reads it
 * at each ADD), or `copy`, holding a copy of the conflist (podnet's changes reach pods only when Multus rewrites it).
 */
export type PodnetDelegation = "reference" | "copy";

/**
 * Pure: does this config hand pods' default network to podnet's, and how? Multus writes 00-multus.conf to sort
 * first and delegates: the thick plugin (type multus-shim) names the primary conflist's path as its container
 * sees it in `clusterNetwork` ("/host/etc/cni/net.d/10-podnet.conflist"); the thin one (type multus) copies the
 * primary conflist into `delegates`, whose first entry is the default network, or names it in `clusterNetwork`
 * (a path, or a network name), which then wins over `delegates`. A conflist form (the same keys in a plugin) counts too.
 */
export function delegatesToPodnet(text: string, networkName: string, conflistName: string): PodnetDelegation | undefined {
  let parsed: unknown;
  try { parsed = JSON.parse(text); } catch { return undefined; }
  if (!parsed || typeof parsed !== "object") return undefined;
  const top = parsed as { plugins?: unknown };
  const confs = [top, ...(Array.isArray(top.plugins) ? top.plugins : [])] as Array<{ clusterNetwork?: unknown; delegates?: unknown } | null>;
  for (const c of confs) {
    if (typeof c?.clusterNetwork === "string" && c.clusterNetwork !== "") {
      if (c.clusterNetwork === networkName || basename(c.clusterNetwork) === conflistName) return "reference";
      continue;
    }
    const primary = Array.isArray(c?.delegates) ? (c.delegates[0] as { name?: unknown } | undefined) : undefined;
    if (primary?.name === networkName) return "copy";
  }
  return undefined;
}

/**
 * The plugins libcni would not find in `binDir`, as its FindInPath looks: a name with a path separator is
 * refused, and only a regular file (a symlink to one included) counts.
 */
export function missingPlugins(binDir: string, plugins: string[]): string[] {
  return plugins.filter((p) => p.includes("/") || !isRegularFile(join(binDir, p)));
}

function isRegularFile(path: string): boolean {
  try { return statSync(path).isFile(); } catch { return false; }
}

/** Ask each plugin which CNI spec versions it speaks. */
export async function pluginVersions(binDir: string, plugins: string[]): Promise<string[][]> {
  return Promise.all(plugins.map(async (p) => {
    const r = await run(join(binDir, p), [], { input: "{}", timeoutMs: 5_000, env: { CNI_COMMAND: "VERSION" } }).catch(() => undefined);
    if (!r) return [];
    try {
      const parsed = JSON.parse(r.stdout) as { supportedVersions?: string[] };
      return parsed.supportedVersions ?? [];
    } catch {
      return [];
    }
  }));
}
