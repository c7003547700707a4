import { existsSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { splitHostPort, startHealthServer } from "./health.js";

describe("listen address", () => {
  it.each([
    ["0.0.0.0:9090", ["0.0.0.0", 9090]],
    ["127.0.0.1:0", ["127.0.0.1", 0]],
    ["[::1]:9091", ["::1", 9091]],
    [":9091", [undefined, 9091]],
  ] as const)("%s", (address, expected) => expect(splitHostPort(address)).toEqual(expected));

  it.each(["9091", "host:", "host:99999", "host:port"])("%s is refused with the address named", (address) => {
    expect(() => splitHostPort(address)).toThrow(`invalid listen address "${address}"`);
  });

  // The defaults (":9090", ":9091") must reach scrapers of both families: IPv6-only clusters scrape over IPv6.
  it.runIf(existsSync("/proc/net/if_inet6"))("a port without a host answers on IPv4 and IPv6 loopback", async () => {
    const server = await startHealthServer(":0", new Registry(), { healthy: () => true, ready: () => true });
    try {
      const { port } = server.address() as AddressInfo;
      for (const host of ["127.0.0.1", "[::1]"]) {
        const res = await fetch(`http://${host}:${port}/healthz`, { signal: AbortSignal.timeout(5_000) });
        expect(res.status, host).toBe(200);
      }
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
