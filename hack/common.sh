# Sourced by hack/build-*.sh: pinned versions and the cache outside the work tree.
# shellcheck shell=bash
here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${PODNET_CACHE:-$HOME/.cache/podnet}
