import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { leasesOutside, readPodLeases } from "./pod-leases.js";
import { agentConditions, IPAM_DATA_DIR_KEPT, POD_ADDRESSES_OUTSIDE_CIDR, type SyncOutcome } from "./report.js";

const lease = (ip: string, container = `c-${ip}`) => ({ ip, read: () => container });

describe("leasesOutside", () => {
  it.each([
    { name: "every lease in the node's CIDR", leases: ["10.244.1.2", "10.244.1.3"], cidrs: ["10.244.1.0/24"], want: undefined },
    { name: "no leases", leases: [], cidrs: ["10.244.1.0/24"], want: undefined },
    { name: "a lease of the earlier range", leases: ["10.244.1.2", "10.244.7.9"], cidrs: ["10.244.1.0/24"], want: { count: 1, ips: ["10.244.7.9"] } },
    { name: "dual-stack: each family in its own CIDR", leases: ["10.244.1.2", "fd00:10:244:1::5"], cidrs: ["10.244.1.0/24", "fd00:10:244:1::/64"], want: undefined },
    { name: "an IPv6 lease outside", leases: ["fd00:10:244:9::5", "10.244.1.2"], cidrs: ["10.244.1.0/24", "fd00:10:244:1::/64"], want: { count: 1, ips: ["fd00:10:244:9::5"] } },
    { name: "an IPv4 lease on an IPv6-only node", leases: ["10.244.1.2"], cidrs: ["fd00:10:244:1::/64"], want: { count: 1, ips: ["10.244.1.2"] } },
    { name: "no CIDR parses: all outside", leases: ["10.244.1.2"], cidrs: ["bogus"], want: { count: 1, ips: ["10.244.1.2"] } },
    { name: "seven outside: five shown, in order", leases: ["10.9.0.7", "10.9.0.1", "10.9.0.6", "10.9.0.2", "10.9.0.5", "10.9.0.3", "10.9.0.4"], cidrs: ["10.244.1.0/24"],
      want: { count: 7, ips: ["10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5"] } },
  ])("$name", ({ leases, cidrs, want }) => {
    const got = leasesOutside(leases.map((ip) => lease(ip)), cidrs);
    expect(got && { count: got.count, ips: got.shown.map((l) => l.ip) }).toEqual(want);
    for (const l of got?.shown ?? []) expect(l.container).toBe(`c-${l.ip}`.slice(0, 12));
  });

  it("reads the container of the shown leases only", () => {
    let reads = 0;
    const leases = Array.from({ length: 50 }, (_, i) => ({ ip: `10.9.0.${i + 1}`, read: () => { reads++; return "abc"; } }));
    expect(leasesOutside(leases, ["10.244.1.0/24"])?.count).toBe(50);
    expect(reads).toBe(5);
  });
});

describe("readPodLeases", () => {
  const dirs: string[] = [];
  afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

  it("lists host-local's address files with their container (first line), not its lock or last-reserved files", () => {
    const dir = mkdtempSync(join(tmpdir(), "podnet-leases-"));
    dirs.push(dir);
    mkdirSync(join(dir, "podnet"));
    writeFileSync(join(dir, "podnet", "10.244.1.2"), "0123456789abcdef0123\r\neth0");
    writeFileSync(join(dir, "podnet", "fd00:10:244:1::2"), "feedbeef\neth0");
    writeFileSync(join(dir, "podnet", "lock"), "");
    writeFileSync(join(dir, "podnet", "last_reserved_ip.0"), "10.244.1.2");
    const leases = readPodLeases(dir, "podnet");
    expect(leases.map((l) => l.ip).sort()).toEqual(["10.244.1.2", "fd00:10:244:1::2"]);
    expect(Object.fromEntries(leases.map((l) => [l.ip, l.read()]))).toEqual({ "10.244.1.2": "0123456789abcdef0123", "fd00:10:244:1::2": "feedbeef" });
    expect(leasesOutside(leases, ["10.244.1.0/24"])?.shown).toEqual([{ ip: "fd00:10:244:1::2", container: "feedbeef" }]);
  });

  it("finds none where no pod ever started (no directory)", () => {
    expect(readPodLeases(join(tmpdir(), "podnet-no-such-dir"), "podnet")).toEqual([]);
  });
});

describe("CNIConfigured with pod addresses outside the node's CIDRs", () => {
  const outcome = (cni: Partial<SyncOutcome["cni"]>): SyncOutcome => ({
    routes: { desired: 0, installed: 0, overlay: 0, overlayChanges: 0, added: 0, replaced: 0, deleted: 0, conflicts: [], unreachable: [] },
    cni: { path: "/etc/cni/net.d/10-podnet.conflist", changed: false, shadowedBy: [], missingPlugins: [], ...cni },
    masquerade: { enabled: true }, sysctls: {}, rejected: [],
  });
  const conditions = (cni: Partial<SyncOutcome["cni"]>) => agentConditions(outcome(cni));
  const cniOf = (cni: Partial<SyncOutcome["cni"]>) => conditions(cni).find((c) => c.type === "CNIConfigured")!;

  it("stays True, Ready too (new pods get the right range), naming the addresses, their containers and what to do", () => {
    const one = cniOf({ leasesOutside: { count: 1, shown: [{ ip: "10.244.7.9", container: "0123456789ab" }] } });
    expect(one).toMatchObject({ status: "True", reason: POD_ADDRESSES_OUTSIDE_CIDR });
    expect(one.message).toContain("1 pod address leased on this node lies outside its pod CIDRs: 10.244.7.9 (container 0123456789ab).");
    expect(one.message).toContain("delete them");
    expect(conditions({ leasesOutside: { count: 1, shown: [{ ip: "10.244.7.9", container: "" }] } }).find((c) => c.type === "Ready")!.status).toBe("True");
    const many = cniOf({ leasesOutside: { count: 7, shown: [{ ip: "10.9.0.1", container: "" }, { ip: "10.9.0.2", container: "c2" }] } });
    expect(many.message).toContain("7 pod addresses leased on this node lie outside its pod CIDRs: 10.9.0.1, 10.9.0.2 (container c2) (+5 more).");
  });

  it("keeps the kept IPAM directory's note beside it, and says Written without either", () => {
    const both = cniOf({ leasesOutside: { count: 1, shown: [{ ip: "10.244.7.9", container: "c" }] }, ipamDataDirKept: { dataDir: "/a", configured: "/b" } });
    expect(both.reason).toBe(POD_ADDRESSES_OUTSIDE_CIDR);
    expect(both.message).toContain("host-local state stays in /a, not the configured /b");
    expect(cniOf({ ipamDataDirKept: { dataDir: "/a", configured: "/b" } }).reason).toBe(IPAM_DATA_DIR_KEPT);
    expect(cniOf({}).reason).toBe("Written");
  });
});
