#!/usr/bin/env bash
# Runs stockpipe's libFuzzer targets (built by `make fuzz`) one after another
# and prints one summary line per target.
#
#   bash tests/fuzz/run.sh BUILD_DIR TARGET...
#
# Each target runs FUZZ_TIME seconds (default 60, libFuzzer's
# -max_total_time) on its scratch corpus BUILD_DIR/corpus/TARGET, seeded
# with the committed inputs of tests/fuzz/corpus/TARGET: libFuzzer writes the
# new inputs it finds into its first directory, so that is the only one it
# is given, and the committed corpus is never rewritten.  The scratch corpus
# is kept between runs, so a second run starts where the first stopped.
# Crash, leak and timeout inputs go to BUILD_DIR/artifacts/TARGET-*; the
# full log of each target is BUILD_DIR/TARGET.log.  The summary line gives
# libFuzzer's executions, executions per (wall) second, coverage (cov: edges,
# ft: features) and corpus (units it keeps, files in the scratch directory),
# with the wall and CPU (user + system) seconds the run took.  FUZZ_ARGS adds libFuzzer
# flags (e.g. -seed=1); FUZZ_MAX_LEN (default 8192) bounds an input, so the
# CSV reader's 4096-byte record limit is reachable.
#
# Exit status: 0 when every target ran its time without a finding, 1 if any
# target crashed (or leaked, or timed out), 2 on bad usage.
set -uo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 BUILD_DIR TARGET..." >&2
    exit 2
fi
dir=$1
shift
fuzz_time=${FUZZ_TIME:-60}
max_len=${FUZZ_MAX_LEN:-8192}
input_timeout_s=25 # one input taking longer than this is a finding
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
read -r -a extra <<<"${FUZZ_ARGS:-}"

# The value after "key: " (or "key:") on the last line of $1 that has it.
s_field() {
    grep -o "$2 *[0-9]*" "$1" | tail -n 1 | grep -o '[0-9]*$'
}

mkdir -p "$dir/artifacts"
status=0
lines=()
for t in "$@"; do
    bin="$dir/fuzz-$t"
    seeds="$here/corpus/$t"
    corpus="$dir/corpus/$t"
    log="$dir/$t.log"
    if [ ! -x "$bin" ] || [ ! -d "$seeds" ]; then
        echo "fuzz: no target $t ($bin, $seeds)" >&2
        exit 2
    fi
    mkdir -p "$corpus"
    # copy the committed seeds in, keeping what earlier runs found
    for f in "$seeds"/*; do
        [ -e "$corpus/${f##*/}" ] || cp "$f" "$corpus/"
    done
    echo "fuzz: $t for ${fuzz_time}s, corpus $corpus, log $log" >&2
    TIMEFORMAT='%U %S %R'
    { time "$bin" -max_total_time="$fuzz_time" -max_len="$max_len" \
        -timeout="$input_timeout_s" -print_final_stats=1 \
        -artifact_prefix="$dir/artifacts/$t-" "${extra[@]}" "$corpus" >"$log" 2>&1; } \
        2>"$dir/$t.time"
    rc=$?
    read -r user sys real <"$dir/$t.time"
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.0f", u + s }')
    execs=$(s_field "$log" 'stat::number_of_executed_units:')
    rate=$(s_field "$log" 'stat::average_exec_per_sec:')
    cov=$(s_field "$log" 'cov:')
    ft=$(s_field "$log" 'ft:')
    units=$(s_field "$log" 'corp:')
    files=$(find "$corpus" -type f | wc -l)
    verdict=ok
    if [ "$rc" -ne 0 ]; then
        verdict="FAILED (exit $rc)"
        status=1
        tail -n 40 "$log" >&2
        grep -h 'Test unit written to' "$log" >&2
    fi
    lines+=("$(printf 'fuzz: %-5s %-16s execs %-11s exec/s %-7s wall %5.0fs cpu %5ss cov %-5s ft %-6s corpus %s units (%s files)' \
        "$t" "$verdict" "${execs:-?}" "${rate:-?}" "$real" "$cpu" "${cov:-?}" "${ft:-?}" "${units:-?}" "$files")")
done
printf '%s\n' "${lines[@]}"
exit $status
