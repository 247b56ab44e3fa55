#!/usr/bin/env bash
# Reads the valgrind logs of a `make valgrind` run (one per process) and
# fails if any process had a memory error or definitely lost memory.
#   bash scripts/valgrind-check.sh DIR
set -euo pipefail
dir=${1:?usage: $0 DIR}
shopt -s nullglob
logs=("$dir"/vg.*.log)
if [ ${#logs[@]} -eq 0 ]; then
    echo "valgrind: no logs in $dir" >&2
    exit 1
fi
bad=0
for f in "${logs[@]}"; do
    # with -q valgrind writes only what it reports: an error, a definite
    # leak (--errors-for-leak-kinds=definite) or a warning; a log with
    # anything but bare "==PID==" lines fails
    if grep -qvE '^==[0-9]+== ?$' "$f"; then
        echo "valgrind: errors in $f:" >&2
        sed -n '1,80p' "$f" >&2
        bad=$((bad + 1))
    fi
done
echo "valgrind: ${#logs[@]} processes checked, $bad with errors or definite leaks"
[ "$bad" -eq 0 ]
