import { describe, expect, it } from "vitest";
import { masqueradeProblem } from "./data-path.js";

describe("masqueradeProblem", () => {
  const node2 = { name: "node-2", ip: "10.77.1.2" };
  it("accepts the sending node's own address", () => {
    expect(masqueradeProblem("10.77.1.2", node2)).toBeUndefined();
  });

  it("names a pod IP (no masquerade) and another node's address as failures", () => {
    expect(masqueradeProblem("10.244.1.2", node2)).toBe(
      "the hostPort saw the datagram from 10.244.1.2, not from node-2's address 10.77.1.2: pod traffic to a node address was not masqueraded");
    expect(masqueradeProblem("10.77.0.1", node2)).toMatch(/from 10\.77\.0\.1, not from node-2's address/);
  });
});
