import { describe, expect, it } from "vitest";
import { overlayAddresses, planVxlan, type VxlanDesired, type VxlanObserved, vxlanClash } from "./vxlan-plan.js";

const peer = { nodeName: "far", underlayIp: "192.168.9.3", mac: "0e:50:c0:a8:09:03", gateways: [{ dst: "10.244.3.0/24", gw: "10.244.3.0" }] };
const desired: VxlanDesired = { vni: 1, port: 8472, local: "192.168.1.1", mtu: 1450, addresses: ["10.244.1.0/32"], peers: [peer] };
const device = { kind: "vxlan", vni: 1, port: 8472, local: "192.168.1.1", mac: "0e:50:c0:a8:01:01", mtu: 1450, up: true, addresses: ["10.244.1.0/32"] };
const converged: VxlanObserved = { device, fdb: [{ mac: peer.mac, dst: "192.168.9.3" }], neighbors: [{ ip: "10.244.3.0", mac: peer.mac }] };

describe("planVxlan", () => {
  it("creates the device with its derived MAC, address, neighbour and fdb entry when there is none", () => {
    expect(planVxlan(desired, { fdb: [], neighbors: [] })).toEqual({
      ip: [
        "link add podnet.vxlan address 0e:50:c0:a8:01:01 type vxlan id 1 local 192.168.1.1 dstport 8472 nolearning",
        "link set dev podnet.vxlan mtu 1450 up",
        "addr replace 10.244.1.0/32 dev podnet.vxlan",
        "neigh replace 10.244.3.0 lladdr 0e:50:c0:a8:09:03 dev podnet.vxlan nud permanent",
      ],
      bridge: ["fdb replace 0e:50:c0:a8:09:03 dev podnet.vxlan dst 192.168.9.3 self permanent"],
      after: { ip: [], bridge: [] },
    });
  });

  it("changes nothing when the kernel already matches", () => {
    expect(planVxlan(desired, converged)).toEqual({ ip: [], bridge: [], after: { ip: [], bridge: [] } });
  });

  it.each([
    ["another VNI", { ...device, vni: 7 }],
    ["another local address", { ...device, local: "192.168.1.99" }],
    ["a foreign device of the same name", { ...device, kind: "dummy" }],
  ])("recreates the device over %s", (_what, dev) => {
    const plan = planVxlan(desired, { ...converged, device: dev });
    expect(plan.ip.slice(0, 2)).toEqual(["link del podnet.vxlan", expect.stringContaining("link add podnet.vxlan")]);
    expect(plan.bridge).toHaveLength(1); // entries are re-added to the fresh device
  });

  it("fixes a changed peer address at once, and leaves removing the entries of nodes that left to after the route batch", () => {
    const plan = planVxlan({ ...desired, peers: [{ ...peer, underlayIp: "192.168.9.4" }] }, {
      ...converged, fdb: [...converged.fdb, { mac: "0e:50:c0:a8:09:07", dst: "192.168.9.7" }], neighbors: [...converged.neighbors, { ip: "10.244.7.0", mac: "0e:50:c0:a8:09:07" }],
    });
    expect(plan.ip).toEqual([]);
    expect(plan.bridge).toEqual(["fdb replace 0e:50:c0:a8:09:03 dev podnet.vxlan dst 192.168.9.4 self permanent"]);
    // The node at 10.244.7.0 may have become a neighbour: its route leads into the tunnel until the batch moves it.
    expect(plan.after).toEqual({ ip: ["neigh del 10.244.7.0 dev podnet.vxlan"], bridge: ["fdb del 0e:50:c0:a8:09:07 dev podnet.vxlan dst 192.168.9.7 self"] });
  });

  it("brings a downed device up and repairs its MTU; removes it when the overlay is off", () => {
    expect(planVxlan(desired, { ...converged, device: { ...device, up: false, mtu: 1500 } }).ip).toEqual(["link set dev podnet.vxlan mtu 1450 up"]);
    expect(planVxlan(undefined, converged).ip).toEqual(["link del podnet.vxlan"]);
    expect(planVxlan(undefined, { fdb: [], neighbors: [] }).ip).toEqual([]);
  });

  it("gives the device the first address of each own pod CIDR as a host address", () => {
    expect(overlayAddresses(["10.244.1.0/24", "fd00:10:244:1::/64"])).toEqual(["10.244.1.0/32", "fd00:10:244:1::/128"]);
  });
});

describe("vxlanClash", () => {
  const want = { port: 8472, vni: 1 };
  it.each([
    ["flannel.1 on the port and VNI", ["RTNETLINK answers: A VXLAN device with the specified VNI already exists."], [{ name: "flannel.1", vni: 1, port: 8472 }],
      "VNI 1 on UDP port 8472 is taken by flannel.1 (VNI 1): delete that device if it is a former CNI's, or give the agent another --vxlan-id (the same on every node)"],
    ["a socket on the port", ["RTNETLINK answers: Address already in use"], [],
      "UDP port 8472 is taken by another socket (`ss -ulpn sport = :8472` names it): stop it, or give the agent another --vxlan-port (the same on every node)"],
    ["a device on another port", ["RTNETLINK answers: Address already in use"], [{ name: "vx9", vni: 1, port: 4789 }],
      "UDP port 8472 is taken by another socket (`ss -ulpn sport = :8472` names it): stop it, or give the agent another --vxlan-port (the same on every node)"],
    ["another failure", ["Error: Nexthop device is not up."], [{ name: "flannel.1", vni: 1, port: 8472 }], undefined],
  ])("%s", (_case, errors, others, message) => expect(vxlanClash(errors, want, others)).toBe(message));
});
