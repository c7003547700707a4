import { describe, expect, it } from "vitest";
import type { ObservedNodeCidr } from "./desired-state.js";
import { desiredWithHeld, nftTableKeeping, RecordHold, withoutDeletions, withoutVxlanRemovals } from "./record-hold.js";

const rec = (nodeName: string, cidr: string, nodeIPs: string[], phase = "Allocated"): ObservedNodeCidr =>
  ({ name: cidr.replace(/[.:/]/g, "-"), nodeName, cidr, nodeIPs, phase });
const peer = rec("b", "10.244.2.0/24", ["192.168.1.2"]);
const none = () => false;
const ownRec = rec("a", "10.244.1.0/24", ["192.168.1.1"]);
/** This node's records: Allocated one, a retired one, or none (with or without podnet's conflist on disk). */
const live = { live: true, retired: false, conflistOnDisk: () => true };
const retired = { live: false, retired: true, conflistOnDisk: () => true };
const absent = (conflistOnDisk: boolean) => ({ live: false, retired: false, conflistOnDisk: () => conflistOnDisk });

describe("RecordHold", () => {
  it("holds nothing and removes freely while this node has its own record and nothing vanished", () => {
    const hold = new RecordHold("a", 5_000);
    expect(hold.decide({ own: live, present: none, now: 0 })).toEqual({ held: [], removalsHeld: false });
    expect(hold.wakeAt).toBeUndefined();
  });

  it("holds nothing for a node that never had a pod CIDR (new, or no pool gives it one): a restarted agent converges at once", () => {
    const hold = new RecordHold("a", 5_000);
    expect(hold.decide({ own: absent(false), present: none, now: 0 })).toEqual({ held: [], removalsHeld: false });
    expect(hold.decide({ own: live, present: none, now: 10 })).toEqual({ held: [], removalsHeld: false }); // its first record: no hold-down
  });

  it("does not hold a vanished peer record that was Released (the controller's departure)", () => {
    const hold = new RecordHold("a", 5_000);
    hold.vanished(rec("b", "10.244.2.0/24", ["192.168.1.2"], "Released"), 0);
    expect(hold.decide({ own: live, present: none, now: 1 }).held).toEqual([]);
  });

  it("plans a peer's vanished Allocated record as live for the hold-down, waking a pass when it ends", () => {
    const hold = new RecordHold("a", 5_000);
    hold.vanished(peer, 1_000);
    expect(hold.decide({ own: live, present: none, now: 1_010 })).toEqual({ held: [peer], removalsHeld: false });
    expect(hold.wakeAt).toBe(6_000);
    expect(hold.decide({ own: live, present: none, now: 5_999 }).held).toEqual([peer]);
    expect(hold.decide({ own: live, present: none, now: 6_000 }).held).toEqual([]);
    expect(hold.wakeAt).toBeUndefined();
  });

  it("drops the held record as soon as one of its name is back (restored by the controller)", () => {
    const hold = new RecordHold("a", 5_000);
    hold.vanished(peer, 0);
    expect(hold.decide({ own: live, present: (n) => n === peer.name, now: 10 }).held).toEqual([]);
    expect(hold.decide({ own: live, present: none, now: 20 }).held).toEqual([]); // gone again later: only a new vanish holds it
  });

  it("holds removals once this node's Allocated record vanished, with or without a conflist, saying so once", () => {
    const hold = new RecordHold("a", 5_000);
    hold.decide({ own: live, present: none, now: 0 });
    hold.vanished(ownRec, 10);
    expect(hold.decide({ own: absent(false), present: none, now: 20 })).toEqual({ held: [], removalsHeld: true, change: "own-record-gone" });
    expect(hold.decide({ own: absent(false), present: none, now: 60_000 })).toEqual({ held: [], removalsHeld: true });
    expect(hold.wakeAt).toBeUndefined(); // no time ends it: the record's return does
  });

  it("holds removals from the first pass when no record of this node is listed but its conflist is on disk (a restart after a reinstall)", () => {
    const hold = new RecordHold("a", 5_000);
    expect(hold.decide({ own: absent(true), present: none, now: 0 })).toEqual({ held: [], removalsHeld: true, change: "own-record-gone" });
  });

  it("holds nothing when this node's record was retired by the controller, also after it is deleted and the conflist stays", () => {
    const hold = new RecordHold("a", 5_000);
    hold.decide({ own: live, present: none, now: 0 });
    expect(hold.decide({ own: retired, present: none, now: 10 })).toEqual({ held: [], removalsHeld: false });
    hold.vanished(rec("a", "10.244.1.0/24", ["192.168.1.1"], "Released"), 20);
    expect(hold.decide({ own: absent(true), present: none, now: 30 })).toEqual({ held: [], removalsHeld: false });
  });

  it("keeps removals held for the hold-down after this node's record is back, then lets convergence remove what is stale", () => {
    const hold = new RecordHold("a", 5_000);
    hold.decide({ own: absent(true), present: none, now: 0 });
    expect(hold.decide({ own: live, present: none, now: 30_000 })).toEqual({ held: [], removalsHeld: true, change: "own-record-back" });
    expect(hold.wakeAt).toBe(35_000);
    expect(hold.decide({ own: live, present: none, now: 34_999 }).removalsHeld).toBe(true);
    expect(hold.decide({ own: live, present: none, now: 35_000 })).toEqual({ held: [], removalsHeld: false });
  });

  it("keeps peers that vanished with this node's record (a CRD deleted) until the hold-down after its return, not from their own vanishing", () => {
    const hold = new RecordHold("a", 5_000);
    hold.vanished(peer, 0);
    hold.vanished(ownRec, 0);
    hold.decide({ own: absent(true), present: none, now: 100 });
    expect(hold.decide({ own: absent(true), present: none, now: 40_000 }).held).toEqual([peer]);
    expect(hold.decide({ own: live, present: none, now: 45_000 }).held).toEqual([peer]);
    expect(hold.wakeAt).toBe(50_000);
    expect(hold.decide({ own: live, present: none, now: 50_000 })).toEqual({ held: [], removalsHeld: false });
  });

  it("forgets a held record on request (its range now another record's)", () => {
    const hold = new RecordHold("a", 5_000);
    hold.vanished(peer, 0);
    hold.forget([peer.name]);
    expect(hold.decide({ own: live, present: none, now: 1 }).held).toEqual([]);
  });
});

describe("desiredWithHeld", () => {
  const own = rec("a", "10.244.1.0/24", ["192.168.1.1"]);

  it("routes a held record as if it were live", () => {
    const { state, clashing } = desiredWithHeld([own], [peer], "a", []);
    expect(state.routes.map((r) => r.dst)).toEqual(["10.244.2.0/24"]);
    expect(clashing).toEqual([]);
  });

  it("leaves out a held record that overlaps a live one, which keeps its route, and names it", () => {
    const wider = rec("c", "10.244.2.0/23", ["192.168.1.3"]);
    const { state, clashing } = desiredWithHeld([own, wider], [peer], "a", []);
    expect(state.routes.map((r) => `${r.dst} ${r.nodeName}`)).toEqual(["10.244.2.0/23 c"]);
    expect(state.rejected).toEqual([]);
    expect(clashing).toEqual([peer.name]);
  });
});

describe("removals left out", () => {
  it("drops route deletions, keeps adds and replaces", () => {
    expect(withoutDeletions([{ kind: "add", dst: "10.244.3.0/24", via: "192.168.1.3" }, { kind: "delete", dst: "10.244.2.0/24" },
      { kind: "replace", dst: "10.244.4.0/24", via: "192.168.1.5" }]).map((a) => a.kind)).toEqual(["add", "replace"]);
  });

  it("drops podnet.vxlan's address, neighbour and fdb removals, keeps additions and a re-creation", () => {
    const plan = {
      ip: ["link del podnet.vxlan", "link add podnet.vxlan address 0e:50:c0:a8:01:01 type vxlan id 1 local 192.168.1.1 dstport 8472 nolearning",
        "addr replace 10.244.1.0/32 dev podnet.vxlan", "addr del 10.244.9.0/32 dev podnet.vxlan", "neigh replace 10.244.3.0 lladdr 0e:50:c0:a8:01:03 dev podnet.vxlan nud permanent"],
      bridge: ["fdb replace 0e:50:c0:a8:01:03 dev podnet.vxlan dst 192.168.1.3 self permanent"],
      after: { ip: ["neigh del 10.244.2.0 dev podnet.vxlan"], bridge: ["fdb del 0e:50:c0:a8:01:02 dev podnet.vxlan dst 192.168.1.2 self"] },
    };
    expect(withoutVxlanRemovals(plan)).toEqual({ ip: [plan.ip[0], plan.ip[1], plan.ip[2], plan.ip[4]], bridge: plan.bridge, after: { ip: [], bridge: [] } });
  });

  it("keeps the nft table's pod ranges, VXLAN senders, local address and tunnel MTU, adds what is new, takes configuration as it is now", () => {
    const before = { podCidrs: ["10.244.0.0/16"], masquerade: true, clampMssOut: "podnet.vxlan", tunnelMtu: 1450, vxlan: { port: 8472, senders: ["192.168.1.2", "192.168.1.3"], local: "192.168.1.1" } };
    const wanted = { podCidrs: ["10.8.0.0/16"], masquerade: false, clampMssOut: "podnet.vxlan", vxlan: { port: 4789, senders: ["192.168.1.4"] } };
    expect(nftTableKeeping(wanted, before)).toEqual({ podCidrs: ["10.8.0.0/16", "10.244.0.0/16"], masquerade: false, clampMssOut: "podnet.vxlan", tunnelMtu: 1450,
      vxlan: { port: 4789, senders: ["192.168.1.4", "192.168.1.2", "192.168.1.3"], local: "192.168.1.1" } });
    expect(nftTableKeeping({ podCidrs: [], masquerade: true }, before)).toEqual({ podCidrs: ["10.244.0.0/16"], masquerade: true }); // the overlay turned off: no VXLAN filter
  });
});
