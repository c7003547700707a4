import { STATUS_CODES } from "node:http";
import { ApiException } from "@kubernetes/client-node";
import { GROUP } from "../crds/common.js";

// What a failed API call says: its HTTP status, the server's explanation, how long it asked us to wait.

/** HTTP status of a failed API call (client-node throws ApiException with .code), or undefined. */
export function apiStatus(err: unknown): number | undefined {
  if (err && typeof err === "object" && "code" in err && typeof (err as { code: unknown }).code === "number") {
    return (err as { code: number }).code;
  }
  return undefined;
}

/** The Status object a failed call's body carries (client-node's ApiException.body), if any. */
function statusBody(err: unknown): { message?: unknown; details?: { causes?: Array<{ field?: string }> } } | undefined {
  if (!err || typeof err !== "object" || !("body" in err)) return undefined;
  const body = (err as { body: unknown }).body;
  try {
    const parsed: unknown = typeof body === "string" ? JSON.parse(body) : body;
    return parsed && typeof parsed === "object" ? parsed : undefined;
  } catch {
    return undefined; // not JSON
  }
}

/** The server's explanation of a failed call (Status.message), for conditions and logs. */
export function apiMessage(err: unknown): string {
  // node-fetch's own words ("The user aborted a request.") name no cause: only a caller's signal aborts a call.
  if (err instanceof Error && err.name === "AbortError") return "request cut off: no answer within its deadline, or stopping";
  const status = statusBody(err);
  if (status && "message" in status) return withCrdHint(String(status.message));
  // Not a Status (API Priority and Fairness answers 429 in text/plain, a proxy in HTML): client-node's own message
  // dumps code, body and every header on four lines. Say what the server said, in one.
  if (err instanceof ApiException) {
    const retryAfter = retryAfterMs(err);
    // An object that is not there is a 404 Status; a bare "404 page not found" is a resource type the server does
    // not serve, and the only ones podnet uses that a cluster can lack are its own (the CRDs deleted or not yet applied).
    const hint = err.code === 404 ? " (the API server serves no such resource: are the podnet CRDs installed? apply charts/podnet/crds)" : "";
    return `HTTP ${err.code}: ${firstLine(err.body) || STATUS_CODES[err.code] || "no explanation"}${hint}${retryAfter === undefined ? "" : `; retry after ${retryAfter / 1000}s`}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** The first non-empty line of a body that is not a Status, kept short enough for a log line or a condition. */
function firstLine(body: unknown): string {
  const text = typeof body === "string" ? body : body === undefined || body === null ? "" : JSON.stringify(body);
  const line = text.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? "";
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/**
 * How long the server asked us to wait (Retry-After, in seconds as kube-apiserver sends it) with a 429 or a 503,
 * in ms; undefined for other answers or without the header. Backoffs wait at least this long: retrying sooner is
 * refused again and adds to the load that made the server refuse.
 */
export function retryAfterMs(err: unknown): number | undefined {
  const code = apiStatus(err);
  if ((code !== 429 && code !== 503) || !err || typeof err !== "object" || !("headers" in err)) return undefined;
  const headers = (err as { headers: unknown }).headers;
  if (!headers || typeof headers !== "object") return undefined;
  const value = Object.entries(headers).find(([name]) => name.toLowerCase() === "retry-after")?.[1];
  const seconds = typeof value === "string" && /^\s*\d+\s*$/.test(value) ? Number(value) : undefined;
  return seconds === undefined ? undefined : seconds * 1_000;
}

/** 429: the server sheds load (API Priority and Fairness) and the call is retried; not a fault of ours. */
export const isThrottled = (err: unknown) => apiStatus(err) === 429;
/** Log level for a failed call that will be retried: a throttled one is expected under load, warn rather than error. */
export const logLevelFor = (err: unknown): "warn" | "error" => (isThrottled(err) ? "warn" : "error");

/**
 * Server-side apply refuses a field the installed CRD does not declare, whatever fieldValidation says. Meeting
 * it, podnet is newer than the CRDs on the cluster (`helm upgrade` never updates a chart's CRDs): say what to do.
 */
function withCrdHint(message: string): string {
  return /field not declared in schema/.test(message) && message.includes(GROUP)
    ? `${message} (the podnet CRDs on this cluster are older than this podnet: apply charts/podnet/crds, as README's Upgrade says; helm upgrade does not update CRDs)`
    : message;
}

/** The fields a refused write names in Status.details.causes (a 422's reasons), for telling refusals apart. */
export function apiCauseFields(err: unknown): string[] {
  return (statusBody(err)?.details?.causes ?? []).flatMap((c) => (c.field ? [c.field] : []));
}

export const isNotFound = (err: unknown) => apiStatus(err) === 404;
export const isAlreadyExists = (err: unknown) => apiStatus(err) === 409;
/** 409 from an update or delete: a precondition (uid, resourceVersion) no longer holds. */
export const isConflict = isAlreadyExists;
