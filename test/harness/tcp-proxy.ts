import { readFileSync, writeFileSync } from "node:fs";
import { createServer, connect, type Socket } from "node:net";
import { Transform } from "node:stream";
import type { ApiFixture } from "./api-fixture.js";

/**
 * A TCP relay on loopback in front of a real server, whose connections the test can cut: what a load
 * balancer's idle reset or a network blip does to a client's long-lived watch, with the server still up.
 */
export interface TcpProxy {
  port: number;
  /** Drop every open connection and refuse new ones (reset) until `resume`. */
  pause(): void;
  /** New connections are relayed again (after `pause` or `blackhole`); those a black hole silenced stay silent. */
  resume(): void;
  /** Stop relaying in both directions and leave every connection, old and new, open and silent: a black hole. */
  blackhole(): void;
  /**
   * Stop relaying on the connections open now and leave them open and silent; new ones are relayed: a watch
   * stuck behind a load balancer while the client's fresh requests get through.
   */
  stallOpen(): void;
  /**
   * Keep what clients send (every connection, new ones too) while the server's answers and watch events still
   * flow: an asymmetric partition, the requests a client sent waiting in the network.
   */
  holdRequests(): void;
  /** Deliver the requests held since `holdRequests`, in order, and relay again: the partition heals and TCP delivers late. Returns the bytes held. */
  deliverHeld(): number;
  /** Connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const open = new Set<Socket>();
  let paused = false;
  let silent = false;
  let accepted = 0;
  let holding = false;
  const gates = new Set<{ held: Buffer[]; gate: Transform }>();
  const server = createServer((client) => {
    if (paused) { client.resetAndDestroy(); return; }
    if (silent) { open.add(client); client.on("error", () => undefined); return; }
    accepted++;
    const upstream = connect(targetPort, "127.0.0.1");
    // Client to server through a gate that keeps the bytes while requests are held.
    const entry = { held: [] as Buffer[], gate: new Transform({ transform(chunk: Buffer, _enc, done) { if (holding) entry.held.push(chunk); else this.push(chunk); done(); } }) };
    gates.add(entry);
    entry.gate.pipe(upstream);
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      open.add(a);
      a.on("close", () => { open.delete(a); gates.delete(entry); b.destroy(); });
      a.on("error", () => b.destroy());
      a.pipe(a === client ? entry.gate : b);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("proxy has no port");
  return {
    port: address.port,
    pause() { paused = true; for (const s of open) s.resetAndDestroy(); },
    resume() { paused = false; silent = false; },
    blackhole() { silent = true; for (const s of open) { s.unpipe(); s.pause(); } },
    stallOpen() { for (const s of open) { s.unpipe(); s.pause(); } },
    holdRequests() { holding = true; },
    deliverHeld() {
      holding = false;
      let bytes = 0;
      for (const { held, gate } of gates) for (const chunk of held.splice(0)) { bytes += chunk.length; gate.push(chunk); }
      return bytes;
    },
    get accepted() { return accepted; },
    close: () => new Promise<void>((resolve) => { for (const s of open) s.destroy(); server.close(() => resolve()); }),
  };
}

/** A kubeconfig for the fixture's API server reached through a TCP proxy the test can cut, silence or stall. */
export async function proxiedKubeconfig(fx: ApiFixture, tag: string): Promise<{ proxy: TcpProxy; kubeconfig: string }> {
  const proxy = await startTcpProxy(Number(new URL(fx.cp.url).port));
  const kubeconfig = `${fx.cp.dir}/kubeconfig-proxied-${tag}`;
  writeFileSync(kubeconfig, readFileSync(fx.cp.kubeconfig, "utf8").replace(fx.cp.url, `https://127.0.0.1:${proxy.port}`));
  return { proxy, kubeconfig };
}
