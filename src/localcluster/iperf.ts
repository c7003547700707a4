import { execFileSync, spawn } from "node:child_process";

export interface IperfResult { gbps: number; /** The sender's MSS as the kernel set it for the connection. */ mss: number }

/**
 * One iperf3 run from `clientNs` to a one-shot server bound to `serverIp` in `serverNs`: `seconds` long, or
 * `bytes` sent. Bounded: the client times out, and the server exits after one test or is killed here.
 */
export function iperf(serverNs: string, serverIp: string, clientNs: string, length: { seconds: number } | { bytes: string } = { seconds: 3 }): IperfResult {
  const server = spawn("ip", ["netns", "exec", serverNs, "iperf3", "-s", "-1", "-B", serverIp], { stdio: "ignore" });
  try {
    execFileSync("sleep", ["0.5"]);
    const size = "seconds" in length ? ["-t", String(length.seconds)] : ["-n", length.bytes];
    const pin = process.env.PODNET_IPERF_AFFINITY ? ["-A", process.env.PODNET_IPERF_AFFINITY] : [];
    const out = execFileSync("ip", ["netns", "exec", clientNs, "iperf3", "-c", serverIp, ...size, ...pin, "-J"], { timeout: 20_000 }).toString();
    const parsed = JSON.parse(out) as { start: { tcp_mss_default: number }; end: { sum_received: { bits_per_second: number } } };
    return { gbps: parsed.end.sum_received.bits_per_second / 1e9, mss: parsed.start.tcp_mss_default };
  } finally {
    server.kill();
  }
}
