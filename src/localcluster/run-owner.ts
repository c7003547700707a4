import { readFileSync } from "node:fs";

/**
 * Who made a test or demo run's namespaces and run dir: a pid plus that process's start time (clock ticks since
 * boot, /proc/<pid>/stat field 22), as `<pid>.<ticks base 36>`. A pid alone can be reused: a crashed run's
 * leftovers would then be spared for as long as an unrelated process holds its pid.
 */

/** Field 22 of a /proc/<pid>/stat line, base 36. */
export function startTicksOf(stat: string): string | undefined {
  // The command name (field 2) is in parentheses and may hold spaces and parentheses: count from its last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = fields[22 - 3];
  return ticks && /^\d+$/.test(ticks) ? BigInt(ticks).toString(36) : undefined;
}

/** The process's start time as /proc reports it, or undefined when there is no such process. */
export function processStartTicks(pid: number): string | undefined {
  try { return startTicksOf(readFileSync(`/proc/${pid}/stat`, "utf8")); } catch { return undefined; }
}

export const ownerToken = (pid: number): string => `${pid}.${processStartTicks(pid) ?? "0"}`;

/**
 * Whether the process a token names is still the one that made it. A token without a start time (an older
 * run's) falls back to "a process with that pid exists".
 */
const TOKEN = /^(\d+)(?:\.([0-9a-z]+))?$/;
export const isOwnerToken = (text: string): boolean => TOKEN.test(text.trim());

export function ownerAlive(token: string): boolean {
  const match = TOKEN.exec(token.trim());
  if (!match) return false;
  const pid = Number(match[1]);
  const ticks = processStartTicks(pid);
  return ticks !== undefined && (match[2] === undefined || match[2] === ticks);
}
