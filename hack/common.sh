# Sourced by hack/build-*.sh: pinned versions and the cache outside the work tree.
# shellcheck shell=bash
here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${PODNET_CACHE:-$HOME/.cache/podnet}

# The machine's go when it is at least GO_TOOLCHAIN, else that toolchain as the go command itself fetches one:
# the module golang.org/toolchain from the module proxy, cached beside the builds. A fresh Debian 12 has no go, or
# apt's 1.19, which cannot switch toolchains.
use_go() {
  local have=""
  if command -v go >/dev/null; then have=$(go env GOVERSION 2>/dev/null || true); fi
  if [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$GO_TOOLCHAIN" "$have" | sort -V | head -1)" = "$GO_TOOLCHAIN" ]; then return; fi
  local arch; case "$(uname -m)" in x86_64) arch=amd64;; aarch64) arch=arm64;; *) echo "no Go toolchain for $(uname -m): install go >= ${GO_TOOLCHAIN#go}" >&2; return 1;; esac
  local mod="v0.0.1-$GO_TOOLCHAIN.linux-$arch" dir="$cache/go/$GO_TOOLCHAIN"
  if [ ! -x "$dir/bin/go" ]; then
    local proxy=${GOPROXY:-https://proxy.golang.org}; proxy=${proxy%%,*}; [ "$proxy" = direct ] || [ "$proxy" = off ] && proxy=https://proxy.golang.org
    echo "[go] ${have:-no go} on PATH: fetching $GO_TOOLCHAIN from $proxy" >&2
    local tmp; tmp=$(mktemp -d)
    if ! { curl -fsSL "$proxy/golang.org/toolchain/@v/$mod.zip" -o "$tmp/go.zip" && unzip -q "$tmp/go.zip" -d "$tmp"; }; then rm -rf "$tmp"; return 1; fi
    # Module zips keep no file modes: the go command marks its tools executable when it unpacks one; so do we.
    chmod -R +x "$tmp/golang.org/toolchain@$mod/bin" "$tmp/golang.org/toolchain@$mod/pkg/tool"
    mkdir -p "$(dirname "$dir")" && rm -rf "$dir" && mv "$tmp/golang.org/toolchain@$mod" "$dir"; rm -rf "$tmp"
  fi
  export PATH="$dir/bin:$PATH" GOTOOLCHAIN=local
}
