import type { SyncOutcome } from "./report.js";
import type { SyncInput } from "./sync.js";
import { MissingToolError, run } from "./exec.js";
import { VXLAN_DEVICE, vxlanSenders } from "./overlay-plan.js";
import { nftTableKeeping } from "./record-hold.js";
import {
  applyNftTable, listNftTable, listNftTableCounted, type NftTableInput, removeNftTable, renderNftTable, senderChanges, splitSenderElements, wantsNftTable,
} from "./masquerade.js";

/**
 * Per namespace: what podnet last applied: the table apart from the VXLAN senders (`frame`), the senders, and
 * the table as listed right after, without the senders' elements (see splitSenderElements).
 */
const appliedNftTable = new Map<string, { frame: string; senders: string[]; listing?: string }>();

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * The overlay's MSS clamp is needed where pods keep the link's MTU but some peers are reached through VXLAN;
 * the VXLAN sender filter wherever podnet.vxlan may exist.
 */
export const nftTableInput = (input: SyncInput, tunnelMtu?: number): NftTableInput => ({
  podCidrs: input.state.podNetwork, keepSourceTo: input.config["no-masquerade-cidrs"], masquerade: input.config.masquerade,
  ...(input.config.overlay === "auto" ? { clampMssOut: VXLAN_DEVICE, ...(tunnelMtu && !noFib.has(input.netns ?? "") ? { tunnelMtu } : {}) } : {}),
  ...(input.config.overlay === "none" ? {} : { vxlan: { port: input.config["vxlan-port"], senders: vxlanSenders(input.state.routes), ...(input.nodeIP ? { local: input.nodeIP } : {}) } }),
});

/**
 * The nft step of a pass: podnet's table in place (or removed when nothing needs it), into `outcome`.
 * `tunnelMtu`: podnet.vxlan's, when known.
 */
export async function syncNft(input: SyncInput, outcome: SyncOutcome, tunnelMtu?: number): Promise<void> {
  const ns = input.netns ?? "";
  const before = plannedNftTable.get(ns);
  // Removals held (record-hold.ts), and nothing planned yet to add to (a restart): the kernel's table stays as it is.
  if (input.removalsHeld && !before && await tableInKernel(input)) { outcome.masquerade.skipped = true; return; }
  if (tunnelMtu !== undefined) await recheckFib(input).catch(() => undefined);
  const wanted = nftTableInput(input, tunnelMtu);
  const table = input.removalsHeld && before ? nftTableKeeping(wanted, before) : wanted;
  plannedNftTable.set(ns, table);
  if (wantsNftTable(table)) {
    try {
      if (!(await syncNftTableOrWithoutFib(input, table, outcome))) outcome.masquerade.skipped = true;
    } catch (err) {
      if (table.masquerade || !(err instanceof MissingToolError)) outcome.masquerade.error = message(err);
      else overlayWithoutNft(input, table);
    }
  } else if (input.full) {
    try { await removeLeftoverNftTable(input); } catch (err) { outcome.masquerade.error = message(err); }
  }
}

/**
 * Per namespace: the table input the last pass planned. While removals are held (record-hold.ts) a pass plans
 * this plus what it wants: the pod network, VXLAN senders and local address came from records that may be back in
 * a moment, and a table rewritten from what is left would drop the overlay's traffic.
 */
const plannedNftTable = new Map<string, NftTableInput>();

/** Whether podnet's table is in the kernel (from an earlier run); a node that has none yet gets one. */
const tableInKernel = async (input: SyncInput): Promise<boolean> => (await listNftTable(input.netns).catch(() => undefined)) !== undefined;

/**
 * Namespaces whose kernel refuses nft's `fib` expression, which the MSS clamp for senders routed back through the
 * tunnel needs (a kernel built without nft_fib, or module loading disabled). Their table goes on without that
 * rule, not without masquerade and the VXLAN filter; such a connection finds the tunnel's MTU by path MTU
 * discovery. Only a probe of `fib` alone puts a namespace here (another failure of the apply is no reason to
 * drop the rule), and each full pass probes again: a module loaded since brings the rule back.
 */
const noFib = new Set<string>();
const FIB_PROBE = "table inet podnet_fib_probe {\n  chain c {\n    type filter hook forward priority 0; policy accept;\n"
  + "    meta nfproto ipv4 fib saddr oifname \"lo\" accept\n  }\n}\n";
const kernelTakesFib = async (netns?: string) => (await run("nft", ["-c", "-f", "-"], { netns, input: FIB_PROBE })).code === 0;

async function syncNftTableOrWithoutFib(input: SyncInput, table: NftTableInput, outcome: SyncOutcome): Promise<boolean> {
  const ns = input.netns ?? "";
  try {
    return await syncNftTable(input, table, outcome);
  } catch (err) {
    if (table.tunnelMtu === undefined || err instanceof MissingToolError || await kernelTakesFib(input.netns)) throw err;
    const { tunnelMtu: _dropped, ...withoutFib } = table;
    const result = await syncNftTable(input, withoutFib, outcome);
    noFib.add(ns);
    input.log.warn({ node: input.config["node-name"], err: message(err) }, "the kernel refuses nft's fib expression, which podnet's MSS clamp for connections whose "
      + "route back goes through the tunnel needs (nft_fib): the table is applied without that rule; such connections find the tunnel's MTU by path MTU discovery");
    return result;
  }
}

/** On a full pass: whether a namespace whose kernel refused `fib` takes it now (nft_fib loaded since). */
async function recheckFib(input: SyncInput): Promise<void> {
  const ns = input.netns ?? "";
  if (!input.full || !noFib.has(ns) || !(await kernelTakesFib(input.netns))) return;
  noFib.delete(ns);
  input.log.info({ node: input.config["node-name"] }, "the kernel takes nft's fib expression now: the MSS clamp for connections routed back through the tunnel is applied again");
}

const frameOf = (table: NftTableInput) => renderNftTable(table.vxlan ? { ...table, vxlan: { ...table.vxlan, senders: [] } } : table);

/**
 * Masquerade off and no nft on the host: the table would only clamp the overlay's MSS (TCP still finds the
 * tunnel's MTU through path MTU discovery, answered by this node itself) and filter VXLAN senders. Said on
 * full passes; event passes do not retry.
 */
function overlayWithoutNft(input: SyncInput, table: NftTableInput): void {
  const ns = input.netns ?? "";
  if (input.full || !appliedNftTable.has(ns)) {
    input.log.warn({ node: input.config["node-name"] }, "nft is missing: TCP into the overlay is not MSS-clamped (it relies on path MTU discovery), and VXLAN is taken from any sender, not only from nodes");
  }
  appliedNftTable.set(ns, { frame: frameOf(table), senders: table.vxlan?.senders ?? [] });
}

/**
 * Apply the nft table when the pod network changed; on a full pass also when the kernel's table no longer
 * matches what podnet applied (edited or deleted by hand). A node joining or leaving changes only the VXLAN
 * senders: those elements alone are added or deleted, on a full pass against what the kernel holds. Whether it
 * looked at the table at all; a full pass also reports what the VXLAN filter dropped.
 */
async function syncNftTable(input: SyncInput, table: NftTableInput, outcome: SyncOutcome): Promise<boolean> {
  const ns = input.netns ?? "";
  const frame = frameOf(table);
  const senders = table.vxlan?.senders ?? [];
  const applied = appliedNftTable.get(ns);
  const sameFrame = applied?.frame === frame;
  let changes = applied && sameFrame ? senderChanges(applied.senders, senders) : undefined;
  if (sameFrame && !changes && !input.full) return false;
  if (input.config["dry-run"]) {
    input.log.info({ ruleset: changes ?? renderNftTable(table) }, "dry-run: would apply nft table inet podnet");
    return true;
  }
  if (sameFrame && applied.listing !== undefined) {
    // A missing table is always rewritten, even if it was already gone when podnet listed its own apply.
    const current = input.full ? await listNftTableCounted(input.netns) : undefined;
    const seen = current && splitSenderElements(current.listing);
    if (current && table.vxlan) outcome.masquerade.vxlanDrops = current.vxlanDrops;
    if (input.full) changes = seen?.frame === applied.listing ? senderChanges(seen.senders, senders) ?? "" : undefined;
    // Fails on a table edited by hand (an element already gone): then the whole table is written below.
    if (changes === "" || (changes !== undefined && await applyNftTable(changes, input.netns).then(() => true, () => false))) {
      appliedNftTable.set(ns, { ...applied, senders });
      return true;
    }
  }
  await applyNftTable(renderNftTable(table), input.netns);
  const listed = await listNftTable(input.netns);
  appliedNftTable.set(ns, { frame, senders, ...(listed === undefined ? {} : { listing: splitSenderElements(listed).frame }) });
  return true;
}

/**
 * Masquerade turned off after it was on, and no overlay: the table an earlier run left would go on NATing pod
 * traffic.
 */
async function removeLeftoverNftTable(input: SyncInput): Promise<void> {
  appliedNftTable.delete(input.netns ?? "");
  // No nft on the host: then there is no table either, and masquerade off needs none.
  const listing = await listNftTable(input.netns).catch((err: unknown) => { if (err instanceof MissingToolError) return undefined; throw err; });
  if (listing === undefined) return;
  if (input.config["dry-run"]) { input.log.info("dry-run: would remove nft table inet podnet (masquerade and the overlay are off)"); return; }
  await removeNftTable(input.netns);
  input.log.info({ node: input.config["node-name"] }, "masquerade and the overlay are off: nft table inet podnet from an earlier run removed");
}
