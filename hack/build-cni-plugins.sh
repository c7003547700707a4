#!/usr/bin/env bash
# Builds the CNI plugins the image's init container installs on nodes (bridge, host-local, portmap, loopback)
# from upstream's Go module, statically linked: a plugin copied onto a node must not depend on that node's
# glibc (Debian's packaged plugins need glibc 2.34, which Amazon Linux 2, RHEL 8 or Ubuntu 20.04 lack).
# Cached outside the work tree, keyed by version; prints the directory. The Dockerfile runs this script too.
#   hack/build-cni-plugins.sh            build if missing, print the directory
#   hack/build-cni-plugins.sh --print    only print the directory
# GOARCH (and GOOS) set to another platform cross-compile, as the multi-arch image build does; the cache
# directory then names the platform.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
# The platform without asking go: --print (every test file asks) must need neither go nor a download.
host="linux_$(go_arch)"
target="${GOOS:-linux}_${GOARCH:-$(go_arch)}"
out="$cache/bin/cni-plugins-$CNI_PLUGINS_VERSION"
[ "$target" = "$host" ] || out="$out-$target"
[ "${1:-}" = "--print" ] && { echo "$out"; exit 0; }
use_go
plugins=(main/bridge ipam/host-local meta/portmap main/loopback)
if [ ! -x "$out/loopback" ]; then
  mkdir -p "$out.tmp"
  printf '[build-cni-plugins %s] building %s %s\n' "$(date +%T)" "${plugins[*]}" "$CNI_PLUGINS_VERSION" >&2
  packages=()
  for p in "${plugins[@]}"; do packages+=("github.com/containernetworking/plugins/plugins/$p@$CNI_PLUGINS_VERSION"); done
  if [ "$target" = "$host" ]; then
    GOBIN="$out.tmp" CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w" "${packages[@]}"
  else
    # go install refuses GOBIN for another platform; it puts the binaries under a GOPATH of our own instead.
    GOPATH="$out.gopath" GOMODCACHE="$(go env GOMODCACHE)" CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w" "${packages[@]}"
    mv "$out.gopath/bin/$target"/* "$out.tmp/" && rm -rf "$out.gopath"
  fi
  rm -rf "$out" && mv "$out.tmp" "$out"
fi
echo "$out"
