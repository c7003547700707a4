import { readFile } from "node:fs/promises";
import { commandFailed, run, type ExecResult } from "./exec.js";
import { FirewallBusyError, FirewallUnreadableError, FORWARD_ACCEPT_COMMENT, type FirewallBackend, type ForwardAcceptPlan, type ForwardChain } from "./forward-accept.js";

/**
 * The same accepts for a host whose firewall is on iptables-legacy (Ubuntu 20.04's default, or a host switched
 * to it with update-alternatives): its x_tables rules are out of nft's sight, so Docker's DROP policy there
 * would go unseen. Read with `iptables-legacy -S FORWARD`, changed with one `iptables-legacy-restore --noflush`
 * (the kernel swaps the whole table at COMMIT, so a refused line changes nothing). Deletes name the rule by
 * its text, not its number: another tool may insert a rule between the listing and the change. Accepts that
 * go in front of a final drop rule can only be inserted by number (see `misplaced` for a number gone stale).
 */
const tool = (family: 4 | 6) => (family === 4 ? "iptables-legacy" : "ip6tables-legacy");

/** Pure: `iptables-legacy -S FORWARD` → its policy and rules; a rule's handle is its position, its spec the line. */
export function parseLegacyForwardChain(listing: string): ForwardChain {
  const chain: ForwardChain = { rules: [] };
  for (const line of listing.split("\n")) {
    const words: string[] = line.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? [];
    if (words[0] === "-P" && words[1] === "FORWARD") chain.policy = words[2]?.toLowerCase();
    if (words[0] !== "-A" || words[1] !== "FORWARD") continue;
    const after = (flag: string) => { const i = words.indexOf(flag); return i > 0 && words[i - 1] !== "!" ? words[i + 1] : undefined; };
    const comment = after("--comment")?.replace(/^"(.*)"$/, "$1").replace(/\\(.)/g, "$1");
    const source = after("-s");
    const destination = after("-d");
    const direction = source !== undefined && destination === undefined ? "saddr" : destination !== undefined && source === undefined ? "daddr" : undefined;
    const cidr = direction === "saddr" ? source : direction === "daddr" ? destination : undefined;
    chain.rules.push({
      handle: chain.rules.length + 1,
      spec: words.slice(2).join(" "),
      ...(comment !== undefined ? { comment } : {}),
      ...(direction !== undefined ? { direction } : {}),
      ...(cidr !== undefined ? { cidr } : {}),
      ...(dropsEverything(words.slice(2)) ? { dropsAll: true } : {}),
    });
  }
  return chain;
}

/** `-j DROP`, or `-j REJECT` with its `--reject-with`, and at most a comment besides. */
function dropsEverything(words: string[]): boolean {
  const commentAt = words.indexOf("--comment");
  const rest = commentAt > 1 && words[commentAt - 2] === "-m" && words[commentAt - 1] === "comment" ? words.toSpliced(commentAt - 2, 4) : words;
  if (rest[0] !== "-j") return false;
  if (rest[1] === "DROP") return rest.length === 2;
  return rest[1] === "REJECT" && (rest.length === 2 || (rest.length === 4 && rest[2] === "--reject-with"));
}

/**
 * Pure: the plan as one `iptables-legacy-restore --noflush` script; deletions by rule text, accepts appended
 * or inserted at the final drop rule's place, counted after podnet's deletions above it.
 */
export function legacyForwardAcceptScript(chain: ForwardChain, plan: ForwardAcceptPlan): string {
  const specOf = new Map(chain.rules.map((r) => [r.handle, r.spec]));
  const at = plan.before === undefined ? undefined : plan.before - plan.deleteHandles.filter((h) => h < plan.before!).length;
  return [
    "*filter",
    ...plan.deleteHandles.map((h) => `-D FORWARD ${specOf.get(h)}`),
    ...plan.add.map((r, i) => `${at === undefined ? "-A FORWARD" : `-I FORWARD ${at + i}`} ${r.direction === "saddr" ? "-s" : "-d"} ${r.cidr} -m comment --comment "${FORWARD_ACCEPT_COMMENT}" -j ACCEPT`),
    "COMMIT",
    "",
  ].join("\n");
}

/**
 * The kernel lists the x_tables tables a namespace has in use. Only where `filter` is among them is there a
 * legacy FORWARD chain: listing it with iptables-legacy would otherwise create the table, so nothing runs.
 */
async function hasLegacyFilterTable(family: 4 | 6, netns?: string): Promise<boolean> {
  const path = `/proc/net/${family === 4 ? "ip" : "ip6"}_tables_names`;
  // Absent: the kernel has no x_tables for the family (module not loaded), so no legacy rules. Any other failure
  // is no answer: a legacy chain that drops pod traffic must not pass for none.
  const unreadable = (why: string) => new FirewallUnreadableError(`could not read ${path} to find an iptables-legacy filter table: ${why}`);
  let names: string;
  if (netns) {
    // By absolute path: only tests and the local cluster name a namespace, and they may hide tools from PATH.
    const r = await run("/bin/cat", [path], { netns });
    if (r.code !== 0 && !r.stderr.includes("No such file")) throw unreadable(r.stderr.trim());
    names = r.code === 0 ? r.stdout : "";
  } else {
    names = await readFile(path, "utf8").catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return "";
      throw unreadable(err.message);
    });
  }
  return names.split("\n").includes("filter");
}

/** iptables-legacy's words when the xtables lock stayed taken for all of `-w`. */
const lockHeld = (r: ExecResult) => r.code !== 0 && r.stderr.includes("holding the xtables lock");
const LOCK_WAIT_S = "5";

export const iptablesLegacy: FirewallBackend = {
  name: "iptables-legacy",
  async read(family, netns) {
    if (!(await hasLegacyFilterTable(family, netns))) return undefined;
    // -w: wait for the xtables lock kube-proxy and Docker take, instead of failing while they hold it.
    const listed = await run(tool(family), ["-w", LOCK_WAIT_S, "-S", "FORWARD"], { netns }).catch((err: unknown) => {
      throw new FirewallUnreadableError(`the host has an iptables-legacy filter table, and ${tool(family)} could not list it: ${err instanceof Error ? err.message : String(err)}`);
    });
    if (lockHeld(listed)) throw new FirewallBusyError(`${tool(family)} -S FORWARD: ${listed.stderr.trim()}`, true);
    if (listed.code !== 0) throw new FirewallUnreadableError(`${tool(family)} -S FORWARD failed: ${listed.stderr.trim()}`);
    return parseLegacyForwardChain(listed.stdout);
  },
  async apply(family, chain, plan, netns) {
    const restore = `${tool(family)}-restore`;
    const args = ["-w", LOCK_WAIT_S, "--noflush"];
    const r = await run(restore, args, { netns, input: legacyForwardAcceptScript(chain, plan) });
    if (lockHeld(r)) throw new FirewallBusyError(`${restore}: ${r.stderr.trim()}`, false);
    if (r.code !== 0) throw commandFailed(restore, args, r);
  },
};
