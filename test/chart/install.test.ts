import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { kubeBin } from "../../src/localcluster/kube-bins.js";
import { useControlPlane } from "../harness/api-fixture.js";
import { useChartInstall } from "../harness/chart-install.js";

// The service-account token tests (the chart's RBAC and admission policies as its pods meet them) are in
// install-tokens.test.ts, on a control plane of their own.
const fx = useControlPlane();
const kubectl = (...args: string[]) => execFileSync(kubeBin("kubectl"), [`--kubeconfig=${fx.cp.kubeconfig}`, ...args], { encoding: "utf8" });
/** resource: plural.group, with /subresource or (after a space) one object's name. */
const canI = (sa: string, verb: string, resource: string, ns?: string) => {
  try {
    const [type, name] = resource.split(" ");
    const [res, sub] = type!.split("/");
    return kubectl("auth", "can-i", verb, name ? `${res}/${name}` : res!, ...(sub ? [`--subresource=${sub}`] : []), `--as=system:serviceaccount:kube-system:${sa}`, ...(ns ? ["-n", ns] : [])).trim() === "yes";
  } catch (err) {
    // `can-i` exits 1 and prints "no" for a refusal; anything else (a bad kubeconfig, a typo) must not pass as "no".
    const { status, stdout } = err as { status?: number; stdout?: string | Buffer };
    if (status === 1 && String(stdout ?? "").trim() === "no") return false;
    throw err;
  }
};

describe("helm install onto the real API server", () => {
  const install = useChartInstall(fx);

  it("its notes say how to look at podnet, and that each controller replica needs a node of its own", () => {
    expect(install.output).toContain("kubectl get nodecidrs -o wide");
    expect(install.output).toContain("on a single-node cluster one stays Pending (helm --wait then times out); use --set controller.replicas=1");
  });

  it("the uninstall aid (deploy/podnet-cleanup.yaml) is accepted by the server", () => {
    expect(kubectl("apply", "--dry-run=server", "-f", join(import.meta.dirname, "../../deploy/podnet-cleanup.yaml")).trim()).toBe("daemonset.apps/podnet-cleanup created (server dry run)");
  });

  it("every chart object is accepted by the server", () => {
    const out = kubectl("get", "deploy/podnet-controller", "ds/podnet-agent", "sa/podnet-agent", "sa/podnet-controller", "pdb/podnet-controller",
      "role/podnet-controller-lease", "rolebinding/podnet-controller-lease", "-n", "kube-system", "-o", "name");
    expect(out.trim().split("\n")).toHaveLength(7);
    expect(kubectl("get", "role/podnet-events", "rolebinding/podnet-events", "-n", "default", "-o", "name").trim().split("\n")).toHaveLength(2);
    expect(kubectl("get", "clusterrole/podnet-agent", "clusterrole/podnet-controller", "validatingadmissionpolicy/podnet-agent-own-node",
      "validatingadmissionpolicybinding/podnet-agent-own-node", "validatingadmissionpolicy/podnet-agent-own-node-network",
      "validatingadmissionpolicybinding/podnet-agent-own-node-network", "validatingadmissionpolicy/podnet-controller-node-condition",
      "validatingadmissionpolicybinding/podnet-controller-node-condition", "validatingadmissionpolicy/podnet-controller-node-podcidrs",
      "validatingadmissionpolicybinding/podnet-controller-node-podcidrs", "-o", "name").trim().split("\n")).toHaveLength(10);
  });

  it.each([
    ["podnet-agent", "list", "nodecidrs.podnet.io", true],
    ["podnet-agent", "patch", "nodecidrs.podnet.io/status", true],
    ["podnet-agent", "update", "nodecidrs.podnet.io/status", false],
    ["podnet-agent", "watch", "podcidrpools.podnet.io", true],
    ["podnet-agent", "patch", "podcidrpools.podnet.io/status", false],
    ["podnet-agent", "create", "nodecidrs.podnet.io", false],
    ["podnet-agent", "delete", "nodecidrs.podnet.io", false],
    ["podnet-agent", "update", "podcidrpools.podnet.io", false],
    ["podnet-agent", "patch", "nodes", false],
    ["podnet-agent", "watch", "nodes", true],
    ["podnet-agent", "patch", "nodes/status", true],
    ["podnet-agent", "update", "nodes/status", false],
    ["podnet-agent", "get", "secrets", false],
    ["podnet-controller", "create", "nodecidrs.podnet.io", true],
    ["podnet-controller", "update", "nodecidrs.podnet.io", false],
    ["podnet-controller", "update", "nodecidrs.podnet.io/status", false],
    ["podnet-controller", "get", "podcidrpools.podnet.io/status", false],
    ["podnet-controller", "patch", "nodes", true],
    ["podnet-controller", "delete", "nodes", false],
    ["podnet-controller", "patch", "nodes/status", true],
    ["podnet-controller", "update", "nodes/status", false],
    ["podnet-controller", "patch", "podcidrpools.podnet.io default", true],
    ["podnet-controller", "patch", "podcidrpools.podnet.io team-a", false],
    ["podnet-controller", "patch", "podcidrpools.podnet.io/status", true],
    ["podnet-controller", "create", "events", true, "default"],
    ["podnet-controller", "create", "events", false, "kube-system"],
    ["podnet-agent", "create", "events", true, "default"],
    ["podnet-agent", "create", "events", false, "kube-system"],
    ["podnet-controller", "patch", "events", true, "default"],
    ["podnet-agent", "patch", "events", true, "default"],
    ["podnet-agent", "patch", "events", false, "kube-system"],
    ["podnet-agent", "delete", "events", false, "default"],
    ["podnet-controller", "delete", "podcidrpools.podnet.io", false],
    ["podnet-controller", "get", "secrets", false],
    ["podnet-controller", "update", "leases.coordination.k8s.io podnet-controller", true, "kube-system"],
    ["podnet-controller", "update", "leases.coordination.k8s.io kube-scheduler", false, "kube-system"],
    ["podnet-controller", "create", "leases.coordination.k8s.io", true, "kube-system"],
    ["podnet-controller", "update", "leases.coordination.k8s.io podnet-controller", false, "default"],
  ] as const)("RBAC: %s can %s %s → %s", (sa, verb, resource, expected, ns?: string) => {
    expect(canI(sa, verb, resource, ns)).toBe(expected);
  });
});
