/**
 * podnet's error and fatal log lines, split into those the soak's own faults explain and the rest. An apiserver
 * the soak stopped, or a process it killed mid-request, makes API calls fail: "sync failed; retrying" with a
 * refused or reset connection is the agent doing its job. Anything else at error level is a violation.
 */
// "before all known HTTP paths have been installed": a kube-apiserver just started answers so until its
// CRD routes are in (503 with Retry-After; the message says no code), even after /readyz said ok.
const FAULT_WORDS = /ECONNREFUSED|ECONNRESET|EPIPE|socket hang up|fetch failed|connect ETIMEDOUT|other side closed|timed? ?out|503|Service Unavailable|terminated|before all known HTTP paths have been installed/i;
/**
 * A node deleted and rejoining under its name: its new agent starts before the new Node exists (the local cluster
 * boots agents first), takes the earlier Node's still-Allocated record for its own and writes a conflist from it,
 * then removes that conflist once the Node's uid shows the record is the earlier Node's. The agent does right, at
 * error level; only this variant is explained: a range "now node X's" would be another node's, and stays a finding.
 */
const EARLIER_NODE_CONFLIST = /this node has no pod CIDR and the conflist handed out .*an earlier Node/;

interface LogLine { level?: string | number; msg?: string; err?: unknown; [key: string]: unknown }

function parse(line: string): LogLine | undefined {
  if (!line.startsWith("{")) return undefined;
  try { return JSON.parse(line) as LogLine; } catch { return undefined; }
}

/** pino writes levels as numbers (50 error, 60 fatal) unless configured to write their names. */
const levelName = (l: LogLine) => (typeof l.level === "number" ? (l.level >= 60 ? "fatal" : l.level >= 50 ? "error" : "lower") : l.level);

/** Pure: log text → the error/fatal lines the injected faults do not explain, as `<msg>: <err>` (each once). */
export function unexplainedErrors(text: string): string[] {
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const l = parse(line);
    const level = l && levelName(l);
    if (!l || (level !== "error" && level !== "fatal")) continue;
    const err = l.err === undefined ? "" : typeof l.err === "string" ? l.err : JSON.stringify(l.err);
    const msg = l.msg ?? "";
    if (level === "error" && (FAULT_WORDS.test(`${err} ${msg}`) || (EARLIER_NODE_CONFLIST.test(msg) && !/now node /.test(msg)))) continue;
    out.add(`${level} ${msg}${err ? `: ${err}` : ""}`.slice(0, 300));
  }
  return [...out];
}
