import type { KubernetesObject } from "@kubernetes/client-node";
import { sleep } from "../lib/backoff.js";
import { Informer, type ListPage } from "../lib/informer.js";
import type { KubeApi } from "../lib/k8s.js";
import type { Logger } from "../log.js";
import { NETWORK_UNAVAILABLE, type WatchedNodeNetwork } from "./node-network-condition.js";
import type { Record_ } from "./records.js";

type WatchedNode = KubernetesObject & { status?: { conditions?: Array<{ type: string; status: string }> } };

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

/** How long a start waits for its Node's uid before going on without it (an API server that does not answer). */
const FIRST_READ_MS = 3_000;

/**
 * Shell: this node's Node uid and NetworkUnavailable condition, from a watch on that one Node (a field selector on
 * its name, as kubelet watches its own): a Node registered again while the agent runs is seen at once, not at a
 * timed read of the Node or only after a restart, and the condition is cleared without reading the Node. The
 * last uid seen stays while the Node is gone: nothing changes until one registers again. Unknown (no Node yet,
 * the watch refused), every record is used.
 */
export class NodeIdentity {
  private readonly watch: Informer<WatchedNode>;
  private known?: string;
  private readonly warned = new Set<string>();

  constructor(api: KubeApi, private readonly node: string, private readonly log: Logger, onChange: () => void, onError: () => void) {
    const fieldSelector = `metadata.name=${node}`;
    this.watch = new Informer<WatchedNode>({
      api, path: "/api/v1/nodes", fieldSelector, log, onError,
      list: (t) => api.core.listNode({ fieldSelector, limit: 10, _continue: t }) as Promise<ListPage<WatchedNode>>,
      // Only the uid and NetworkUnavailable's status are read: kubelet's status updates (heartbeats, images) change
      // nothing here and wake nobody.
      project: (n) => {
        const unavailable = n.status?.conditions?.find((c) => c.type === NETWORK_UNAVAILABLE);
        return { apiVersion: n.apiVersion, kind: n.kind, metadata: { name: n.metadata?.name, uid: n.metadata?.uid, resourceVersion: n.metadata?.resourceVersion },
          status: { conditions: unavailable ? [{ type: NETWORK_UNAVAILABLE, status: unavailable.status }] : [] } };
      },
      onEvent: (event, n) => {
        if (event === "delete") return;
        const uid = n.metadata?.uid;
        const newUid = uid !== undefined && uid !== this.known;
        if (newUid) {
          if (this.known) log.warn({ node, uid, before: this.known }, "this node's Node was registered again: NodeCIDRs made for the earlier one are no longer used");
          else log.info({ node, uid }, "this node's Node uid");
          this.known = uid;
        }
        // A new uid, or NetworkUnavailable not False (a pass clears it); this agent's own clear wakes no pass.
        if (newUid || n.status?.conditions?.[0]?.status !== "False") onChange();
      },
    });
  }

  get uid(): string | undefined { return this.known; }

  /** The Node's NetworkUnavailable status as watched; undefined while the watch has not listed yet. */
  network(): WatchedNodeNetwork | undefined {
    if (!this.watch.isSynced) return undefined;
    const n = this.watch.cache.get(this.node);
    return n ? { resourceVersion: n.metadata?.resourceVersion, networkUnavailable: n.status?.conditions?.[0]?.status } : "absent";
  }

  /** Starts the watch and waits for the uid, up to FIRST_READ_MS: before any record is taken as this node's. */
  async start(): Promise<void> {
    this.watch.start();
    const gaveUp = new AbortController();
    await Promise.race([this.watch.synced, sleep(FIRST_READ_MS, gaveUp.signal)]);
    gaveUp.abort();
  }

  stop(): void { this.watch.stop(); }

  /** Records of this node's name made for an earlier Node of the name; each is warned about once. */
  predecessors(records: ReadonlyMap<string, Record_>): Set<string> {
    const found = new Set<string>();
    for (const [name, r] of records) if (isPredecessorRecord(r, this.node, this.known) && r.status?.phase === "Allocated") found.add(name);
    for (const name of found) {
      if (this.warned.has(name)) continue;
      this.warned.add(name);
      this.log.warn({ node: this.node, nodeCidr: name, recordNodeUID: records.get(name)?.spec.nodeUID, nodeUID: this.known },
        "NodeCIDR names this node but was made for an earlier Node of this name: not used (no routes, status or NetworkUnavailable from it, and a conflist handing out its range is removed); waiting for the controller to release it and give this Node its own");
    }
    for (const name of this.warned) if (!found.has(name)) this.warned.delete(name);
    return found;
  }
}
