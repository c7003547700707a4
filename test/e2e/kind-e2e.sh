#!/usr/bin/env bash
# Rung 5: podnet on kind. Creates the cluster (no default CNI), builds and loads the image, installs the
# chart, waits for nodes and NodeCIDRs Ready, runs a pod on every node, checks all-pairs pod connectivity
# and pod→outside masquerade, prints `kubectl get nodecidrs -o wide`, dumps logs on failure, deletes the cluster.
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
  kubectl -n kube-system logs -l app.kubernetes.io/name=podnet --all-containers --tail=200 --prefix || true
  kubectl get events -A --sort-by=.lastTimestamp | tail -50 || true
  echo "::endgroup::"
}
cleanup() { status=$?; [ $status -ne 0 ] && dump; kind delete cluster --name "$cluster" || true; exit $status; }
trap cleanup EXIT

kind create cluster --name "$cluster" --config "$config" --wait 0s
docker build -t "$image" --build-arg VERSION=e2e --build-arg COMMIT="$(git rev-parse --short HEAD)" .
kind load docker-image "$image" --name "$cluster"
cidrs=$(yq -r '.networking.podSubnet' "$config")
helm install podnet charts/podnet --namespace kube-system \
  --set image.repository=podnet --set image.tag=e2e --set image.pullPolicy=Never \
  --set "pool.clusterCIDRs={${cidrs}}" --wait --timeout 5m

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

# One pod per node, pinned by nodeName, tolerating the control-plane taint.
for node in $(kubectl get nodes -o name | cut -d/ -f2); do
  kubectl run "net-$node" --image=busybox:1.36 --restart=Never \
    --overrides="{\"spec\":{\"nodeName\":\"$node\",\"tolerations\":[{\"operator\":\"Exists\"}]}}" -- sleep 3600
done
kubectl wait --for=condition=Ready pod -l run --timeout=180s 2>/dev/null || kubectl wait --for=condition=Ready pods --all --timeout=180s
pods=$(kubectl get pods -o jsonpath='{range .items[*]}{.metadata.name}={.status.podIP}{"\n"}{end}' | grep '^net-')
failures=0
for a in $pods; do
  for b in $pods; do
    [ "$a" = "$b" ] && continue
    if kubectl exec "${a%%=*}" -- ping -c 2 -W 2 "${b#*=}" >/dev/null; then echo "ok   ${a%%=*} -> ${b%%=*}"; else echo "FAIL ${a%%=*} -> ${b%%=*}"; failures=$((failures + 1)); fi
  done
done
# Masquerade: a pod reaches a node's InternalIP outside the pod range.
# Dual-stack Nodes list an InternalIP per family: the first one (IPv4) is the one to use here.
node_ip=$(kubectl get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}' | awk '{print $1}')
first=$(head -1 <<<"$pods")
kubectl exec "${first%%=*}" -- ping -c 2 -W 2 "$node_ip" >/dev/null || { echo "FAIL pod -> node $node_ip"; failures=$((failures + 1)); }
# hostPort through the portmap plugin in podnet's conflist: a pod on the last node serves on its node's port 30080.
last_node=$(kubectl get nodes -o name | cut -d/ -f2 | tail -1)
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
if [ "$(kubectl exec "${first%%=*}" -- wget -qO- -T 5 "http://$last_ip:30080/")" = "podnet" ]; then echo "ok   hostPort $last_ip:30080"
else echo "FAIL hostPort $last_ip:30080"; failures=$((failures + 1)); fi
[ "$failures" -eq 0 ] || { echo "$failures connectivity failures"; exit 1; }
echo "all-pairs pod connectivity, pod→node masquerade and hostPort ok"
