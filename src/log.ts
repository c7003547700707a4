import { pino, type Logger } from "pino";
import { ConfigError } from "./config.js";

export type { Logger };

/** pino JSON logger; object first: log.info({ node, cidr }, "allocated"). */
export function createLogger(component: string, level = logLevelFrom(process.env)): Logger {
  return pino({ level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime });
}

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

/** PODNET_LOG_LEVEL; empty counts as unset (a chart value left blank), anything else unknown is refused by name. */
export function logLevelFrom(env: NodeJS.ProcessEnv): string {
  const level = env.PODNET_LOG_LEVEL?.trim().toLowerCase() || "info";
  if (!LEVELS.includes(level)) throw new ConfigError(`PODNET_LOG_LEVEL: must be one of ${LEVELS.join(", ")}, not "${env.PODNET_LOG_LEVEL}"`);
  return level;
}

/** For tests and tools that must stay quiet unless asked. */
export const silentLogger = (): Logger => pino({ level: "silent" });
