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
