import { runOk } from "./exec.js";

/** Pure: the sysctls a node needs for the families it serves. */
export function neededSysctls(families: Array<4 | 6>): Record<string, string> {
  return {
    "net.ipv4.ip_forward": "1",
    ...(families.includes(6) ? { "net.ipv6.conf.all.forwarding": "1" } : {}),
  };
}

/** Set and read back; sysctls under net.* belong to the network namespace the tool runs in. */
export async function ensureSysctls(wanted: Record<string, string>, netns?: string): Promise<void> {
  for (const [key, value] of Object.entries(wanted)) {
    const current = (await runOk("sysctl", ["-n", key], { netns })).trim();
    if (current === value) continue;
    await runOk("sysctl", ["-w", `${key}=${value}`], { netns });
    const after = (await runOk("sysctl", ["-n", key], { netns })).trim();
    if (after !== value) throw new Error(`sysctl ${key} is ${after} after setting ${value}`);
  }
}
