import { spawn, type ChildProcess } from "node:child_process";

/**
 * Pure: the device an `ip -o monitor link` line is about ("3: eth0@if7: <…>", "Deleted 5: veth1: …").
 * undefined for anything else.
 */
export function linkEventDevice(line: string): string | undefined {
  return /^(?:Deleted )?\d+: ([^:@\s]+)[@:]/.exec(line)?.[1];
}

export interface LinkWatch { stop(): void }

/**
 * Calls `onChange(device)` for every link event the kernel reports (carrier, state, flags, MTU, a device gone).
 *
 * Why: the kernel flushes nexthop objects, and every route through them, from a device that loses its carrier
 * (a switch reboot, a NIC reset), and does not bring them back with the carrier; classic routes only go
 * "linkdown". Without a watch, such routes stayed gone until the next full resync.
 *
 * One `ip monitor` per agent, started with it while it is still small (see tool-shell.ts on fork cost). It
 * ends with the agent: stop() kills it, a pod's processes end with its first one, and in a node namespace the
 * local cluster's teardown ends every process there.
 */
export function watchLinks(netns: string | undefined, onChange: (device: string) => void, restartMs = 5_000): LinkWatch {
  let child: ChildProcess | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const start = () => {
    child = spawn("ip", [...(netns ? ["-n", netns] : []), "-o", "monitor", "link"], { stdio: ["ignore", "pipe", "ignore"] });
    let partial = "";
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop()!;
      for (const line of lines) { const device = linkEventDevice(line); if (device) onChange(device); }
    });
    child.on("error", () => undefined); // no `ip`: RoutesProgrammed says so; the resync still repairs
    child.on("exit", () => { if (!stopped) timer = setTimeout(start, restartMs).unref(); });
  };
  start();
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      child?.kill();
    },
  };
}
