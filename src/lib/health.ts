import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";

export interface HealthChecks {
  /**
   * The process runs, and where the component can tell, its loop is not wedged: the agent's pass loop (see
   * PassLiveness). The controller's passes wait on the API server, so a stuck one cannot be told from an outage.
   */
  healthy: () => boolean;
  /** Caches synced and the component can do its job (a follower controller is ready too). */
  ready: () => boolean;
}

/** /metrics, /healthz and /readyz on one port. */
export function startHealthServer(address: string, registry: Registry, checks: HealthChecks): Promise<Server> {
  const [host, port] = splitHostPort(address);
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/metrics") {
      registry.metrics().then((text) => {
        res.writeHead(200, { "Content-Type": registry.contentType });
        res.end(text);
      }, (err: unknown) => { res.writeHead(500); res.end(String(err)); });
      return;
    }
    const check = path === "/healthz" ? checks.healthy : path === "/readyz" ? checks.ready : undefined;
    if (!check) { res.writeHead(404); res.end("not found\n"); return; }
    const ok = check();
    res.writeHead(ok ? 200 : 503, { "Content-Type": "text/plain" });
    res.end(ok ? "ok\n" : "not ready\n");
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    // No host: Node listens on :: where the node has IPv6 (dual-stack, so IPv4 scrapers reach it too) and
    // on 0.0.0.0 where it has not. A fixed 0.0.0.0 left IPv6-only clusters unable to scrape or probe.
    if (host === undefined) server.listen(port, () => resolve(server));
    else server.listen(port, host, () => resolve(server));
  });
}

/** "host:port", "[v6]:port" or ":port" (every address of the node's families: host undefined). */
export function splitHostPort(address: string): [string | undefined, number] {
  const i = address.lastIndexOf(":");
  const host = address.slice(0, i).replace(/^\[|\]$/g, "") || undefined;
  const port = Number(address.slice(i + 1));
  if (i < 0 || !/^\d+$/.test(address.slice(i + 1)) || port > 65535) throw new Error(`invalid listen address "${address}" (want host:port, [v6]:port or :port)`);
  return [host, port];
}
