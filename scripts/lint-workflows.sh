#!/usr/bin/env bash
# Validates .github/workflows with actionlint (built from its Go module once and cached), which also runs
# shellcheck over every `run:` step, and shellchecks the kind e2e script those workflows run.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=${PODNET_CACHE:-$HOME/.cache/podnet}/tools
version=v1.7.12
if [ ! -x "$tools/actionlint-$version" ]; then
  mkdir -p "$tools"
  GOBIN="$tools/gobin" go install "github.com/rhysd/actionlint/cmd/actionlint@$version" >&2
  mv "$tools/gobin/actionlint" "$tools/actionlint-$version"
fi
"$tools/actionlint-$version" .github/workflows/*.yaml
shellcheck -x test/e2e/kind-e2e.sh
