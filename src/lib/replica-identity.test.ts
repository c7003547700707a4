import { hostname } from "node:os";
import { describe, expect, it } from "vitest";
import { replicaIdentity } from "./leader.js";

describe("replicaIdentity", () => {
  it("names the pod from POD_NAME (the chart's; a host-network pod's host name is its node's), else the host name, then pid and a random tail", () => {
    expect(replicaIdentity({ POD_NAME: "podnet-controller-7d9c-x2k4q" })).toMatch(new RegExp(`^podnet-controller-7d9c-x2k4q-${process.pid}-[a-z0-9]{1,6}$`));
    expect(replicaIdentity({})).toMatch(new RegExp(`^${hostname().replace(/[.]/g, "\\.")}-${process.pid}-`));
    expect(replicaIdentity({ POD_NAME: "" })).toMatch(new RegExp(`^${hostname().replace(/[.]/g, "\\.")}-`));
    expect(replicaIdentity({ POD_NAME: "p" })).not.toBe(replicaIdentity({ POD_NAME: "p" })); // a restart in place differs
  });
});
