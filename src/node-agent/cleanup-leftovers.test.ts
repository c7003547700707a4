import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { isPodnetConflist, leftoversOf, type NodeLeftoverView } from "./cleanup-leftovers.js";
import { conflistText, renderConflist } from "./cni-conflist.js";

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

describe("which conflist file cleanup takes for podnet's", () => {
  const dir = mkdtempSync(join(tmpdir(), "podnet-cleanup-conflist-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const ours = renderConflist({ cniVersion: "1.0.0", podCidrs: ["10.244.1.0/24"], mtu: 1500 });
  it.each<[string, string | undefined, boolean]>([
    ["podnet's file as the agent writes it", conflistText(ours), true],
    ["podnet's network written compactly (by hand or another tool)", JSON.stringify(ours), true],
    ["another network that chains a plugin named podnet", JSON.stringify({ cniVersion: "1.0.0", name: "other", plugins: [{ type: "bridge", name: "podnet" }] }, null, 2), false],
    ["another network's file that mentions podnet's name in a field", JSON.stringify({ name: "other", comment: '"name": "podnet"', plugins: [] }, null, 1), false],
    ["broken JSON", '{ "name": "podnet", "plugins": [', false],
    ["no file", undefined, false],
  ])("%s", (_case, text, expected) => {
    const path = join(dir, `${_case.replace(/\W+/g, "-")}.conflist`);
    if (text !== undefined) writeFileSync(path, text);
    expect(isPodnetConflist(path)).toBe(expected);
  });
});
