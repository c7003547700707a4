import { describe, expect, it } from "vitest";
import { leftoversOf, type NodeLeftoverView } from "./cleanup-leftovers.js";

const clean: NodeLeftoverView = { routes: 0, nexthops: 0, vxlan: false, nftTable: false, forwardAccepts: 0, podBridge: false, unreadable: {} };

describe("what cleanup finds when it reads the node again", () => {
  it.each<[string, Partial<NodeLeftoverView>, Array<[string, string]>]>([
    ["a clean node", {}, []],
    ["an agent's work put back", { conflist: "/etc/cni/net.d/10-podnet.conflist", routes: 210, nexthops: 1, vxlan: true, nftTable: true }, [
      ["conflist", "still there: /etc/cni/net.d/10-podnet.conflist"],
      ["routes", "still there: 210 route(s) and 1 nexthop(s) of protocol 249"],
      ["vxlan device", "still there: podnet.vxlan"],
      ["nft table", "still there: table inet podnet"],
    ]],
    ["nexthops without routes", { nexthops: 2 }, [["routes", "still there: 0 route(s) and 2 nexthop(s) of protocol 249"]]],
    ["the bridge and firewall rules", { podBridge: true, forwardAccepts: 2 }, [["firewall FORWARD accepts", "still there: 2 rule(s) of podnet's"], ["pod bridge", "still there: podnet0"]]],
    ["a table it could not read", { unreadable: { "nft table": "nft not found in PATH; install nftables" } }, [["nft table", "not readable: nft not found in PATH; install nftables"]]],
  ])("%s", (_case, view, expected) => {
    expect(leftoversOf({ ...clean, ...view })).toEqual(expected);
  });
});
