# Sourced by hack/build-*.sh: pinned versions and the cache outside the work tree.
# shellcheck shell=bash
here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${PODNET_CACHE:-$HOME/.cache/podnet}

# This machine's architecture as Go names it.
go_arch() {
  case "$(uname -m)" in x86_64) echo amd64;; aarch64|arm64) echo arm64;; *) uname -m;; esac
}

# The machine's go when it is at least GO_TOOLCHAIN, else that toolchain as the go command itself fetches one:
# the module golang.org/toolchain from the module proxy (each GOPROXY entry in turn; not with GOPROXY=off), its
# zip checked against GO_TOOLCHAIN_SHA256_<arch>, cached beside the builds. A fresh Debian 12 has no go, or apt's
# 1.19, which cannot switch toolchains. Runs that start together take turns (a lock), and a toolchain in place is
# never replaced: another build may be using it.
use_go() {
  local have=""
  if command -v go >/dev/null; then have=$(go env GOVERSION 2>/dev/null || true); fi
  if [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$GO_TOOLCHAIN" "$have" | sort -V | head -1)" = "$GO_TOOLCHAIN" ]; then return; fi
  local arch; arch=$(go_arch)
  local mod="v0.0.1-$GO_TOOLCHAIN.linux-$arch" dir="$cache/go/$GO_TOOLCHAIN" sumvar="GO_TOOLCHAIN_SHA256_$arch"
  mkdir -p "$cache/go"
  (
    flock 9
    [ -x "$dir/bin/go" ] && exit 0
    [ -n "${!sumvar:-}" ] || { echo "no Go toolchain for linux-$arch pinned in hack/versions.env: install go >= ${GO_TOOLCHAIN#go}" >&2; exit 1; }
    [ "${GOPROXY:-}" = off ] && { echo "go ${have:-missing} is older than $GO_TOOLCHAIN and GOPROXY=off: install go >= ${GO_TOOLCHAIN#go}" >&2; exit 1; }
    local tmp; tmp=$(mktemp -d "$cache/go/.fetch.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    local proxy fetched=""
    IFS=',|' read -r -a proxies <<< "${GOPROXY:-https://proxy.golang.org}"
    for proxy in "${proxies[@]}"; do
      case "$proxy" in direct|off|"") continue;; esac
      echo "[go] ${have:-no go} on PATH: fetching $GO_TOOLCHAIN from $proxy" >&2
      if curl -fsSL "$proxy/golang.org/toolchain/@v/$mod.zip" -o "$tmp/go.zip"; then fetched=1; break; fi
    done
    [ -n "$fetched" ] || { echo "could not fetch $GO_TOOLCHAIN from GOPROXY=${GOPROXY:-https://proxy.golang.org}: install go >= ${GO_TOOLCHAIN#go}" >&2; exit 1; }
    echo "${!sumvar}  $tmp/go.zip" | sha256sum -c --quiet - || { echo "$GO_TOOLCHAIN zip does not match its pinned SHA-256" >&2; exit 1; }
    unzip -q "$tmp/go.zip" -d "$tmp"
    # Module zips keep no file modes: the go command marks its tools executable when it unpacks one; so do we.
    chmod -R +x "$tmp/golang.org/toolchain@$mod/bin" "$tmp/golang.org/toolchain@$mod/pkg/tool"
    # A directory without go (a cut-short copy or cleanup) is no toolchain anyone runs: out of the way, or mv
    # would put the new one inside it and leave no go at $dir/bin.
    if [ -e "$dir" ]; then mv "$dir" "$tmp/broken"; fi
    mv "$tmp/golang.org/toolchain@$mod" "$dir" # same filesystem: whole or not there
  ) 9>"$cache/go/.lock" || return 1
  [ -x "$dir/bin/go" ] || { echo "no go at $dir/bin after fetching $GO_TOOLCHAIN" >&2; return 1; }
  export PATH="$dir/bin:$PATH" GOTOOLCHAIN=local
}
