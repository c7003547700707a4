import { createServer, connect, type Socket } from "node:net";

/**
 * A TCP relay on loopback in front of a real server, whose connections the test can cut: what a load
 * balancer's idle reset or a network blip does to a client's long-lived watch, with the server still up.
 */
export interface TcpProxy {
  port: number;
  /** Drop every open connection and refuse new ones (reset) until `resume`. */
  pause(): void;
  resume(): void;
  /** Connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const open = new Set<Socket>();
  let paused = false;
  let accepted = 0;
  const server = createServer((client) => {
    if (paused) { client.resetAndDestroy(); return; }
    accepted++;
    const upstream = connect(targetPort, "127.0.0.1");
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      open.add(a);
      a.on("close", () => { open.delete(a); b.destroy(); });
      a.on("error", () => b.destroy());
      a.pipe(b);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("proxy has no port");
  return {
    port: address.port,
    pause() { paused = true; for (const s of open) s.resetAndDestroy(); },
    resume() { paused = false; },
    get accepted() { return accepted; },
    close: () => new Promise<void>((resolve) => { for (const s of open) s.destroy(); server.close(() => resolve()); }),
  };
}
