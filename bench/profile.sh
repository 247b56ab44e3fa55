#!/usr/bin/env bash
# profile.sh — where the CPU goes in the bench's main cells: `perf record`
# of the whole machine (-a, call graphs) while the bench runs one cell, for
# each transport; then a flat report per cell of the symbols above 1 %.
#
#   bench/profile.sh [TRANSPORTS] [SECONDS]   (make profile)
#
# TRANSPORTS: comma-separated bench variants (default mq,shm,zmq-ipc); each
# runs its 1x1 cas cell at the preset's batch (200) for SECONDS (default 2)
# of closed loop and its half-load point, with no raw baselines.  Writes
# build/profile/DATE/<transport>.data (perf's own file: `perf report -i`
# opens it) and <transport>.txt (the flat report), and prints the top lines
# of each.  Needs perf (Debian: linux-perf) and permission to profile the
# whole machine (root, or kernel.perf_event_paranoid <= -1).
set -uo pipefail

transports=${1:-mq,shm,zmq-ipc}
seconds=${2:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
bench=${SP_BIN_DIR:-$here/bin}/bench
perf=$(command -v perf) || { echo "profile: perf is not installed (Debian: apt-get install linux-perf; make profile installs it)" >&2; exit 1; }
[ -x "$bench" ] || { echo "profile: $bench is not built (make all)" >&2; exit 1; }
out=$here/build/profile/$(date -u +%Y-%m-%dT%H-%M-%S)
mkdir -p "$out" || exit 1

status=0
IFS=, read -r -a list <<<"$transports"
for t in "${list[@]}"; do
    echo "== profile $t: $bench --transports $t --procs 1x1 --seconds $seconds"
    if ! "$perf" record -a -g -q -o "$out/$t.data" -- \
        "$bench" --transports "$t" --procs 1x1 --repeats 1 --seconds "$seconds" --warmup 0.5 \
        --no-raw --no-sweep --no-scaling --no-shop --no-plots --no-peer --idle-rate 0 \
        --out "$out/$t-bench" >"$out/$t-bench.log" 2>&1; then
        echo "profile $t: the run failed; see $out/$t-bench.log" >&2
        status=1
        continue
    fi
    "$perf" report -i "$out/$t.data" --stdio --no-children --sort comm,dso,symbol \
        --percent-limit 1 -g none >"$out/$t.txt" 2>/dev/null
    grep -v '^#' "$out/$t.txt" | grep -v '^$' | head -n 15
done
echo "profile: reports in $out (perf report -i $out/<transport>.data for the call graphs)"
exit $status
