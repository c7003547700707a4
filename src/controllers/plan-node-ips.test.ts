import { describe, expect, it } from "vitest";
import { planAllocations, type AllocationAction, type PlannerNode, type PlannerRecord } from "./plan.js";
import { input, node, pool, rec } from "./plan-fixtures.js";

const [a, b, c, v6] = ["10.0.2.5", "10.1.2.5", "10.2.2.5", "fd00:2::5"];
const internal = (...nodeIPs: string[]): Partial<PlannerNode> => ({ nodeIPs });
/** What the plan writes or says about node IPs: updates, warnings, and the IPs new records are created with. */
const nodeIPActions = (actions: AllocationAction[]) => actions.flatMap((x): object[] => {
  if (x.kind === "updateNodeIPs") return [{ update: x.name, ips: x.nodeIPs }];
  if (x.kind === "create") return [{ create: x.cidr, ips: x.nodeIPs }];
  if (x.kind === "conflict") return [{ conflict: x.reason, message: x.message }];
  return [];
});
const dualStack = [pool(["10.244.0.0/16"], { v6: { cidrs: ["fd00:10:244::/56"], nodePrefix: 64 } })];
const plan = (n: Partial<PlannerNode>, records: PlannerRecord[]) =>
  nodeIPActions(planAllocations(input({ nodes: [node("n", n)], records, pools: dualStack })).actions);
const v4 = (extra: Partial<PlannerRecord>) => rec("n", "10.244.0.0/24", { createdAt: 1, ...extra });
const v6rec = (extra: Partial<PlannerRecord>) => rec("n", "fd00:10:244::/64", { createdAt: 2, ...extra });

describe("node IPs mirrored into NodeCIDRs", () => {
  it.each<[string, Partial<PlannerNode>, string[], string[] | undefined]>([
    ["a reordered list is no change (the record's order stays)", internal(b, a, v6), [a, b, v6], undefined],
    ["a third IPv4 address first: appended, the VXLAN endpoint stays", internal(c, b, a, v6), [a, b, v6], [a, b, v6, c]],
    ["an address gone: dropped, the rest in the record's order", internal(v6, b), [a, b, v6], [b, v6]],
    ["the first address gone: the next IPv4 one becomes the first", internal(b, v6), [a, v6, b], [v6, b]],
    ["every address replaced: the Node's list", internal(c, v6), [a, b], [c, v6]],
    ["the same list: no change", internal(a, b, v6), [a, b, v6], undefined],
  ])("%s", (_case, n, recorded, written) => {
    const records = [v4({ nodeIPs: recorded }), v6rec({ nodeIPs: recorded })];
    expect(plan(n, records)).toEqual(written ? records.map((r) => ({ update: r.name, ips: written })) : []);
  });

  it("gives a node's records one order, the oldest allocated record's: agents read the VXLAN endpoint from any of them", () => {
    // A write that failed for one of them, or a record created after a reorder by an older controller.
    expect(plan(internal(a, b), [v4({ nodeIPs: [b, a] }), v6rec({ nodeIPs: [a, b] })]))
      .toEqual([{ update: "fd00-10-244---64", ips: [b, a] }]);
    // A record whose status was never written, or one left from an earlier Node of that name, sets no order.
    expect(plan(internal(a, b), [v4({ nodeIPs: [b, a], phase: undefined, createdAt: 0 }), v6rec({ nodeIPs: [a, b] })]))
      .toEqual([{ update: "10-244-0-0-24", ips: [a, b] }]);
    expect(plan({ ...internal(a, b), uid: "n-2" }, [v4({ nodeIPs: [b, a], nodeUID: "n-1" }), v6rec({ nodeIPs: [a, b], nodeUID: "n-2" })]))
      .toEqual([{ create: "10.244.1.0/24", ips: [a, b] }]); // the earlier Node's is released
  });

  it("creates a node's second record in the order its first has", () => {
    expect(plan(internal(b, a, v6), [v4({ nodeIPs: [a, b, v6] })])).toEqual([{ create: "fd00:10:244::/64", ips: [a, b, v6] }]);
  });

  it("keeps the records' IPs when the Node lists no address at all", () => {
    expect(plan({ nodeIPs: [] }, [v4({ nodeIPs: [a] }), v6rec({ nodeIPs: [b] })])).toEqual([{ update: "fd00-10-244---64", ips: [a] }]);
    expect(plan({ nodeIPs: [] }, [v4({ nodeIPs: [a] })])).toEqual([{ create: "fd00:10:244::/64", ips: [a] }]);
  });
});
