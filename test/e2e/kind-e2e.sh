#!/usr/bin/env bash
# Rung 5: podnet on kind. Creates the cluster (no default CNI), builds and loads the image, installs the
# chart, waits for nodes and NodeCIDRs Ready, runs a client and a server pod on every node, checks all-pairs
# pod connectivity in every family without NAT, Services by name (same-node backends too), masquerade to
# outside the cluster and a hostPort, prints `kubectl get nodecidrs -o wide`, uninstalls and checks every node
# is left clean by the cleanup DaemonSet, dumps diagnostics on failure, deletes the cluster.
#   test/e2e/kind-e2e.sh [kind-config.yaml]
set -euo pipefail
cd "$(dirname "$0")/../.."
config=${1:-kind-config.yaml}
cluster=podnet-e2e
image=podnet:e2e
dump() {
  echo "::group::diagnostics"
  kubectl get nodes -o wide || true
  kubectl get nodecidrs -o wide || true
  kubectl get podcidrpools -o yaml || true
  kubectl get pods -A -o wide || true
  kubectl -n kube-system describe pods -l app.kubernetes.io/name=podnet | tail -80 || true
  kubectl -n kube-system logs -l app.kubernetes.io/name=podnet --all-containers --tail=200 --prefix || true
  kubectl -n kube-system logs -l app.kubernetes.io/name=podnet --all-containers --tail=50 --prefix --previous 2>/dev/null || true
  kubectl get events -A --sort-by=.lastTimestamp | tail -50 || true
  for node in $(kind get nodes --name "$cluster" 2>/dev/null); do
    echo "--- $node"
    docker exec "$node" sh -c 'ls -l /etc/cni/net.d; ip route; ip -6 route; nft list table inet podnet; sysctl net.bridge.bridge-nf-call-iptables' || true
  done
  echo "::endgroup::"
}
cleanup() { status=$?; [ $status -ne 0 ] && dump; kind delete cluster --name "$cluster" || true; exit $status; }
trap cleanup EXIT

kind create cluster --name "$cluster" --config "$config" --wait 0s ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
docker build -t "$image" --build-arg VERSION=e2e --build-arg COMMIT="$(git rev-parse --short HEAD)" .
kind load docker-image "$image" --name "$cluster"
cidrs=$(yq -r '.networking.podSubnet' "$config")
services=$(yq -r '.networking.serviceSubnet' "$config") # podnet keeps pools clear of the Service ranges
helm install podnet charts/podnet --namespace kube-system \
  --set image.repository=podnet --set image.tag=e2e --set image.pullPolicy=Never \
  --set "pool.clusterCIDRs={${cidrs}}" --set "serviceCIDRs={${services}}" --wait --timeout 5m

kubectl wait --for=condition=Ready nodes --all --timeout=300s
families=$(tr ',' '\n' <<<"$cidrs" | wc -l)
want=$(( $(kubectl get nodes --no-headers | wc -l) * families ))
for _ in $(seq 1 120); do
  ready=$(kubectl get nodecidrs -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)
  [ "$ready" -ge "$want" ] && break
  sleep 2
done
kubectl get nodecidrs -o wide
[ "$ready" -ge "$want" ] || { echo "only $ready/$want NodeCIDRs Ready"; exit 1; }
# Every agent has cleared its Node's NetworkUnavailable condition (kind starts without one; podnet adds it False).
nodes=$(kubectl get nodes --no-headers | wc -l)
for _ in $(seq 1 30); do
  cleared=$(kubectl get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="NetworkUnavailable")].reason}{"\n"}{end}' | grep -c PodnetIsUp || true)
  [ "$cleared" -ge "$nodes" ] && break
  sleep 2
done
[ "$cleared" -ge "$nodes" ] || { echo "NetworkUnavailable cleared by podnet on $cleared/$nodes nodes only"; exit 1; }

# Per node: a busybox client and an agnhost netexec server (its /clientip names the caller's address as
# the server saw it, /hostname the server), pinned by nodeName; a ClusterIP Service per node selects only that
# node's server, so every node has a Service whose backend shares the client's node (br_netfilter's case).
agnhost=registry.k8s.io/e2e-test-images/agnhost:2.53
node_names=$(kubectl get nodes -o name | cut -d/ -f2)
for node in $node_names; do
  kubectl apply -f - <<MANIFEST
apiVersion: v1
kind: Pod
metadata: {name: client-$node, labels: {role: client}}
spec:
  nodeName: $node
  tolerations: [{operator: Exists}]
  containers: [{name: client, image: busybox:1.36, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: server-$node, labels: {role: server, node: $node}}
spec:
  nodeName: $node
  tolerations: [{operator: Exists}]
  containers: [{name: server, image: $agnhost, args: [netexec, --http-port=8080]}]
---
apiVersion: v1
kind: Service
metadata: {name: svc-$node}
spec:
  ipFamilyPolicy: PreferDualStack
  selector: {role: server, node: $node}
  ports: [{port: 8080}]
MANIFEST
done
kubectl wait --for=condition=Ready pod -l 'role in (client,server)' --timeout=180s

failures=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; failures=$((failures + 1)); }
pod_ips() { kubectl get pod "$1" -o jsonpath='{.status.podIPs[*].ip}'; }
ip_of_family() { for ip in $1; do case "$ip" in *:*) [ "$2" = 6 ] && echo "$ip";; *) [ "$2" = 4 ] && echo "$ip";; esac; done; return 0; }
url_host() { case "$1" in *:*) echo "[$1]";; *) echo "$1";; esac; }
# "10.244.1.5:41234" or "[fd00:10:244:1::5]:41234" (a bare address too) → the address alone
seen_address() {
  case "$1" in
    \[*\]:*) local a=${1%:*}; a=${a#[}; echo "${a%]}";;
    *.*:*) echo "${1%:*}";;
    *) echo "$1";;
  esac
}

# Every pod has an address of every family the pool hands out: the checks below loop over the addresses a pod
# has, so a pod left without its IPv6 address would otherwise go unnoticed.
for node in $node_names; do
  for pod in "client-$node" "server-$node"; do
    count=$(wc -w <<<"$(pod_ips "$pod")")
    if [ "$count" -eq "$families" ]; then pass "$pod has $count pod IPs"
    else fail "$pod has $count pod IPs ($(pod_ips "$pod")), want $families"; fi
  done
done

# Every client reaches every server by each of its pod IPs (both families on dual-stack), and the server sees
# the client's own pod IP: no NAT between pods.
for node in $node_names; do
  client=client-$node
  for server_node in $node_names; do
    for ip in $(pod_ips "server-$server_node"); do
      family=4; case "$ip" in *:*) family=6;; esac
      want=$(ip_of_family "$(pod_ips "$client")" "$family")
      got=$(kubectl exec "$client" -- wget -qO- -T 5 "http://$(url_host "$ip"):8080/clientip" 2>/dev/null || true)
      if [ -n "$got" ] && [ "$(seen_address "$got")" = "$want" ]; then pass "$client -> server-$server_node ($ip), seen as $want"
      else fail "$client -> server-$server_node ($ip): the server saw '${got:-nothing}', not $want"; fi
    done
  done
done

kubectl -n kube-system rollout status deployment/coredns --timeout=180s
# Services by name (CoreDNS, itself a pod behind a Service), the node's own backend included: without
# br_netfilter that reply would come back from the backend's address and be dropped.
for node in $node_names; do
  for svc_node in $node_names; do
    got=$(kubectl exec "client-$node" -- wget -qO- -T 5 "http://svc-$svc_node:8080/hostname" 2>/dev/null || true)
    if [ "$got" = "server-$svc_node" ]; then pass "client-$node -> Service svc-$svc_node"
    else fail "client-$node -> Service svc-$svc_node: got '${got:-nothing}'"; fi
  done
done

# Masquerade: the kind network's gateway (the runner) has no route back to the pod ranges, so pods reach it
# only behind their node's address.
first_client=client-$(head -1 <<<"$node_names")
probed=""
for gateway in $(docker network inspect kind -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}'); do
  family=4; case "$gateway" in *:*) family=6;; esac
  [ -n "$(ip_of_family "$(pod_ips "$first_client")" "$family")" ] || continue # no pod IP of that family
  probed="$probed $family"
  if kubectl exec "$first_client" -- ping -c 2 -W 2 "$gateway" >/dev/null; then pass "$first_client -> $gateway outside the cluster (masqueraded)"
  else fail "$first_client -> $gateway outside the cluster"; fi
done
# Every family the pods have is probed: a kind network without that family's gateway proves nothing.
for family in 4 6; do
  [ -n "$(ip_of_family "$(pod_ips "$first_client")" "$family")" ] || continue
  case " $probed " in *" $family "*) ;; *) fail "masquerade: the kind network has no IPv$family gateway to probe";; esac
done

# hostPort through the portmap plugin in podnet's conflist: a pod on the last node serves on its node's port
# 30080, fetched through that node's address from the first node's client.
last_node=$(tail -1 <<<"$node_names")
last_ip=$(kubectl get node "$last_node" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}' | awk '{print $1}')
kubectl apply -f - <<MANIFEST
apiVersion: v1
kind: Pod
metadata: {name: hostport-web}
spec:
  nodeName: $last_node
  tolerations: [{operator: Exists}]
  containers:
    - name: web
      image: busybox:1.36
      command: ["sh", "-c", "mkdir -p /www && echo podnet > /www/index.html && httpd -f -p 8080 -h /www"]
      ports: [{containerPort: 8080, hostPort: 30080}]
MANIFEST
kubectl wait --for=condition=Ready pod/hostport-web --timeout=120s
if [ "$(kubectl exec "$first_client" -- wget -qO- -T 5 "http://$last_ip:30080/" 2>/dev/null || true)" = "podnet" ]; then pass "hostPort $last_ip:30080"
else fail "hostPort $last_ip:30080"; fi

# Uninstall as README says: the agents go, then the cleanup DaemonSet (cleanup.enabled, this run's image)
# clears every node; nothing of podnet's may remain (routes of protocol 249, nft table, VXLAN device, pod bridge,
# conflist).
helm uninstall podnet --namespace kube-system --wait --timeout 3m
# --kube-version as README's command: any helm renders this (the repo's own, built without upstream's version
# ldflags, takes the cluster for 1.20 and refuses the chart's kubeVersion).
helm template podnet charts/podnet --namespace kube-system --kube-version 1.32.0 --set cleanup.enabled=true -s templates/cleanup.yaml \
  --set image.repository=podnet --set image.tag=e2e --set image.pullPolicy=Never | kubectl apply -f -
kubectl -n kube-system rollout status ds/podnet-cleanup --timeout=180s
for node in $(kind get nodes --name "$cluster"); do
  # The probe says when it cannot look (no nft in the node image, docker exec failing): empty output means clean.
  left=$(docker exec "$node" sh -c 'command -v nft >/dev/null || echo "nft missing: cannot check the table"; ip route show proto 249; ip -6 route show proto 249; nft list table inet podnet 2>/dev/null; ip link show podnet.vxlan 2>/dev/null; ip link show podnet0 2>/dev/null; ls /etc/cni/net.d/10-podnet.conflist 2>/dev/null; true' 2>&1) || left="docker exec failed: $left"
  if [ -z "$left" ]; then pass "$node clean after uninstall"; else fail "$node keeps podnet state: $left"; fi
done
kubectl -n kube-system delete ds/podnet-cleanup --wait --timeout=120s

[ "$failures" -eq 0 ] || { echo "$failures failures"; exit 1; }
echo "pod-to-pod (every family, no NAT), Services by name (same-node backends too), masquerade, hostPort and uninstall ok"
