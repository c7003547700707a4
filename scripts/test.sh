#!/usr/bin/env bash
# Runs every test rung that can run here and ends with the plain line "N passed, N failed[, N skipped]"
# computed from vitest's own JSON report. Exit status is non-zero on any failure (checks included).
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
step() { local name=$1; shift; local t0=$SECONDS; echo "== $name"; if "$@"; then echo "== $name ok ($((SECONDS - t0))s)"; else echo "== $name FAILED"; status=1; fi; }

step "typecheck" tsc -p tsconfig.json --noEmit
step "lint" eslint .
report=$(mktemp /tmp/podnet-vitest-XXXXXX.json)
t0=$SECONDS
echo "== vitest (rungs 1-4)"
vitest run --reporter=default --reporter=json --outputFile="$report" "$@" || status=1
echo "== vitest took $((SECONDS - t0))s"
summary=$(node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  let passed = 0, failed = 0, skipped = 0;
  for (const file of r.testResults) {
    if (file.assertionResults.length === 0 && file.status === "failed") failed++; // a file that failed to load
    // A file whose setup failed (beforeAll) reports its tests as skipped: they could not run, so they failed.
    const setupFailed = file.status === "failed" && !file.assertionResults.some((t) => t.status === "failed");
    for (const t of file.assertionResults) {
      if (t.status === "passed") passed++;
      else if (t.status === "failed" || setupFailed) failed++;
      else skipped++;
    }
  }
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
  if (passed === 0) process.exitCode = 3;
' "$report") || status=1
rm -f "$report"
[ -n "$summary" ] || { summary="0 passed, 1 failed"; status=1; }
echo "$summary"
exit $status
