#!/usr/bin/env bash
# Builds promtool (Prometheus' rule checker and rule unit-test runner) from its Go module once and caches it
# outside the work tree, keyed by version; prints the binary's path.
#   hack/build-promtool.sh            build if missing, print the path
#   hack/build-promtool.sh --print    only print the path
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
out="$cache/bin/promtool-$PROMETHEUS_VERSION/promtool"
[ "${1:-}" = "--print" ] && { echo "$out"; exit 0; }
use_go
if [ ! -x "$out" ]; then
  src="$cache/src/promtool-$PROMETHEUS_VERSION"; mkdir -p "$src" "$(dirname "$out")"
  cp "$here/promtool/tools.go" "$src/"
  [ -f "$src/go.mod" ] || printf 'module podnet.dev/hack/promtool\n\ngo 1.24\n\nrequire github.com/prometheus/prometheus %s\n' "$PROMETHEUS_VERSION" > "$src/go.mod"
  t0=$SECONDS
  printf '[build-promtool %s] building promtool %s — a cold build takes about 9 minutes on 2 cores\n' "$(date +%T)" "$PROMETHEUS_VERSION" >&2
  (cd "$src" && export GOFLAGS=-mod=mod && go mod tidy && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp" github.com/prometheus/prometheus/cmd/promtool)
  mv "$out.tmp" "$out"
  printf '[build-promtool %s] built in %ss\n' "$(date +%T)" "$((SECONDS - t0))" >&2
fi
echo "$out"
