import * as http from "node:http";
import { KubeConfig } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../log.js";
import { Informer, isNewerVersion } from "./informer.js";
import { KubeApi } from "./k8s.js";

/** A NodeCIDR informer against a local HTTP server (listening once this returns), not yet started. */
async function informerAgainst(server: http.Server): Promise<Informer<never>> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const kc = new KubeConfig();
  kc.loadFromOptions({ clusters: [{ name: "c", server: `http://127.0.0.1:${(server.address() as { port: number }).port}`, skipTLSVerify: true }],
    users: [{ name: "u" }], contexts: [{ name: "x", cluster: "c", user: "u" }], currentContext: "x" });
  const api = new KubeApi(kc, "podnet-cli");
  return new Informer({ api, path: "/apis/podnet.io/v1alpha1/nodecidrs", log: silentLogger(), onEvent: () => {},
    list: async () => (await api.custom.listClusterCustomObject({ group: "podnet.io", version: "v1alpha1", plural: "nodecidrs" })) as never });
}

describe("isNewerVersion", () => {
  it.each([
    ["101", "100", true],
    ["100", "101", false],
    ["100", "100", false],
    ["1000", "999", true], // numeric, not lexical: "1000" < "999" as strings
    ["18446744073709551616", "18446744073709551615", true], // beyond 64 bits
    [undefined, "5", false],
    ["5", undefined, false],
    ["abc", "5", false], // not comparable: never treated as newer
  ])("%s newer than %s → %s", (a, b, expected) => {
    expect(isNewerVersion(a, b)).toBe(expected);
  });
});

// The fake here: a server answering the first list with API Priority and Fairness' text/plain 429 and Retry-After: 1.
// Real 429s come only from a burst at the right moment (test/rung2/api-throttling.test.ts), not on cue for one list.
describe("Informer against a server that throttles its list", () => {
  it("lists again no sooner than the server's Retry-After (its own backoff starts at 100-200 ms)", async () => {
    const lists: number[] = [];
    const server = http.createServer((req, res) => {
      if (req.url?.includes("watch=true")) { res.writeHead(200, { "content-type": "application/json" }); return; } // a watch left open
      lists.push(performance.now());
      if (lists.length === 1) { res.writeHead(429, { "content-type": "text/plain; charset=utf-8", "retry-after": "1" }); res.end("Too many requests, please try again later.\n"); return; }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ items: [], metadata: { resourceVersion: "1" } }));
    });
    const inf = await informerAgainst(server);
    inf.start();
    try {
      await inf.synced;
    } finally {
      inf.stop();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    expect(lists).toHaveLength(2);
    expect(lists[1]! - lists[0]!).toBeGreaterThanOrEqual(990);
  });
});

// The one fake here: a server that accepts every watch and ends it at once, cleanly, with no event (a
// misbehaving proxy in front of the API server). A healthy kube-apiserver does not do this on demand.
describe("Informer against a server that ends every watch at once", () => {
  it("waits between such watches (growing backoff) instead of asking again in a tight loop", async () => {
    let watches = 0;
    const server = http.createServer((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      if (req.url?.includes("watch=true")) watches++;
      res.end(req.url?.includes("watch=true") ? "" : JSON.stringify({ items: [], metadata: { resourceVersion: "1" } }));
    });
    const inf = await informerAgainst(server);
    inf.start();
    try {
      await inf.synced;
      await new Promise((r) => setTimeout(r, 2_000));
    } finally {
      inf.stop();
      await new Promise((r) => server.close(r));
    }
    // Backoff from 200 ms doubling (jittered down to half): at most about six watches in two seconds.
    expect(watches).toBeGreaterThan(1);
    expect(watches).toBeLessThan(10);
  });
});
