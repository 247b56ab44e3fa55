#!/usr/bin/env bash
# scripts/failed.sh REPORT — after a suite run that failed: names every test
# that failed, with its assertions, from the run's TAP report (Criterion's
# --tap=REPORT), then closes with a plain "N passed, N failed" line.  A log
# cut to its last lines (CI keeps a tail) still says what failed.
set -uo pipefail
report=${1:?usage: scripts/failed.sh REPORT}
if [ ! -s "$report" ]; then
    echo "the suite wrote no report ($report): it ended before its results" >&2
    exit 0
fi
passed=$(grep '^ok ' "$report" | grep -vc '# SKIP')
failed=$(grep -c '^not ok ' "$report")
echo "---- the tests that failed (report: $report) ----"
# each failure's block runs from its "not ok" line to its closing "..."
awk '/^not ok /{keep=1} keep{print} /^  \.\.\.$/{keep=0}' "$report" | head -n 400
echo "$passed passed, $failed failed"
