#!/usr/bin/env bash
# Builds the real Kubernetes binaries podnet is tested against from Go modules (no prebuilt downloads
# here) and caches them outside the work tree, keyed by version: a warm run costs nothing.
#   hack/build-kube.sh            build what is missing, print where the binaries are
#   hack/build-kube.sh --print    only print the bin dir
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
bin="$cache/bin/kube-$KUBE_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
[ "${1:-}" = "--print" ] && { echo "$bin"; exit 0; }
use_go
mkdir -p "$bin"
log() { printf '[build-kube %s] %s\n' "$(date +%T)" "$*" >&2; }

# Kubernetes' go.mod points every k8s.io/* staging module at ./staging; a consumer module must replace
# each with its published twin v0.<minor>.<patch>. Derive the list from the release's own go.mod.
write_kube_module() {
  local dir=$1 staging=v0.${KUBE_VERSION#v1.}
  local mod; mod=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module podnet.dev/hack/kube"
    echo
    grep -E '^go [0-9]' "$mod"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"$staging"'#p' "$mod"
    echo ")"
  } > "$dir/go.mod"
}

build() { # build <module dir> <out name> <package> <ldflags>
  local dir=$1 name=$2 pkg=$3 ldflags=$4
  if [ -x "$bin/$name" ]; then log "$name cached"; return; fi
  local t0=$SECONDS
  log "building $name ($pkg) — cold builds take minutes on 2 cores"
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  log "$name built in $((SECONDS - t0))s"
}


work="$cache/src"; mkdir -p "$work"
kube_src="$work/kube-$KUBE_VERSION"; mkdir -p "$kube_src"; cp "$here/kube/tools.go" "$kube_src/"
etcd_src="$work/etcd-$ETCD_VERSION"; mkdir -p "$etcd_src"; cp "$here/etcd/tools.go" "$etcd_src/"
helm_src="$work/helm-$HELM_VERSION"; mkdir -p "$helm_src"; cp "$here/helm/tools.go" "$helm_src/"

need() { for n in "$@"; do [ -x "$bin/$n" ] || return 0; done; return 1; }
export GOFLAGS=-mod=mod
if need kube-apiserver kube-controller-manager kubectl; then
  log "resolving k8s.io/kubernetes $KUBE_VERSION"
  [ -f "$kube_src/go.mod" ] || write_kube_module "$kube_src"
  (cd "$kube_src" && go mod tidy)
fi
vflags="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
vflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
vflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
build "$kube_src" kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$vflags"
build "$kube_src" kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$vflags"
build "$kube_src" kubectl k8s.io/kubernetes/cmd/kubectl "$vflags"

if need etcd; then
  [ -f "$etcd_src/go.mod" ] || printf 'module podnet.dev/hack/etcd\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$etcd_src/go.mod"
  (cd "$etcd_src" && go mod tidy)
fi
build "$etcd_src" etcd go.etcd.io/etcd/server/v3 "-X go.etcd.io/etcd/api/v3/version.GitSHA=podnet"

if need helm; then
  [ -f "$helm_src/go.mod" ] || printf 'module podnet.dev/hack/helm\n\ngo 1.24\n\nrequire helm.sh/helm/v3 %s\n' "$HELM_VERSION" > "$helm_src/go.mod"
  (cd "$helm_src" && go mod tidy)
fi
build "$helm_src" helm helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"

for n in kube-apiserver kube-controller-manager kubectl etcd helm; do
  # Whole output first, then its first line: `cmd | head -1` under pipefail fails with SIGPIPE at random.
  case $n in kubectl) v=$("$bin/$n" version --client 2>&1);; helm) v=$("$bin/$n" version --short 2>&1);;
    *) v=$("$bin/$n" --version 2>&1);; esac
  log "$n: ${v%%$'\n'*}"
done
echo "$bin"
