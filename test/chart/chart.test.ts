import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { agentCleanupConfigSchema, agentConfigSchema, controllerConfigSchema, loadConfig } from "../../src/config.js";
import { kubeBin } from "../../src/localcluster/kube-bins.js";
import { createNamespace, destroyNamespace, isRoot } from "../../src/localcluster/netbed.js";
import { AGENT_NODE_FLAGS, CONTROLLER_NODE_FLAGS } from "../../src/localcluster/podnet-cli.js";
import { args, chart, find, type Obj, render } from "./helm.js";

describe("Helm chart charts/podnet", () => {
  it("passes helm lint", () => {
    expect(execFileSync(kubeBin("helm"), ["lint", chart], { encoding: "utf8" })).toContain("0 chart(s) failed");
  });

  it("renders the controller (2 replicas, leader election, non-root, read-only root) and the agent (hostNetwork, NET_ADMIN and NET_RAW only, the xtables lock shared)", () => {
    const objs = render();
    const controller = find(objs, "Deployment", "podnet-controller");
    expect((controller.spec as { replicas: number }).replicas).toBe(2);
    expect(args(controller)).toContain("--leader-elect=true");
    expect(args(controller)).toContain("--cluster-cidr=10.244.0.0/16");
    const cspec = (controller.spec as { template: { spec: { securityContext: { runAsNonRoot: boolean }; containers: Array<{ securityContext: { readOnlyRootFilesystem: boolean } }> } } }).template.spec;
    expect(cspec.securityContext.runAsNonRoot).toBe(true);
    expect(cspec.containers[0]!.securityContext.readOnlyRootFilesystem).toBe(true);
    const agent = find(objs, "DaemonSet", "podnet-agent");
    const aspec = (agent.spec as { template: { spec: { hostNetwork: boolean; tolerations: unknown[]; priorityClassName: string; containers: Array<{ securityContext: { capabilities: { add: string[] } } }> } } }).template.spec;
    expect(aspec.hostNetwork).toBe(true);
    expect(aspec.tolerations).toEqual([{ operator: "Exists" }]);
    expect(aspec.priorityClassName).toBe("system-node-critical");
    expect(aspec.containers[0]!.securityContext.capabilities.add).toEqual(["NET_ADMIN", "NET_RAW"]);
    const lock = (agent.spec as { template: { spec: { volumes: Array<{ name: string; hostPath?: { path: string; type?: string } }> } } }).template.spec.volumes.find((v) => v.name === "xtables-lock");
    expect(lock?.hostPath).toEqual({ path: "/run/xtables.lock", type: "FileOrCreate" });
    // Its /proc/sys is read-only: reverse-path filters are written where the host's per-device settings are mounted.
    const agentPod = (agent.spec as { template: { spec: { volumes: Array<{ name: string; hostPath?: { path: string; type?: string } }>; containers: Array<{ volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }> }> } } }).template.spec;
    const confDir = loadConfig(agentConfigSchema, args(agent).slice(1), { NODE_NAME: "n" })["ipv4-conf-dir"];
    const confMount = agentPod.containers[0]!.volumeMounts.find((m) => m.mountPath === confDir);
    expect(confMount?.readOnly).toBeUndefined();
    expect(agentPod.volumes.find((v) => v.name === confMount?.name)?.hostPath).toEqual({ path: "/proc/sys/net/ipv4/conf", type: "Directory" });
    // The node lock (node-lock.ts) where --lock-dir says, the host's /run/podnet: shared with the cleanup DaemonSet.
    const lockDir = loadConfig(agentConfigSchema, args(agent).slice(1), { NODE_NAME: "n" })["lock-dir"];
    const lockMount = agentPod.containers[0]!.volumeMounts.find((m) => m.mountPath === lockDir);
    expect(agentPod.volumes.find((v) => v.name === lockMount?.name)?.hostPath).toEqual({ path: "/run/podnet", type: "DirectoryOrCreate" });
    // host-local's leases, read-only, at the host's path the conflist names (--ipam-data-dir): pods outside the node's CIDRs are reported.
    const ipamDir = loadConfig(agentConfigSchema, args(agent).slice(1), { NODE_NAME: "n" })["ipam-data-dir"];
    const ipamMount = agentPod.containers[0]!.volumeMounts.find((m) => m.mountPath === ipamDir);
    expect(ipamMount?.readOnly).toBe(true);
    expect(agentPod.volumes.find((v) => v.name === ipamMount?.name)?.hostPath).toEqual({ path: ipamDir, type: "DirectoryOrCreate" });
    // The V8 flags the benchmarks and the local cluster measured are the ones the chart starts podnet with.
    const command = (o: Obj) => (o.spec as { template: { spec: { containers: Array<{ command: string[] }> } } }).template.spec.containers[0]!.command;
    expect(command(controller)).toEqual(["node", ...CONTROLLER_NODE_FLAGS, "/app/podnet.mjs"]);
    expect(command(agent)).toEqual(["node", ...AGENT_NODE_FLAGS, "/app/podnet.mjs"]);
    expect(find(objs, "PodDisruptionBudget", "podnet-controller")).toBeDefined();
    expect(find(objs, "ValidatingAdmissionPolicy", "podnet-agent-own-node")).toBeDefined();
    expect(find(objs, "ValidatingAdmissionPolicy", "podnet-events-count-only")).toBeDefined();
    expect(objs.some((o) => o.kind === "ServiceMonitor")).toBe(false);
  });

  it("keeps both workloads on Linux nodes (the agent tolerates every taint), and a nodeSelector can narrow that", () => {
    type Spec = { template: { spec: { nodeSelector: Record<string, string> } } };
    const selectorOf = (objs: Obj[], kind: string, name: string) => (find(objs, kind, name).spec as Spec).template.spec.nodeSelector;
    const defaults = render();
    expect(selectorOf(defaults, "DaemonSet", "podnet-agent")).toEqual({ "kubernetes.io/os": "linux" });
    expect(selectorOf(defaults, "Deployment", "podnet-controller")).toEqual({ "kubernetes.io/os": "linux" });
    const narrowed = render("agent.nodeSelector.pool=podnet", "controller.nodeSelector.role=infra");
    expect(selectorOf(narrowed, "DaemonSet", "podnet-agent")).toEqual({ "kubernetes.io/os": "linux", pool: "podnet" });
    expect(selectorOf(narrowed, "Deployment", "podnet-controller")).toEqual({ "kubernetes.io/os": "linux", role: "infra" });
    expect(() => render("agent.nodeSelector=notamap")).toThrow(/nodeSelector/);
  });

  it("passes dual-stack pools, a custom conflist and the ServiceMonitor through", () => {
    const objs = render("pool.clusterCIDRs={10.244.0.0/16,fd00:10:244::/56}", "cni.conflistName=05-podnet.conflist", "serviceMonitor.enabled=true", "dashboard.enabled=true");
    expect(args(find(objs, "Deployment", "podnet-controller"))).toContain("--cluster-cidr=10.244.0.0/16,fd00:10:244::/56");
    expect(args(find(objs, "DaemonSet", "podnet-agent"))).toContain("--conflist-name=05-podnet.conflist");
    expect(find(objs, "ServiceMonitor", "podnet")).toBeDefined();
    expect(JSON.parse((find(objs, "ConfigMap", "podnet-dashboard") as unknown as { data: Record<string, string> }).data["podnet.json"]!).uid).toBe("podnet");
  });

  it("monitors: the controller's job and the agents' (per pod, labelled with their node) under the names the alerts use; the PrometheusRule is the rules file", () => {
    const objs = render("serviceMonitor.enabled=true", "serviceMonitor.labels.release=prom", "prometheusRule.enabled=true", "prometheusRule.labels.release=prom");
    type Endpoint = { port: string; relabelings: Array<Record<string, unknown>> };
    const controller = (find(objs, "ServiceMonitor", "podnet").spec as { endpoints: Endpoint[] }).endpoints[0]!;
    expect(controller.relabelings).toContainEqual({ targetLabel: "job", replacement: "podnet-controller" });
    const agents = find(objs, "PodMonitor", "podnet-agent");
    expect((agents.spec as { selector: unknown }).selector).toEqual({ matchLabels: { "app.kubernetes.io/name": "podnet", "app.kubernetes.io/component": "agent" } });
    const agentEndpoint = (agents.spec as { podMetricsEndpoints: Endpoint[] }).podMetricsEndpoints[0]!;
    expect(agentEndpoint.port).toBe("metrics");
    expect(agentEndpoint.relabelings).toEqual([{ targetLabel: "job", replacement: "podnet-agent" }, { sourceLabels: ["__meta_kubernetes_pod_node_name"], targetLabel: "node" }]);
    const rule = find(objs, "PrometheusRule", "podnet");
    expect(rule.spec).toEqual(parse(readFileSync(join(chart, "alerts/podnet.rules.yaml"), "utf8")));
    for (const o of [agents, rule]) expect((o.metadata as unknown as { labels: Record<string, string> }).labels.release).toBe("prom");
    expect(render().some((o) => o.kind === "PrometheusRule" || o.kind === "PodMonitor")).toBe(false);
  });

  it.each([
    ["a pool CIDR that is not a CIDR", "pool.clusterCIDRs={banana}"],
    ["a negative MTU", "mtu=-1"],
    ["a conflist name without .conflist", "cni.conflistName=podnet.json"],
    ["an unknown overlay mode", "overlay.mode=gre"],
    ["a no-masquerade entry that is not a CIDR", "nonMasqueradeCIDRs={192.168.0.0/16,intranet}"],
    ["a resync period under a second (the agent would refuse it)", "resyncPeriod=500ms"],
    ["a resync period of 0", "resyncPeriod=0s"],
  ])("values.schema.json rejects %s", (_case, set) => {
    expect(() => render(set)).toThrow(/values don't meet the specifications|schema/i);
  });

  it("refuses one metrics port for agent and controller: both are in the host network", () => {
    expect(() => render("agent.metricsPort=9092")).toThrow(/agent\.metricsPort and controller\.metricsPort are both 9092/);
    expect(render("resyncPeriod=1500ms").length).toBeGreaterThan(0);
  });

  it("every flag the chart gives the agent and the controller is one podnet accepts; the overlay values reach the agent", () => {
    for (const sets of [[], ["overlay.mode=none", "overlay.vxlanPort=4789"], ["pool.clusterCIDRs={10.244.0.0/16,fd00:10:244::/56}", "masquerade=false"],
      ["nonMasqueradeCIDRs={192.168.0.0/16,fd00:99::/48}"]]) {
      const objs = render(...sets);
      const agentArgs = args(find(objs, "DaemonSet", "podnet-agent"));
      const agent = loadConfig(agentConfigSchema, agentArgs.slice(1), { NODE_NAME: "node-a" });
      const controller = loadConfig(controllerConfigSchema, args(find(objs, "Deployment", "podnet-controller")).slice(1), {});
      expect(agent["node-name"]).toBe("node-a");
      expect(controller["cluster-cidr"].length).toBeGreaterThan(0);
      if (sets.length === 0) expect(agent).toMatchObject({ overlay: "auto", "vxlan-id": 1, "vxlan-port": 8472, "clear-network-unavailable": true });
      if (sets[0] === "overlay.mode=none") expect(agent).toMatchObject({ overlay: "none", "vxlan-port": 4789 });
      expect(agent["no-masquerade-cidrs"]).toEqual(sets[0]?.startsWith("nonMasq") ? ["192.168.0.0/16", "fd00:99::/48"] : []);
    }
  });

  it("the controller can start before pod networking exists: host network, tolerating not-ready and network-unavailable Nodes, on configurable ports", () => {
    type PodSpec = { hostNetwork?: boolean; tolerations: Array<{ key?: string; effect?: string }>; containers: Array<{ args: string[]; ports: Array<{ containerPort: number }> }> };
    const podSpec = (o: Obj) => (o.spec as { template: { spec: PodSpec } }).template.spec;
    for (const [sets, controllerPort, agentPort] of [[[], 9092, 9091], [["controller.metricsPort=19092", "agent.metricsPort=19091"], 19092, 19091]] as const) {
      const objs = render(...sets);
      const controller = podSpec(find(objs, "Deployment", "podnet-controller"));
      // The controller creates the NodeCIDRs the agents need before they write any CNI config: in the pod
      // network it would wait for a sandbox that cannot exist yet (kind with disableDefaultCNI, any new cluster).
      expect(controller.hostNetwork).toBe(true);
      // So its host name is the node's: the lease holder and Events name the pod through POD_NAME.
      expect((controller.containers[0] as unknown as { env: unknown[] }).env).toContainEqual({ name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } });
      // A replica holds a host port: no surge pod (it would find no node on a small cluster), probes via loopback.
      expect((find(objs, "Deployment", "podnet-controller").spec as { strategy: unknown }).strategy).toEqual({ type: "RollingUpdate", rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } });
      const probes = controller.containers[0] as unknown as Record<"livenessProbe" | "readinessProbe", { httpGet: { host: string } }>;
      expect([probes.livenessProbe.httpGet.host, probes.readinessProbe.httpGet.host]).toEqual(["127.0.0.1", "127.0.0.1"]);
      expect(controller.tolerations).toEqual(expect.arrayContaining([{ key: "node.kubernetes.io/not-ready", operator: "Exists" },
        { key: "node.kubernetes.io/network-unavailable", operator: "Exists", effect: "NoSchedule" }]));
      expect(controller.containers[0]!.args).toContain(`--metrics-address=:${controllerPort}`);
      expect(controller.containers[0]!.ports).toEqual([{ name: "metrics", containerPort: controllerPort }]);
      expect((find(objs, "Service", "podnet-metrics").spec as { ports: Array<{ port: number }> }).ports[0]!.port).toBe(controllerPort);
      const agent = podSpec(find(objs, "DaemonSet", "podnet-agent"));
      expect(agent.hostNetwork).toBe(true);
      expect(loadConfig(agentConfigSchema, agent.containers[0]!.args.slice(1), { NODE_NAME: "n" })["metrics-address"]).toBe(`:${agentPort}`);
      expect(agent.containers[0]!.ports).toEqual([{ name: "metrics", containerPort: agentPort }]);
    }
  });

  it.skipIf(!isRoot())("the forwarding init container, run in a network namespace: IPv4 and br_netfilter always, IPv6 only with an IPv6 pool and without costing router advertisements", () => {
    const script = (objs: Obj[]) => (find(objs, "DaemonSet", "podnet-agent").spec as { template: { spec: { initContainers: Array<{ name: string; args: string[] }> } } })
      .template.spec.initContainers.find((c) => c.name === "enable-forwarding")!.args[0]!;
    for (const [sets, v6] of [[[], false], [["pool.clusterCIDRs={10.244.0.0/16,fd00:10:244::/56}"], true]] as const) {
      const ns = createNamespace(`fwd${v6 ? 6 : 4}`);
      try {
        const inNs = (...cmd: string[]) => execFileSync("ip", ["netns", "exec", ns, ...cmd], { encoding: "utf8" }).trim();
        inNs("ip", "link", "add", "uplink", "type", "veth", "peer", "name", "quiet");
        inNs("sysctl", "-w", "net.ipv6.conf.quiet.accept_ra=0"); // an owner's choice: no RAs there
        for (const f of ["iptables", "ip6tables"]) inNs("sysctl", "-w", `net.bridge.bridge-nf-call-${f}=0`);
        inNs("sysctl", "-w", "net.ipv4.ip_forward=0"); // copied from the host's at creation: make the script set it
        inNs("sh", "-c", script(render(...sets)));
        expect(inNs("sysctl", "-n", "net.ipv4.ip_forward")).toBe("1");
        expect(inNs("sysctl", "-n", "net.bridge.bridge-nf-call-iptables")).toBe("1");
        expect(inNs("sysctl", "-n", "net.bridge.bridge-nf-call-ip6tables")).toBe(v6 ? "1" : "0");
        expect(inNs("sysctl", "-n", "net.ipv6.conf.all.forwarding")).toBe(v6 ? "1" : "0");
        expect(inNs("sysctl", "-n", "net.ipv6.conf.uplink.accept_ra")).toBe(v6 ? "2" : "1");
        expect(inNs("sysctl", "-n", "net.ipv6.conf.quiet.accept_ra")).toBe("0");
        if (v6) {
          // Forwarding already on (the bridge plugin turns it on for a pod's first IPv6 address), an interface still at 1.
          inNs("sysctl", "-w", "net.ipv6.conf.uplink.accept_ra=1");
          inNs("sh", "-c", script(render(...sets)));
          expect(inNs("sysctl", "-n", "net.ipv6.conf.uplink.accept_ra")).toBe("2");
        }
      } finally {
        destroyNamespace(ns);
      }
    }
  });

  it("the agent uses the node's resolver (cluster DNS needs the network the agent makes), runs as spc_t under SELinux, and rolls 10% of nodes at a time", () => {
    type PodSpec = { dnsPolicy: string; securityContext: { seLinuxOptions?: { type: string } } };
    const objs = render();
    const agent = find(objs, "DaemonSet", "podnet-agent").spec as { updateStrategy: { rollingUpdate: { maxUnavailable: unknown } }; template: { spec: PodSpec } };
    expect(agent.template.spec.dnsPolicy).toBe("Default");
    expect(agent.template.spec.securityContext.seLinuxOptions).toEqual({ type: "spc_t", level: "s0" });
    expect(agent.updateStrategy.rollingUpdate.maxUnavailable).toBe("10%");
    expect((find(render("agent.maxUnavailable=3"), "DaemonSet", "podnet-agent").spec as typeof agent).updateStrategy.rollingUpdate.maxUnavailable).toBe(3);
    const cleanup = find(render("cleanup.enabled=true"), "DaemonSet", "podnet-cleanup").spec as { template: { spec: PodSpec } };
    expect(cleanup.template.spec.securityContext.seLinuxOptions).toEqual({ type: "spc_t", level: "s0" });
  });

  it("refuses clusters older than 1.32, whose API servers refuse the CRDs (measured: 1.30.14, 1.31.14)", () => {
    expect(() => execFileSync(kubeBin("helm"), ["template", "podnet", chart, "--kube-version", "1.31.14"], { stdio: "pipe" })).toThrow(/kubeVersion/);
  });

  it.each([
    ["a misspelt key", "controler.replicas=3", /controler/],
    ["a key the chart does not have", "agent.tolerations=x", /tolerations/],
    ["an MTU the agent refuses", "mtu=100", /mtu/],
    ["a bad maxUnavailable", "agent.maxUnavailable=0", /maxUnavailable/],
  ])("values: %s is refused when rendering", (_case, set, message) => {
    expect(() => render(set)).toThrow(message);
  });

  it("apiServer.host points both components at the API server directly (clusters without kube-proxy); unset, in-cluster config is left alone", () => {
    const env = (o: Obj) => (o.spec as { template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }> }> } } }).template.spec.containers[0]!.env;
    const objs = render("apiServer.host=10.0.0.10", "apiServer.port=8443");
    for (const o of [find(objs, "DaemonSet", "podnet-agent"), find(objs, "Deployment", "podnet-controller")]) {
      expect(env(o)).toEqual(expect.arrayContaining([{ name: "KUBERNETES_SERVICE_HOST", value: "10.0.0.10" }, { name: "KUBERNETES_SERVICE_PORT", value: "8443" }]));
    }
    for (const o of render().filter((x) => ["DaemonSet", "Deployment"].includes(x.kind))) expect(env(o).some((e) => e.name.startsWith("KUBERNETES_"))).toBe(false);
  });

  it("agent.clearNetworkUnavailable=false takes the flag, the nodes/status permission and its admission policy away", () => {
    const nodeStatusRule = (objs: Obj[]) => (find(objs, "ClusterRole", "podnet-agent") as unknown as { rules: Array<{ resources: string[] }> }).rules.some((r) => r.resources.includes("nodes/status"));
    const on = render();
    expect(nodeStatusRule(on)).toBe(true);
    expect(find(on, "ValidatingAdmissionPolicy", "podnet-agent-own-node-network")).toBeDefined();
    const off = render("agent.clearNetworkUnavailable=false");
    expect(loadConfig(agentConfigSchema, args(find(off, "DaemonSet", "podnet-agent")).slice(1), { NODE_NAME: "n" })["clear-network-unavailable"]).toBe(false);
    expect(nodeStatusRule(off)).toBe(false);
    expect(find(off, "ValidatingAdmissionPolicy", "podnet-agent-own-node-network")).toBeUndefined();
  });

  it("fillNodePodCIDRs=false takes the flag, the nodes patch permission and its admission policy away", () => {
    const nodePatch = (objs: Obj[]) => (find(objs, "ClusterRole", "podnet-controller") as unknown as { rules: Array<{ resources: string[]; verbs: string[] }> }).rules
      .some((r) => r.resources.includes("nodes") && r.verbs.includes("patch"));
    const on = render();
    expect(nodePatch(on)).toBe(true);
    expect(find(on, "ValidatingAdmissionPolicy", "podnet-controller-node-podcidrs")).toBeDefined();
    const off = render("fillNodePodCIDRs=false");
    expect(loadConfig(controllerConfigSchema, args(find(off, "Deployment", "podnet-controller")).slice(1), {})["fill-node-podcidrs"]).toBe(false);
    expect(nodePatch(off)).toBe(false);
    expect(find(off, "ValidatingAdmissionPolicy", "podnet-controller-node-podcidrs")).toBeUndefined();
  });

  it("deploy/podnet.yaml and podnet-cleanup.yaml are the chart rendered (run scripts/render-manifest.sh)", () => {
    const dir = mkdtempSync(join(tmpdir(), "podnet-manifest-"));
    try {
      const fresh = join(dir, "podnet.yaml");
      execFileSync("bash", [join(import.meta.dirname, "../../scripts/render-manifest.sh"), fresh]);
      for (const file of ["podnet.yaml", "podnet-cleanup.yaml"]) {
        expect(readFileSync(join(import.meta.dirname, "../../deploy", file), "utf8"), file).toBe(readFileSync(join(dir, file), "utf8"));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The uninstall aid: a DaemonSet that runs `podnet agent cleanup` once on every node (the command itself is
// proven on a node namespace in test/rung3/agent-network.test.ts).
interface CleanupContainer { command: string[]; args?: string[]; securityContext: { capabilities: { add?: string[] } }; volumeMounts?: Array<{ name: string; mountPath: string }> }
interface CleanupPodSpec { hostNetwork: boolean; tolerations: unknown[]; initContainers: CleanupContainer[]; containers: CleanupContainer[]; volumes: Array<{ name: string; hostPath: { path: string } }> }
const daemonSets = (objs: Obj[]) => objs.filter((o) => o.kind === "DaemonSet").map((o) => o.metadata.name);

describe("chart: cleanup.enabled", () => {
  it("is off by default: the agent runs, no cleanup", () => {
    expect(daemonSets(render())).toEqual(["podnet-agent"]);
  });

  it("renders only a DaemonSet whose init container cleans the node's CNI dir and network, with no node name", () => {
    const objs = render("cleanup.enabled=true", "cni.confDir=/var/lib/cni/conf", "cni.conflistName=05-podnet.conflist", "serviceMonitor.enabled=true", "prometheusRule.enabled=true", "dashboard.enabled=true");
    // An agent left running would put everything back; a controller would keep handing out CIDRs for it.
    // The cleanup pod mounts no token, so it needs no RBAC either.
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(["DaemonSet/podnet-cleanup"]);
    const spec = (find(objs, "DaemonSet", "podnet-cleanup").spec as { template: { spec: CleanupPodSpec } }).template.spec;
    expect(spec.hostNetwork).toBe(true); // the node's own routes, nft tables and devices
    expect(spec.tolerations).toEqual([{ operator: "Exists" }]);
    const [cleanup] = spec.initContainers;
    expect(cleanup!.command).toEqual(["node", "/app/podnet.mjs", "agent", "cleanup"]);
    const config = loadConfig(agentCleanupConfigSchema, cleanup!.args!, {}); // no NODE_NAME in its environment
    expect(config).toMatchObject({ "cni-conf-dir": "/host/cni/net.d", "conflist-name": "05-podnet.conflist" });
    const mount = cleanup!.volumeMounts!.find((m) => m.mountPath === config["cni-conf-dir"])!;
    expect(spec.volumes.find((v) => v.name === mount.name)!.hostPath.path).toBe("/var/lib/cni/conf");
    expect(cleanup!.securityContext.capabilities.add).toEqual(["NET_ADMIN", "NET_RAW"]);
    expect(cleanup!.volumeMounts!.map((m) => m.mountPath)).toContain("/run/xtables.lock");
    const lockMount = cleanup!.volumeMounts!.find((m) => m.mountPath === config["lock-dir"]);
    expect(spec.volumes.find((v) => v.name === lockMount?.name)?.hostPath.path).toBe("/run/podnet"); // the agents' node lock
    expect(spec.containers[0]!.securityContext.capabilities.add).toBeUndefined(); // the container that stays only waits
  });

  it("an unknown flag to agent cleanup is refused by name", () => {
    expect(() => loadConfig(agentCleanupConfigSchema, ["--overlay=vxlan"], {})).toThrow(/overlay/);
  });
});
