#!/usr/bin/env bash
# make bench: every benchmark prints its figures and the ratio against a baseline measured in the same run.
# Sizes can be overridden, e.g. CONTROLLER_SIZES="100 1000" make bench.
set -euo pipefail
cd "$(dirname "$0")/.."
tsc -p tsconfig.build.json
echo "== controller allocation (issue 4): podnet vs kube-controller-manager nodeipam vs raw Node creates"
tsx bench/controller-allocation.bench.ts ${CONTROLLER_SIZES:-100 1000 5000}
echo "== controller plan against the pools' shape: 1 pool vs 100 pools copying its ranges vs 120 pools × 32 ranges"
tsx bench/plan-pools.bench.ts ${PLAN_NODES:-5000}
echo "== controller failover (issue 4): two replicas, leader stopped or killed"
tsx bench/controller-failover.bench.ts ${FAILOVER_ROUNDS:-3}
echo "== agent routes (issue 5): agent sync vs raw ip -batch; process cold start; RSS"
tsx bench/agent-routes.bench.ts ${AGENT_ROUTES:-4999}
echo "== local cluster (issue 6): node added → route on every agent; iperf3 pod→pod vs node→node"
tsx bench/local-cluster.bench.ts ${CLUSTER_SIZES:-10 25 50}
