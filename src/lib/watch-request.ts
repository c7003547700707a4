import { request as httpRequest, type Agent, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { createInterface } from "node:readline";
import { ApiException, type KubeConfig } from "@kubernetes/client-node";

export type WatchQuery = Record<string, string | number | boolean | undefined>;

/** A refused watch's body is a Status or a line of text; more than this is not read. */
const MAX_ERROR_BODY = 64 * 1024;

/**
 * One watch request, made here rather than through client-node's Watch: that one (1.4.0) hands back its
 * AbortController only once the server has sent headers, and sets no deadline of its own, so a watch to a server
 * that accepted the connection and then said nothing could not be cut off: its socket stayed open for good, one
 * more for every stall the watchdog saw. Here `signal` ends the request at any stage, before headers too, and
 * closes its socket. Credentials and TLS material come from the kubeconfig as for every other call.
 *
 * Resolves when the server ends the watch or `signal` aborts; rejects on an answer other than 200 (an
 * ApiException with the body and headers, as other calls fail: a 410, a 429 with Retry-After) or a broken connection.
 */
export async function streamWatch<O>(kc: KubeConfig, path: string, query: WatchQuery, signal: AbortSignal,
  onEvent: (type: string, object: O) => void): Promise<void> {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error("kubeconfig has no current cluster");
  const url = new URL(server + path);
  url.searchParams.set("watch", "true");
  for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, String(value));
  const init = await kc.applyToFetchOptions({});
  if (signal.aborted) return;
  const agent = (typeof init.agent === "function" ? init.agent(url) : init.agent) as Agent | undefined;
  const headers = Object.fromEntries(init.headers as Iterable<[string, string]>);
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise<void>((resolve, reject) => {
    const failed = (err: unknown) => (signal.aborted ? resolve() : reject(err));
    const req = send(url, { method: "GET", agent, headers, signal }, (res) => {
      res.on("error", failed);
      if (res.statusCode !== 200) { refusal(res).then(reject, failed); return; }
      const lines = createInterface({ input: res, crlfDelay: Infinity });
      lines.on("line", (line) => {
        let event: { type?: unknown; object?: O };
        try { event = JSON.parse(line) as typeof event; } catch { return; } // a torn line at a cut-off: the watch ends next
        if (typeof event.type === "string") onEvent(event.type, event.object as O);
      });
      lines.on("error", failed); // readline passes on the response's errors (a reset), and throws them unheard
      lines.on("close", () => resolve());
    });
    req.on("error", failed);
    // Keep-alive probes as client-node sets them: a peer gone without a reset is noticed by the kernel too.
    req.on("socket", (socket) => socket.setKeepAlive(true, 30_000));
    req.end();
  });
}

/** The ApiException a refused watch becomes: its status, body (parsed when JSON) and headers. */
async function refusal(res: IncomingMessage): Promise<ApiException<unknown>> {
  let text = "";
  for await (const chunk of res) {
    text += String(chunk);
    if (text.length > MAX_ERROR_BODY) { res.destroy(); break; }
  }
  let body: unknown = text;
  try { body = JSON.parse(text); } catch { /* text/plain (a 429 from API Priority and Fairness) stays text */ }
  return new ApiException(res.statusCode ?? 0, "watch refused", body, flatHeaders(res.headers));
}

const flatHeaders = (headers: IncomingHttpHeaders): Record<string, string> =>
  Object.fromEntries(Object.entries(headers).flatMap(([name, value]) => (value === undefined ? [] : [[name, Array.isArray(value) ? value.join(", ") : value]])));
