#!/usr/bin/env bash
# "A stalled monitor never slows the shop": measures the workers' throughput
# with no monitor, with a monitor following every event, and with a monitor
# stopped (SIGSTOP) for STALL seconds in the middle of the load; for the
# stalled one it also checks that the missed events were counted exactly
# (received + missed = accepted orders), that it resynced on its own, and that
# its final table equals the broker's.
#
#   bench/monitor-stall.sh [TRANSPORT] [REPEATS]      (make stall-check)
#
# Environment: STALL (10), LOAD (14, seconds of load), CUSTOMERS (2),
# WORKERS (2), PRODUCTS (1000), SP_BIN_DIR (bin).  Prints one line per run and
# the medians (with min-max) per mode.
set -uo pipefail

bin=${SP_BIN_DIR:-bin}
transport=${1:-mq}
repeats=${2:-3}
stall=${STALL:-10}
load_s=${LOAD:-14}
customers=${CUSTOMERS:-2}
workers=${WORKERS:-2}
products=${PRODUCTS:-1000}
tmp=$(mktemp -d)
instance=
cleanup() {
    [ -n "$instance" ] && "$bin/broker" --instance "$instance" --clean >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
# a reader gone (a test timed out): the cleanup still runs, writes just fail
trap '' PIPE

case $transport in mq | zmq) ;; *) echo "TRANSPORT must be mq or zmq" >&2; exit 2 ;; esac
if [ "$load_s" -le $((stall + 2)) ]; then
    echo "LOAD ($load_s) must exceed STALL ($stall) by more than 2 s" >&2
    exit 2
fi
bash data/gen-catalogue.sh "$products" 1000000 7 >"$tmp/cat.csv" || exit 1

json() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$1" | tail -1; }

# one run: prints "mode orders/s [gaps resyncs exact]"
run() {
    local mode=$1 rep=$2 mon=
    instance="spstall-$$-$mode-$rep"
    "$bin/broker" --instance "$instance" --transport "$transport" --workers "$workers" \
        --catalogue "$tmp/cat.csv" --state-dir "$tmp/state" 2>"$tmp/broker.log" &
    local broker=$!
    "$bin/monitor" --instance "$instance" --once >/dev/null 2>&1 || sleep 1 # ready
    case $mode in
    running) "$bin/monitor" --instance "$instance" --plain --quiet >/dev/null 2>&1 & mon=$! ;;
    stalled)
        "$bin/monitor" --instance "$instance" --json --quiet --final >"$tmp/mon.out" 2>&1 &
        mon=$!
        ;;
    esac
    sleep 0.5
    "$bin/producer" --instance "$instance" --customers "$customers" --duration "${load_s}s" \
        --restock 0.5 --json >"$tmp/load.json" 2>"$tmp/load.err" &
    local load=$!
    if [ "$mode" = stalled ]; then
        sleep 1
        kill -STOP "$mon"
        sleep "$stall"
        kill -CONT "$mon"
    fi
    wait "$load" || { echo "producer failed: $(cat "$tmp/load.err")" >&2; }
    sleep 1
    "$bin/monitor" --instance "$instance" --once --json >"$tmp/truth.json"
    kill -INT "$broker"
    wait "$broker"
    [ -n "$mon" ] && { [ "$mode" = running ] && kill -INT "$mon" 2>/dev/null; wait "$mon"; }
    instance=
    local tput accepted
    tput=$(json "$tmp/load.json" throughput)
    accepted=$(json "$tmp/load.json" accepted)
    if [ "$mode" = stalled ]; then
        local summary gaps events resyncs stale exact=no
        summary=$(grep '"type":"summary"' "$tmp/mon.out" | tail -1)
        gaps=$(sed -n 's/.*"gaps":\([0-9]*\).*/\1/p' <<<"$summary")
        events=$(sed -n 's/.*"events":\([0-9]*\).*/\1/p' <<<"$summary")
        resyncs=$(sed -n 's/.*"resyncs":\([0-9]*\).*/\1/p' <<<"$summary")
        stale=$(sed -n 's/.*"stale":\([a-z]*\).*/\1/p' <<<"$summary")
        grep '^\[' "$tmp/mon.out" | tail -1 | cmp -s - "$tmp/truth.json" && exact=yes
        local counted=no
        [ "$((events + gaps))" = "$accepted" ] && counted=yes
        printf '%-8s %12.0f orders/s  missed %s (received %s + missed = accepted %s: %s)  resyncs %s  stale at end %s  final table exact %s\n' \
            "$mode" "$tput" "$gaps" "$events" "$accepted" "$counted" "$resyncs" "$stale" "$exact"
    else
        printf '%-8s %12.0f orders/s\n' "$mode" "$tput"
    fi
    echo "$tput" >>"$tmp/$mode.tput"
}

median() { sort -n "$1" | awk '{v[NR]=$1} END {printf "%.0f (min %.0f, max %.0f, n=%d)", v[int((NR+1)/2)], v[1], v[NR], NR}'; }

echo "== monitor stall check: $transport, $customers customers as fast as they can for ${load_s}s," \
     "$workers workers, $products products; stall ${stall}s; $repeats repeats"
echo "== machine: $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), $(uname -r)"
for rep in $(seq 1 "$repeats"); do
    for mode in none running stalled; do
        run "$mode" "$rep"
    done
done
none=$(sort -n "$tmp/none.tput" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
for mode in none running stalled; do
    med=$(sort -n "$tmp/$mode.tput" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
    printf '%-8s median %s  vs none %+.1f%%\n' "$mode" "$(median "$tmp/$mode.tput")" \
        "$(awk -v a="$med" -v b="$none" 'BEGIN {print (a / b - 1) * 100}')"
done
