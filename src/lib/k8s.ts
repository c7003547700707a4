import {
  ApiextensionsV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, loadYaml, setHeaderOptions,
  type V1CustomResourceDefinition,
} from "@kubernetes/client-node";
import { GROUP, VERSION } from "../crds/common.js";

/**
 * The one module that builds API clients. Everything that talks to the API server gets a KubeApi from here,
 * so credentials, content types and field managers are decided in one place.
 */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else if (process.env.KUBERNETES_SERVICE_HOST && !process.env.KUBECONFIG) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

export type FieldManager = "podnet-controller" | "podnet-agent" | "podnet-cli";

export class KubeApi {
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly apiext: ApiextensionsV1Api;
  readonly coordination: CoordinationV1Api;

  constructor(readonly kc: KubeConfig, readonly fieldManager: FieldManager) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.apiext = kc.makeApiClient(ApiextensionsV1Api);
    this.coordination = kc.makeApiClient(CoordinationV1Api);
  }

  static fromKubeconfig(path: string | undefined, fieldManager: FieldManager): KubeApi {
    return new KubeApi(loadKubeConfig(path), fieldManager);
  }
}

// client-node 1.4.0 defaults PATCH to json-patch; every patch here names its content type explicitly.
export const mergePatch = () => setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
export const applyPatch = () => setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply);

/** HTTP status of a failed API call (client-node throws ApiException with .code), or undefined. */
export function apiStatus(err: unknown): number | undefined {
  if (err && typeof err === "object" && "code" in err && typeof (err as { code: unknown }).code === "number") {
    return (err as { code: number }).code;
  }
  return undefined;
}

/** The server's explanation of a failed call (Status.message), for conditions and logs. */
export function apiMessage(err: unknown): string {
  if (err && typeof err === "object" && "body" in err) {
    const body = (err as { body: unknown }).body;
    try {
      const parsed = typeof body === "string" ? JSON.parse(body) : body;
      if (parsed && typeof parsed === "object" && "message" in parsed) return String((parsed as { message: unknown }).message);
    } catch {
      /* not JSON: fall through */
    }
  }
  return err instanceof Error ? err.message : String(err);
}

export const isNotFound = (err: unknown) => apiStatus(err) === 404;
export const isAlreadyExists = (err: unknown) => apiStatus(err) === 409;

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
  const deadline = Date.now() + timeoutMs;
  for (const crd of crds) {
    const name = crd.metadata!.name!;
    for (;;) {
      const current = await api.apiext.readCustomResourceDefinition({ name });
      if (current.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} not Established after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Run async work over items with at most `limit` in flight (API writes: parallel, but not a stampede). */
export async function forEachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Server-side apply of a podnet object's status under this client's field manager. */
export async function applyStatus(api: KubeApi, plural: string, name: string, kind: string, status: object): Promise<object> {
  const body = { apiVersion: `${GROUP}/${VERSION}`, kind, metadata: { name }, status };
  return api.custom.patchClusterCustomObjectStatus(
    { ...podnetResource(plural), name, body, fieldManager: api.fieldManager, force: true }, applyPatch(),
  ) as Promise<object>;
}
