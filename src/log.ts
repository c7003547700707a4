import { pino, type Logger } from "pino";

export type { Logger };

/** pino JSON logger; object first: log.info({ node, cidr }, "allocated"). */
export function createLogger(component: string, level = process.env.PODNET_LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** For tests and tools that must stay quiet unless asked. */
export const silentLogger = (): Logger => pino({ level: "silent" });
