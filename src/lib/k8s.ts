import { existsSync } from "node:fs";
import { Agent as HttpsAgent, type AgentOptions } from "node:https";
import { Socket } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import {
  ServerConfiguration, createConfiguration, Observable, type ConfigurationOptions, type ObservableMiddleware, type RequestContext, type SecurityAuthentication,
  ApiextensionsV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, loadYaml, setHeaderOptions,
  type V1CustomResourceDefinition,
} from "@kubernetes/client-node";
import { GROUP, VERSION } from "../crds/common.js";
import { apiMessage, apiStatus, isAlreadyExists } from "./api-errors.js";

/**
 * The one module that builds API clients. Everything that talks to the API server gets a KubeApi from here,
 * so credentials, content types and field managers are decided in one place.
 */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) {
    try { kc.loadFromFile(path); } catch (err) { throw new Error(`cannot load kubeconfig ${path}: ${(err as Error).message}`, { cause: err }); }
  } else if (process.env.KUBERNETES_SERVICE_HOST && !process.env.KUBECONFIG) kc.loadFromCluster();
  else if (process.env.KUBECONFIG || existsSync(join(homedir(), ".kube", "config"))) kc.loadFromDefault();
  // client-node would fall back to http://localhost:8080, and every request would then fail with a TLS
  // complaint that names neither the missing kubeconfig nor the way to give one.
  else throw new Error("no kubeconfig: pass --kubeconfig (or set KUBECONFIG), or run in a pod (in-cluster config needs KUBERNETES_SERVICE_HOST)");
  return kc;
}

type OnSocket = (err: Error | null, socket: Duplex) => void;
const SILENCE_TIMEOUT_MS = 60_000;

/**
 * A keep-alive agent that counts the connections it opens and does not keep the request that opened each one.
 * Node's https createConnection leaves its callback reachable from the socket's "session" listener for the
 * socket's lifetime, and that callback holds the request that opened the socket, its response and the body
 * read from it: with keep-alive, the first response on every pooled socket stayed in memory (a heap snapshot
 * of an agent at 4,999 NodeCIDRs held a 2 MB list page and its chunks that way). The callback passed on here
 * lets go once the socket exists; Agent.createSocket calls its own for a socket returned at once.
 */
export class PooledAgent extends HttpsAgent {
  opened = 0;
  /**
   * A connection silent this long is closed, failing the call on it. client-node 1.4.0 sets no deadline: a call
   * on a connection to an API server that died without a reset (power loss, a killed VM behind a load balancer)
   * waited for the kernel to give up, about 15 minutes, and the controller's pass with it. Watches do not use
   * this agent, and an idle pooled connection closed this way is simply opened again. Given as the agent's
   * `timeout`, which Node sets on each socket it creates and again whenever one goes back to the pool.
   */
  readonly silenceTimeoutMs: number;
  constructor(options: AgentOptions = {}, silenceTimeoutMs = SILENCE_TIMEOUT_MS) {
    super({ ...options, timeout: silenceTimeoutMs });
    this.silenceTimeoutMs = silenceTimeoutMs;
  }
  override createConnection(options: Parameters<HttpsAgent["createConnection"]>[0], onSocket?: OnSocket): Duplex | null | undefined {
    this.opened++;
    let pending = onSocket;
    const bound = (socket: Duplex) => {
      if (!(socket instanceof Socket)) return;
      socket.on("timeout", () => socket.destroy(new Error(`no answer from the API server for ${this.silenceTimeoutMs / 1000} s; connection closed`)));
    };
    const socket = super.createConnection(options, (err: Error | null, created: Duplex) => {
      const callback = pending;
      pending = undefined;
      if (created) bound(created);
      callback?.(err, created);
    });
    if (socket) { pending = undefined; bound(socket); }
    return socket;
  }
}

/**
 * client-node 1.4.0 builds a fresh https.Agent for every request, so each call pays a TLS handshake on both
 * ends (measured: ~4-5 ms client CPU per call instead of ~1, and about twice the apiserver CPU). This auth
 * method lets client-node apply credentials as usual, then swaps in one keep-alive agent, rebuilt only when
 * the TLS material changes (rotated client certificates). Proxy and plain-HTTP agents are left as they are.
 */
class PooledConnectionAuth implements SecurityAuthentication {
  private agent?: PooledAgent;
  private tlsKey = "";
  private retiredOpened = 0;
  constructor(private readonly kc: KubeConfig, private readonly silenceTimeoutMs?: number) {}

  get opened(): number { return this.retiredOpened + (this.agent?.opened ?? 0); }
  getName(): string { return "podnet-pooled-connections"; }

  async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await this.kc.applySecurityAuthentication(context);
    const fresh: unknown = context.getAgent();
    if (!(fresh instanceof HttpsAgent) || fresh.constructor !== HttpsAgent) return;
    const o = fresh.options as AgentOptions;
    const tlsKey = [o.ca, o.cert, o.key, o.pfx, o.passphrase, o.rejectUnauthorized, o.servername].map((v) => String(v)).join("\0");
    if (!this.agent || tlsKey !== this.tlsKey) {
      this.retiredOpened = this.opened;
      this.agent?.destroy();
      this.agent = new PooledAgent({ ...o, keepAlive: true, maxSockets: 32 }, this.silenceTimeoutMs);
      this.tlsKey = tlsKey;
    }
    context.setAgent(this.agent);
  }
}

export type FieldManager = "podnet-controller" | "podnet-agent" | "podnet-cli";

export class KubeApi {
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly apiext: ApiextensionsV1Api;
  readonly coordination: CoordinationV1Api;
  private readonly auth: PooledConnectionAuth;

  /** silenceTimeoutMs: see PooledAgent (tests shorten it). */
  constructor(readonly kc: KubeConfig, readonly fieldManager: FieldManager, opts: { silenceTimeoutMs?: number } = {}) {
    this.auth = new PooledConnectionAuth(kc, opts.silenceTimeoutMs);
    const server = kc.getCurrentCluster()?.server;
    if (!server) throw new Error("kubeconfig has no current cluster");
    const config = createConfiguration({ baseServer: new ServerConfiguration(server, {}), authMethods: { default: this.auth } });
    this.core = new CoreV1Api(config);
    this.custom = new CustomObjectsApi(config);
    this.apiext = new ApiextensionsV1Api(config);
    this.coordination = new CoordinationV1Api(config);
  }

  /** TLS connections opened to the API server so far (request/response calls; watches have their own). */
  get connectionsOpened(): number { return this.auth.opened; }

  static fromKubeconfig(path: string | undefined, fieldManager: FieldManager, opts: { silenceTimeoutMs?: number } = {}): KubeApi {
    return new KubeApi(loadKubeConfig(path), fieldManager, opts);
  }
}

type CallOptions = ConfigurationOptions<ObservableMiddleware>;

// client-node 1.4.0 defaults PATCH to json-patch; every patch here names its content type explicitly.
export const mergePatch = (opt?: CallOptions) => setHeaderOptions("Content-Type", PatchStrategy.MergePatch, opt);
export const applyPatch = (opt?: CallOptions) => setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply, opt);
export const strategicMergePatch = (opt?: CallOptions) => setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch, opt);

/** The abort reason of a call cut off because its component stops (not at a deadline): no failure to report. */
export const STOPPING = new DOMException("the component is stopping", "AbortError");
/** Whether the call given `signal` was cut off by a stop (see STOPPING). */
export const cutOffByStop = (signal: AbortSignal | undefined): boolean => signal?.aborted === true && signal.reason === STOPPING;

/**
 * Call options that end the request when `signal` aborts (client-node hands the request context's signal to
 * its fetch): a deadline of the caller's own, shorter than the connection-silence timeout, or a stop.
 */
export function withSignal(signal: AbortSignal | undefined, opt?: CallOptions): CallOptions | undefined {
  if (!signal) return opt;
  const middleware: ObservableMiddleware = {
    pre: (ctx) => { ctx.setSignal(signal); return new Observable(Promise.resolve(ctx)); },
    post: (res) => new Observable(Promise.resolve(res)),
  };
  return { ...opt, middleware: [...(opt?.middleware ?? []), middleware], middlewareMergeStrategy: "append" };
}

export { apiCauseFields, apiMessage, apiStatus, isAlreadyExists, isConflict, isNotFound, isThrottled, logLevelFor, retryAfterMs } from "./api-errors.js";

export const podnetResource = (plural: string) => ({ group: GROUP, version: VERSION, plural });

/**
 * Create or update CRDs (given as YAML documents) and wait until the API server serves them. The typed
 * client serialises through its own model, which silently drops keys it does not know under their wire
 * names (x-kubernetes-validations!), so the YAML goes through client-node's typed loader first.
 */
export async function installCrds(api: KubeApi, crdYamls: string[], timeoutMs = 30_000): Promise<void> {
  const crds = crdYamls.map((text) => loadYaml<V1CustomResourceDefinition>(text));
  for (const crd of crds) {
    const name = crd.metadata!.name!;
    try {
      await api.apiext.createCustomResourceDefinition({ body: crd, fieldManager: api.fieldManager });
    } catch (err) {
      if (!isAlreadyExists(err)) throw new Error(`CRD ${name}: ${apiMessage(err)}`, { cause: err });
      const current = await api.apiext.readCustomResourceDefinition({ name });
      await api.apiext.replaceCustomResourceDefinition({
        name, body: { ...crd, metadata: { ...crd.metadata, resourceVersion: current.metadata?.resourceVersion } },
        fieldManager: api.fieldManager,
      });
    }
  }
  const deadline = performance.now() + timeoutMs;
  for (const crd of crds) {
    const name = crd.metadata!.name!;
    for (;;) {
      const current = await api.apiext.readCustomResourceDefinition({ name });
      if (current.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) break;
      if (performance.now() > deadline) throw new Error(`CRD ${name} not Established after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // Established is not served yet: the first requests meet 429 "storage is (re)initializing" while the new
    // resource's watch cache fills, and a controller started at once would begin with failures.
    const { group, scope, names, versions } = crd.spec!;
    const version = versions.find((v) => v.storage)?.name ?? versions[0]!.name;
    if (scope !== "Cluster") continue;
    for (;;) {
      try {
        await api.custom.listClusterCustomObject({ group, version, plural: names.plural, limit: 1 });
        break;
      } catch (err) {
        if (apiStatus(err) !== 429 || performance.now() > deadline) throw new Error(`CRD ${name} not served: ${apiMessage(err)}`, { cause: err });
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}

/**
 * Run async work over items with at most `limit` in flight (API writes: parallel, but not a stampede). After a
 * failure no item starts, and the first error is thrown once the items in flight have ended: a caller's cleanup
 * (stopping the API server a bench wrote to) must not pull the ground from under writes still running, whose
 * own errors would then hide the first one.
 */
export async function forEachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      try { await work(items[next++]!); } catch (err) { failure ??= { err }; }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.err;
}

/**
 * Server-side apply of a podnet object's status under this client's field manager. With `resourceVersion` the write is conditional: it fails with
 * 409 when the object changed since that version (another writer's status, a release), rather than undo it.
 */
export async function applyStatus(api: KubeApi, plural: string, name: string, kind: string, status: object, resourceVersion?: string, signal?: AbortSignal): Promise<object> {
  const body = { apiVersion: `${GROUP}/${VERSION}`, kind, metadata: { name, ...(resourceVersion ? { resourceVersion } : {}) }, status };
  return api.custom.patchClusterCustomObjectStatus(
    { ...podnetResource(plural), name, body, fieldManager: api.fieldManager, force: true }, applyPatch(withSignal(signal)),
  ) as Promise<object>;
}
