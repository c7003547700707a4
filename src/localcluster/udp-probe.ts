import { execFileSync, spawn } from "node:child_process";

/**
 * Which source address does a receiver see? A one-shot UDP listener inside one namespace and a sender in
 * another (both plain node scripts, bounded by timeouts) — proves "no NAT pod→pod" and "masquerade out".
 * The sender aims at the listener itself unless `sendTo` names another address (a hostPort on a node).
 */
export async function sourceSeenBy(receiverNs: string, listenIp: string, senderNs: string, port = 7777, sendTo = { ip: listenIp, port }): Promise<string> {
  const listener = spawn("ip", ["netns", "exec", receiverNs, process.execPath, "-e", `
    const s = require("node:dgram").createSocket(${JSON.stringify(listenIp.includes(":") ? "udp6" : "udp4")});
    setTimeout(() => process.exit(3), 5000);
    s.on("message", (_m, r) => { console.log(r.address); process.exit(0); });
    s.bind(${port}, ${JSON.stringify(listenIp)}, () => console.log("ready"));
  `], { stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  const ready = new Promise<void>((resolve) => listener.stdout.on("data", (d: Buffer) => {
    lines.push(...d.toString().split("\n").filter(Boolean));
    if (lines.includes("ready")) resolve();
  }));
  const exited = new Promise<number | null>((resolve) => listener.on("exit", resolve));
  await Promise.race([ready, exited]);
  for (let i = 0; i < 5 && listener.exitCode === null; i++) {
    execFileSync("ip", ["netns", "exec", senderNs, process.execPath, "-e", `
      const s = require("node:dgram").createSocket(${JSON.stringify(sendTo.ip.includes(":") ? "udp6" : "udp4")});
      s.send("hi", ${sendTo.port}, ${JSON.stringify(sendTo.ip)}, () => s.close());
    `], { timeout: 5_000 });
    await new Promise((r) => setTimeout(r, 200));
  }
  await exited;
  const seen = lines.find((l) => l !== "ready");
  if (!seen) throw new Error(`no datagram reached ${listenIp}:${port} in ${receiverNs} (sent to ${sendTo.ip}:${sendTo.port})`);
  return seen.replace(/^::ffff:/, "");
}

export function ping(fromNs: string, to: string): boolean {
  try {
    execFileSync("ip", ["netns", "exec", fromNs, "ping", "-c", "2", "-i", "0.2", "-W", "1", to], { stdio: "ignore", timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** A UDP echo server in `ns` (answers every datagram to its sender) until the returned stop is called. */
export async function udpEchoServer(ns: string, ip: string, port: number): Promise<{ stop(): void }> {
  const server = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", `
    const s = require("node:dgram").createSocket(${JSON.stringify(ip.includes(":") ? "udp6" : "udp4")});
    s.on("message", (m, r) => s.send(m, r.port, r.address));
    s.bind(${port}, ${JSON.stringify(ip)}, () => console.log("ready"));
    setTimeout(() => process.exit(0), 60000);
  `], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    server.stdout.on("data", (d: Buffer) => { if (d.toString().includes("ready")) resolve(); });
    server.on("exit", (code) => reject(new Error(`echo server in ${ns} exited ${code}`)));
  });
  return { stop: () => server.kill() };
}

/**
 * One request from `ns` to ip:port (a Service address, say); the source address of the answer, or undefined if
 * none came within 2 s. An unconnected socket, so an answer from an unexpected address is seen and named.
 */
export function udpRoundTrip(ns: string, ip: string, port: number): string | undefined {
  const out = execFileSync("ip", ["netns", "exec", ns, process.execPath, "-e", `
    const s = require("node:dgram").createSocket(${JSON.stringify(ip.includes(":") ? "udp6" : "udp4")});
    s.on("message", (_m, r) => { console.log(r.address); process.exit(0); });
    s.bind(0, () => { for (let i = 0; i < 4; i++) setTimeout(() => s.send("q", ${port}, ${JSON.stringify(ip)}), i * 400); });
    setTimeout(() => process.exit(0), 2000);
  `], { encoding: "utf8", timeout: 10_000 }).trim();
  return out || undefined;
}
