import { existsSync } from "node:fs";

/** util-linux's setpriv, in every Debian image; absent elsewhere, children are started as they are. */
const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));

/**
 * argv that has the kernel kill the child (SIGKILL) when the process that started it dies, however it dies:
 * nothing it started outlives a crash or a SIGKILL, where exit handlers never run.
 */
export const diesWithParent = (argv: string[]): string[] => (SETPRIV ? [SETPRIV, "--pdeathsig", "SIGKILL", "--", ...argv] : argv);
