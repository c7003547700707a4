import type { KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "../log.js";
import { Backoff, sleep, waitAtLeast } from "./backoff.js";
import { apiMessage, apiStatus, retryAfterMs, type KubeApi } from "./k8s.js";
import { streamWatch } from "./watch-request.js";

export type InformerEvent = "add" | "update" | "delete";

export interface ListPage<T> {
  items: T[];
  metadata?: { resourceVersion?: string; _continue?: string; continue?: string };
}

export interface InformerOptions<T extends KubernetesObject> {
  api: KubeApi;
  /** Watch path, e.g. /api/v1/nodes or /apis/podnet.io/v1alpha1/nodecidrs. */
  path: string;
  list: (continueToken: string | undefined) => Promise<ListPage<T>>;
  onEvent: (event: InformerEvent, obj: T) => void;
  /** Each page of the very first list as it arrives, before the cache is synced (a consumer's head start). */
  onInitialPage?: (items: T[]) => void;
  log: Logger;
  fieldSelector?: string;
  /** A watch with no event or bookmark for this long is presumed stalled and restarted. */
  stallTimeoutMs?: number;
  watchTimeoutSeconds?: number;
  onError?: (err: unknown) => void;
  /**
   * What of each object to keep (default: all but managedFields). With a projection, an update whose
   * projection equals the cached one refreshes the cache silently: no event for changes nobody reads.
   */
  project?: (obj: T) => T;
  /**
   * After a 410 Gone every watcher of the resource hears it at once (an API server restart): the relist waits a
   * random part of this. 1 s by default; the agents, one per node, spread theirs with the cluster's size.
   */
  relistSpreadMs?: () => number;
}

/** managedFields are most of an object's bytes and no podnet loop reads them: keep caches small. */
function slim<T extends KubernetesObject>(obj: T): T {
  if (obj.metadata?.managedFields) delete obj.metadata.managedFields;
  return obj;
}

/** Not the cached version nor an older one; versions that cannot be compared count as later, as a relist would. */
const isLaterThanCached = (obj: KubernetesObject, cached: KubernetesObject) =>
  obj.metadata?.resourceVersion !== cached.metadata?.resourceVersion && !isNewerVersion(cached.metadata?.resourceVersion, obj.metadata?.resourceVersion);

/** Equal apart from resourceVersion: JSON of projections made by one function keeps one key order. */
function sameProjection(a: KubernetesObject, b: KubernetesObject): boolean {
  const bare = (o: KubernetesObject) => JSON.stringify({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } });
  return bare(a) === bare(b);
}

/**
 * Is `a` a later version than `b`? resourceVersions of one resource are comparable positive integers (KEP-5504,
 * stable since Kubernetes 1.35); anything else counts as not comparable, i.e. "not newer".
 */
export function isNewerVersion(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b || !/^[1-9]\d*$/.test(a) || !/^[1-9]\d*$/.test(b)) return false;
  return a.length !== b.length ? a.length > b.length : a > b; // canonical integers: longer is larger
}

/** How long a deletion outranks a late response to an earlier write (responses come within seconds). */
const TOMBSTONE_MS = 5 * 60_000;

class WatchEnded extends Error {
  constructor(readonly reason: "gone" | "stalled" | "error", message: string) { super(message); }
}

/**
 * List-then-watch cache of one resource. client-node 1.4.0's informer stops for good after a list error
 * or a 500 and a watch can stall silently; this one relists with backoff after any failure and restarts a
 * watch that has been silent for longer than the server's bookmark interval allows.
 */
export class Informer<T extends KubernetesObject> {
  readonly cache = new Map<string, T>();
  private running = false;
  private abort = new AbortController();
  private syncedOnce!: () => void;
  readonly synced = new Promise<void>((resolve) => (this.syncedOnce = resolve));
  private hasSynced = false;
  relists = 0;
  /** Watch requests made (a resumed watch counts again; a relist does not). */
  watches = 0;

  private readonly keep: (obj: T) => T;

  constructor(private readonly opts: InformerOptions<T>) {
    this.keep = opts.project ?? slim;
  }

  /** Does a new version differ in what the consumer sees? Always, without a projection. */
  private changed(old: T, item: T): boolean {
    return !this.opts.project || !sameProjection(old, item);
  }

  get isSynced(): boolean { return this.hasSynced; }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.run();
  }

  stop(): void {
    this.running = false;
    this.abort.abort();
  }

  /**
   * After a dropped connection (an apiserver restart, a load balancer's reset) the watch resumes from the last
   * resourceVersion seen, and the server replays what was missed. Everything is listed again only when the
   * server no longer has that version (410 Gone) or the watch itself reports an error: after a control-plane
   * restart, thousands of agents relisting every NodeCIDR at once would be the next outage.
   */
  private async run(): Promise<void> {
    const backoff = new Backoff();
    let resourceVersion: string | undefined;
    while (this.running) {
      try {
        if (resourceVersion === undefined) {
          resourceVersion = await this.relist();
          backoff.reset();
        }
        while (this.running) {
          const started = performance.now();
          let heard = false;
          resourceVersion = await this.watchOnce(resourceVersion, () => { heard = true; backoff.reset(); });
          // A server (or a proxy in front of it) that accepts watches and closes them at once must not be
          // asked again in a tight loop by every agent: an empty watch that ended within a second waits.
          if (!heard && performance.now() - started < 1_000) await sleep(backoff.next(), this.abort.signal);
        }
      } catch (err) {
        if (!this.running) break;
        const gone = (err instanceof WatchEnded && err.reason === "gone") || apiStatus(err) === 410;
        if (gone || (err instanceof WatchEnded && err.reason === "error")) resourceVersion = undefined;
        if (gone) {
          // Every agent hears the same 410 at once after a control-plane restart: spread their relists (relistSpreadMs).
          await sleep(Math.random() * (this.opts.relistSpreadMs?.() ?? 1_000), this.abort.signal);
          continue;
        }
        this.opts.onError?.(err);
        const delay = waitAtLeast(backoff.next(), retryAfterMs(err), 60_000); // never sooner than a throttling server asked
        const next = resourceVersion === undefined ? "relisting" : `resuming the watch at resourceVersion ${resourceVersion}`;
        this.opts.log.warn({ path: this.opts.path, err: apiMessage(err), retryInMs: delay }, `list/watch failed; ${next}`);
        await sleep(delay, this.abort.signal);
      }
    }
  }

  /** Every page of a list: the objects (kept as the cache keeps them) and the list's resourceVersion. */
  private async listAll(onPage?: (items: T[]) => void): Promise<{ fresh: Map<string, T>; resourceVersion: string }> {
    const fresh = new Map<string, T>();
    let token: string | undefined;
    let resourceVersion = "";
    do {
      const page = await this.opts.list(token);
      for (const item of page.items) fresh.set(item.metadata!.name!, this.keep(item));
      onPage?.(page.items);
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      token = page.metadata?._continue ?? page.metadata?.continue ?? undefined;
    } while (token);
    return { fresh, resourceVersion };
  }

  /**
   * A fresh list merged into the cache while the watch runs on: once this resolves, the cache holds at least
   * what the API server held when it began, even if the watch lags (a leader taking over must not plan on a
   * cache behind its predecessor's last writes). A copy the watch brought meanwhile is newer and stays; an
   * object the list lacks goes only if cached from before the list, and one the watch deleted since stays gone.
   */
  async catchUp(): Promise<void> {
    const { fresh, resourceVersion } = await this.listAll();
    for (const [name, old] of this.cache) {
      if (fresh.has(name) || !isNewerVersion(resourceVersion, old.metadata?.resourceVersion)) continue;
      this.cache.delete(name);
      this.bury(name, resourceVersion);
      this.opts.onEvent("delete", old);
    }
    for (const [name, item] of fresh) {
      const cached = this.cache.get(name);
      const buried = cached ? undefined : this.tombstones.get(name);
      if (cached ? !isLaterThanCached(item, cached) : buried && !isNewerVersion(item.metadata?.resourceVersion, buried.rv)) continue;
      this.tombstones.delete(name);
      this.cache.set(name, item);
      if (!cached) this.opts.onEvent("add", item);
      else if (this.changed(cached, item)) this.opts.onEvent("update", item);
    }
  }

  private async relist(): Promise<string> {
    const { fresh, resourceVersion } = await this.listAll(this.hasSynced ? undefined : (items) => this.opts.onInitialPage?.(items));
    this.relists++;
    for (const [name, old] of this.cache) if (!fresh.has(name)) { this.cache.delete(name); this.bury(name, resourceVersion); this.opts.onEvent("delete", old); }
    for (const [name, item] of fresh) {
      this.tombstones.delete(name);
      const old = this.cache.get(name);
      this.cache.set(name, item);
      if (!old) this.opts.onEvent("add", item);
      else if (old.metadata?.resourceVersion !== item.metadata?.resourceVersion && this.changed(old, item)) this.opts.onEvent("update", item);
    }
    if (!this.hasSynced) { this.hasSynced = true; this.syncedOnce(); }
    return resourceVersion;
  }

  /** One watch from `resourceVersion` until it ends; `heard` runs at its first event (bookmarks count). */
  private watchOnce(resourceVersion: string, heard: () => void): Promise<string> {
    const stallMs = this.opts.stallTimeoutMs ?? 120_000;
    this.watches++;
    return new Promise<string>((resolve, reject) => {
      let rv = resourceVersion;
      // Silence on the monotonic clock: a wall clock stepped forward restarted every watch, one stepped back kept a stalled one.
      let lastActivity = performance.now();
      // Ours from the start: a stall before the server's headers is cut off too, and its socket closed.
      const request = new AbortController();
      let settled = false;
      const finish = (fn: () => void) => { if (!settled) { settled = true; clearInterval(watchdog); this.abort.signal.removeEventListener("abort", onAbort); fn(); } };
      // Settle first, then abort: the aborted request's end must not take the place of the reason (a 410 Gone
      // reported as an abort was retried at the same version).
      const onAbort = () => { finish(() => resolve(rv)); request.abort(); };
      const watchdog = setInterval(() => {
        if (performance.now() - lastActivity > stallMs) { finish(() => reject(new WatchEnded("stalled", `no watch event for ${stallMs} ms`))); request.abort(); }
      }, Math.min(5_000, stallMs / 2));
      this.abort.signal.addEventListener("abort", onAbort, { once: true });
      // timeoutSeconds 5 to 10 minutes, as client-go draws it: watchers that started together must not all end together.
      const query = { resourceVersion: rv, allowWatchBookmarks: true, fieldSelector: this.opts.fieldSelector,
        timeoutSeconds: this.opts.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300) };
      streamWatch<T & { code?: number; message?: string }>(this.opts.api.kc, this.opts.path, query, request.signal, (phase, obj) => {
        if (settled) return;
        lastActivity = performance.now();
        if (phase === "ERROR") {
          finish(() => reject(new WatchEnded(obj.code === 410 ? "gone" : "error", obj.message ?? "watch error")));
          request.abort();
          return;
        }
        rv = obj.metadata?.resourceVersion ?? rv;
        heard();
        if (phase !== "BOOKMARK") this.apply(phase, obj);
      }).then(() => finish(() => resolve(rv)), (err: unknown) => finish(() => reject(err)));
    });
  }

  /**
   * Record the server's answer to one of our own writes before the watch delivers it, so a plan made in
   * between sees it. Only if it is newer than the cached copy: the watch may already have delivered a later
   * change (kubelet's address update after our podCIDRs patch), and the late response must not undo it.
   * Whether the cache took it, had that version already ("known"), or has seen a later one ("older").
   */
  assume(obj: T): "taken" | "known" | "older" {
    const name = obj.metadata!.name!;
    const rv = obj.metadata?.resourceVersion;
    const cached = this.cache.get(name);
    if (cached && !isNewerVersion(rv, cached.metadata?.resourceVersion)) return isNewerVersion(cached.metadata?.resourceVersion, rv) ? "older" : "known";
    const buried = cached ? undefined : this.tombstones.get(name);
    if (buried && performance.now() - buried.at < TOMBSTONE_MS && !isNewerVersion(rv, buried.rv)) return isNewerVersion(buried.rv, rv) ? "older" : "known";
    this.cache.set(name, this.keep(obj));
    return "taken";
  }

  /**
   * Names seen deleted, with the resourceVersion that saw it, for a few minutes (monotonic clock): a late response to a write
   * made before the deletion must not bring the object back. It would stay in the cache until the next relist
   * (a deleted pool kept invalidating the ranges it overlapped, under load in CI).
   */
  private readonly tombstones = new Map<string, { rv: string | undefined; at: number }>();
  private bury(name: string, rv: string | undefined): void {
    this.tombstones.delete(name); // re-inserted last: the map stays in burial order for pruning
    this.tombstones.set(name, { rv, at: performance.now() });
    if (this.tombstones.size <= 1_000) return;
    for (const [old, t] of this.tombstones) {
      if (performance.now() - t.at < TOMBSTONE_MS) break;
      this.tombstones.delete(old);
    }
  }

  private apply(phase: string, raw: T): void {
    const obj = this.keep(raw);
    const name = obj.metadata!.name!;
    if (phase === "DELETED") {
      // The deletion of an earlier incarnation, arriving after a write of ours already put its successor in
      // the cache (a delete and re-create by name): the successor stays, or its CIDR would look free.
      const cached = this.cache.get(name);
      if (cached && (cached.metadata?.uid !== obj.metadata?.uid || isNewerVersion(cached.metadata?.resourceVersion, obj.metadata?.resourceVersion))) return;
      this.bury(name, obj.metadata?.resourceVersion);
      // Not cached: catchUp() already took it out and said so.
      if (this.cache.delete(name)) this.opts.onEvent("delete", obj);
      return;
    }
    this.tombstones.delete(name);
    const cached = this.cache.get(name);
    // An assumed write or catchUp() can be ahead of the watch; its own event follows, so an older one changes nothing.
    if (cached && isNewerVersion(cached.metadata?.resourceVersion, obj.metadata?.resourceVersion)) return;
    this.cache.set(name, obj);
    if (!cached) this.opts.onEvent("add", obj);
    else if (this.changed(cached, obj)) this.opts.onEvent("update", obj);
  }
}
