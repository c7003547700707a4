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
vitest_status=0
vitest run --reporter=default --reporter=json --outputFile="$report" "$@" || { vitest_status=$?; status=1; }
echo "== vitest took $((SECONDS - t0))s"
# What test workers stopped without their exit handlers left (namespaces, control-plane run dirs).
tsx test/global-teardown.ts || true
summary=$(node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  let passed = 0, failed = 0, skipped = 0;
  for (const file of r.testResults) {
    // In a failed file, nothing that did not pass counts as skipped (a failed beforeAll skips the rest), and a
    // file whose tests all passed but whose afterAll or cleanup failed counts once as failed.
    const fileFailed = file.status === "failed";
    let failedHere = 0;
    for (const t of file.assertionResults) {
      if (t.status === "passed") passed++;
      else if (t.status === "failed" || fileFailed) failedHere++;
      else skipped++;
    }
    if (fileFailed && failedHere === 0) failedHere = 1; // failed to load, or failed after its tests
    failed += failedHere;
  }
  // vitest failed for a reason outside any file (an unhandled error): the line must not say "0 failed".
  if (Number(process.argv[2]) !== 0 && failed === 0) failed = 1;
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
  if (passed === 0) process.exitCode = 3;
' "$report" "$vitest_status") || status=1
rm -f "$report"
[ -n "$summary" ] || { summary="0 passed, 1 failed"; status=1; }
echo "$summary"
exit $status
