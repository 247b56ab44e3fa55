#!/usr/bin/env bash
# busy.sh — runs a command (the suite) with CPU hogs beside it, RUNS times in
# a row, stopping at the first failure.
#
# `make test-busy` uses it: the suite must pass on a machine whose cores are
# all wanted by something else, which is where tests that sleep and then
# assert, instead of waiting for the event itself, fail.  The hogs are this
# script's own children and are always killed when it ends (a trap on EXIT,
# also on failure, Ctrl-C or SIGTERM).
#
#   tests/busy.sh [--hogs N] [--runs R] -- COMMAND...
#     --hogs N   busy loops beside the command (default 2, BUSY_HOGS)
#     --runs R   times the command must pass in a row (default 1, BUSY_RUNS)
set -uo pipefail

hogs=${BUSY_HOGS:-2} runs=${BUSY_RUNS:-1}
while [ $# -gt 0 ]; do
    case $1 in
    --hogs) hogs=${2:?}; shift ;;
    --runs) runs=${2:?}; shift ;;
    --) shift; break ;;
    *) echo "busy.sh: unknown flag '$1' (usage: busy.sh [--hogs N] [--runs R] -- COMMAND...)" >&2
       exit 2 ;;
    esac
    shift
done
[ $# -gt 0 ] || { echo "busy.sh: no command to run" >&2; exit 2; }
for v in hogs runs; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "busy.sh: --$v must be a number, not '${!v}'" >&2; exit 2; }
done

pids=()
stop_hogs() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null
    done
    pids=()
}
trap stop_hogs EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for ((i = 0; i < hogs; i++)); do
    (trap - EXIT INT TERM; while :; do :; done) &
    pids+=($!)
done
echo "busy.sh: $hogs CPU hogs running (pids ${pids[*]}); $runs run(s) of: $*"

for ((r = 1; r <= runs; r++)); do
    start=$SECONDS
    if ! "$@"; then
        echo "busy.sh: run $r of $runs FAILED after $((SECONDS - start)) s (with $hogs hogs)" >&2
        exit 1
    fi
    echo "busy.sh: run $r of $runs passed in $((SECONDS - start)) s (with $hogs hogs)"
done
