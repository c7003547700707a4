import { apiMessage, isNotFound, withSignal, type KubeApi } from "../lib/k8s.js";
import type { Logger } from "../log.js";
import type { Record_ } from "./records.js";

/**
 * A Node deleted and registered again under its name (a replaced VM, `kubectl delete node` and a kubelet restart)
 * is a new Node. While the controller is down (a crash, a failover) its predecessor's NodeCIDR still names this
 * node and is still Allocated; taken as this node's, its CIDR went into the conflist, NetworkUnavailable was
 * cleared, pods got addresses from it, and lost their network for good when the controller came back and
 * released it (a churn review, on the local cluster). The controller stamps the Node's uid into every record it
 * makes (spec.nodeUID): one with another uid is nobody's here, and this node waits for its own.
 */
export const isPredecessorRecord = (r: Record_, node: string, uid: string | undefined): boolean =>
  uid !== undefined && r.spec.nodeName === node && r.spec.nodeUID !== undefined && r.spec.nodeUID !== uid;

/** Shell: this node's Node uid, read at start and again (at most once per interval) while it is unknown or in doubt. */
export class NodeIdentity {
  uid?: string;
  private readAt = -Infinity;
  private reading?: Promise<void>;
  private readonly warned = new Set<string>();

  constructor(private readonly api: KubeApi, private readonly node: string, private readonly log: Logger, private readonly intervalMs: number) {}

  /** Reads the Node now; never throws (an unknown uid leaves every record of this node's name usable, as before). */
  read(timeoutMs = 3_000): Promise<void> {
    this.readAt = performance.now();
    this.reading ??= this.api.core.readNode({ name: this.node }, withSignal(AbortSignal.timeout(timeoutMs)))
      .then((n) => {
        if (n.metadata?.uid && n.metadata.uid !== this.uid) this.log.info({ node: this.node, uid: n.metadata.uid }, "this node's Node uid");
        this.uid = n.metadata?.uid ?? this.uid;
      })
      .catch((err: unknown) => {
        if (!isNotFound(err)) this.log.warn({ node: this.node, err: apiMessage(err) }, "could not read this node's Node (its uid tells a predecessor's NodeCIDR from its own); retrying");
      })
      .finally(() => { this.reading = undefined; });
    return this.reading;
  }

  /**
   * Records of this node's name made for an earlier Node of the name. A uid not known yet, or one that no
   * longer matches a record the controller just made (this Node was itself registered again), is read again,
   * at most once per interval; `onChange` runs after that read when it changed the uid or found records in doubt,
   * and they are warned about only then: a record of this Node's new incarnation is not called a predecessor's.
   */
  predecessors(records: ReadonlyMap<string, Record_>, onChange: () => void): Set<string> {
    const found = new Set<string>();
    for (const [name, r] of records) if (isPredecessorRecord(r, this.node, this.uid)) found.add(name);
    const doubt = this.uid === undefined || found.size > 0;
    if (doubt && !this.reading && performance.now() - this.readAt >= this.intervalMs) {
      // This Node may itself have been registered again since the uid was read: read it, then plan (and warn) again.
      const before = this.uid;
      void this.read().then(() => { if (this.uid !== before || found.size > 0) onChange(); });
    }
    if (this.reading) return found; // judged, and warned about, once the read under way is in
    for (const name of found) {
      if (this.warned.has(name)) continue;
      this.warned.add(name);
      this.log.warn({ node: this.node, nodeCidr: name, recordNodeUID: records.get(name)?.spec.nodeUID, nodeUID: this.uid },
        "NodeCIDR names this node but was made for an earlier Node of this name: not used (no routes, conflist or status from it); waiting for the controller to give this Node its own");
    }
    for (const name of this.warned) if (!found.has(name)) this.warned.delete(name);
    return found;
  }
}
