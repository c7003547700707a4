import { parseCidr } from "../lib/cidr.js";
import type { Logger } from "../log.js";
import { MissingToolError } from "./exec.js";
import { findForeignForwardDrops, type ForeignForwardDrop } from "./foreign-forward.js";
import { iptablesLegacy } from "./forward-accept-legacy.js";
import { acceptedRanges, dropsByDefault, FirewallBusyError, iptablesNft, planForwardAccepts, type FirewallBackend } from "./forward-accept.js";

// Both, on every pass: a host may keep Docker's rules in one and kube-proxy's in the other, and a packet must
// pass the FORWARD hook of each.
const backends: FirewallBackend[] = [iptablesNft, iptablesLegacy];

/** dropping: families whose FORWARD chain drops by default somewhere (podnet's accepts are in place there); foreign: other tables' judged chains. */
export interface ForwardAcceptResult { dropping: Array<4 | 6>; foreign: ForeignForwardDrop[] }

/**
 * Shell: make each family's FORWARD chain, in each firewall the host uses, accept the pod network while it
 * drops by default (its policy, or a final rule), then judge other tables' chains on the hook. Every firewall is
 * tried; the first failure is thrown after the rest. A host without nft skips what needs it: MasqueradeReady
 * already names the missing tool. `keepAccepted`: ranges accepted before stay accepted (removals held, record-hold.ts).
 */
export async function syncForwardAccepts(podNetwork: string[], opts: { netns?: string; dryRun: boolean; log: Logger; keepAccepted?: boolean }): Promise<ForwardAcceptResult> {
  const dropping = new Set<4 | 6>();
  let failure: unknown;
  for (const backend of backends) {
    for (const family of [4, 6] as const) {
      try {
        const chain = await backend.read(family, opts.netns);
        if (!chain) continue;
        const ranges = (opts.keepAccepted ? acceptedRanges(chain, podNetwork) : podNetwork).filter((c) => parseCidr(c).family === family);
        if (dropsByDefault(chain) && ranges.length) dropping.add(family);
        const plan = planForwardAccepts(chain, ranges);
        if (!plan.add.length && !plan.deleteHandles.length) continue;
        if (opts.dryRun) { opts.log.info({ firewall: backend.name, family, plan }, "dry-run: would change the host firewall's FORWARD chain"); continue; }
        await backend.apply(family, chain, plan, opts.netns);
        opts.log.info({ firewall: backend.name, family, accepted: plan.add.map((r) => `${r.direction} ${r.cidr}`), removed: plan.deleteHandles.length },
          "the host firewall's FORWARD chain drops by default: pod network accepted in it");
      } catch (err) {
        if (err instanceof MissingToolError && backend === iptablesNft) break;
        failure = firstRealFailure(failure, err);
      }
    }
  }
  const foreign = await findForeignForwardDrops(podNetwork, opts.netns).catch((err: unknown) => {
    if (!(err instanceof MissingToolError)) failure = firstRealFailure(failure, err);
    return [];
  });
  if (failure !== undefined) throw failure;
  return { dropping: [...dropping].sort(), foreign };
}

/** The first failure, unless it is only a held lock and a real one came after: that one says more. */
const firstRealFailure = (first: unknown, next: unknown): unknown =>
  first === undefined || (first instanceof FirewallBusyError && !(next instanceof FirewallBusyError)) ? next : first;

/** `podnet agent cleanup`: podnet's rules out of every FORWARD chain, nothing else. */
export async function removeForwardAccepts(netns?: string): Promise<void> {
  let failure: unknown;
  for (const backend of backends) {
    for (const family of [4, 6] as const) {
      try {
        const chain = await backend.read(family, netns);
        if (!chain) continue;
        const plan = planForwardAccepts({ ...chain, policy: "accept" }, []);
        if (plan.deleteHandles.length) await backend.apply(family, chain, plan, netns);
      } catch (err) {
        failure = firstRealFailure(failure, err);
      }
    }
  }
  if (failure !== undefined) throw failure;
}
