#!/usr/bin/env bash
# The pipeline demo behind `make run`: a broker with two workers, simulated
# customers for DURATION seconds over TRANSPORT (mq, zmq or shm), the monitor while
# it runs — full-screen when the demo runs on a terminal, line mode otherwise
# (or with PLAIN=1) — then the report (counts, throughput, latency, the final
# table, the conservation audit).  Exits non-zero if the audit fails.
# Leaves nothing of the instance in /dev/shm or the mqueue namespace, and
# removes its state folder run/<instance>/ at the end (KEEP=1 keeps it: the
# final table and, with --keep-journal, the journal).
set -uo pipefail

bin=${SP_BIN_DIR:-bin}
duration=${DURATION:-10}
transport=${TRANSPORT:-mq}
customers=${CUSTOMERS:-4}
rate=${RATE:-40}
instance="spdemo-$$"
console=0
if [ -t 0 ] && [ -t 1 ] && [ -z "${CI:-}" ] && [ -z "${PLAIN:-}" ]; then
    console=1
fi

case $transport in
mq | zmq | shm) ;;
*) echo "demo: TRANSPORT must be mq, zmq or shm, not '$transport'" >&2; exit 2 ;;
esac
if ! [[ $duration =~ ^[0-9]+$ ]] || [ "$duration" -lt 1 ]; then
    echo "demo: DURATION must be a whole number of seconds, not '$duration'" >&2
    exit 2
fi

broker_pid= monitor_pid= report= brokerlog=
cleanup() {
    rm -f "$report" "$report.status" "$brokerlog"
    [ -n "$monitor_pid" ] && kill -INT "$monitor_pid" 2>/dev/null && wait "$monitor_pid" 2>/dev/null
    if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -INT "$broker_pid"
        wait "$broker_pid"
    fi
    "$bin/broker" --instance "$instance" --clean >/dev/null 2>&1 || true
    # one demo, one folder: removed unless asked to keep it (they piled up)
    if [ "${KEEP:-0}" = 1 ]; then
        [ -d "run/$instance" ] && echo "== kept run/$instance"
    else
        rm -rf "run/$instance"
    fi
}
trap cleanup EXIT
# Ctrl-C reaches every process of the terminal's group: the monitor and the
# customers stop, the customers print the report of what they did, and the
# demo shows it before it ends (the broker runs in its own session, so the
# audit still has its table to read).
interrupted=0
trap 'interrupted=1' INT
trap 'exit 143' TERM
# waits for a background process even when Ctrl-C interrupts the wait
wait_for() {
    local st=0
    while kill -0 "$1" 2>/dev/null; do
        wait "$1"
        st=$?
    done
    return $st
}

echo "== stockpipe demo: instance $instance, transport $transport, 2 workers," \
     "$customers customers at $rate orders/s for ${duration}s"
report=$(mktemp)
brokerlog=$(mktemp)
load() {
    "$bin/producer" --instance "$instance" --customers "$customers" --rate "$rate" \
        --arrival poisson --duration "$duration" --restock 0.35 --qty 1-3 --batch 4 \
        --audit --table
}

if [ $console -eq 1 ]; then
    # the console owns the terminal: everything else writes to files
    setsid "$bin/broker" --instance "$instance" --fresh --workers 2 --transport "$transport" \
        --catalogue data/products.csv 2>"$brokerlog" &
    broker_pid=$!
    # customers, then the broker's shutdown, whose end of stream closes the console
    ( load >"$report" 2>&1; echo $? >"$report.status"; kill -INT "$broker_pid" ) &
    runner=$!
    "$bin/monitor" --instance "$instance"
    if kill -0 "$runner" 2>/dev/null && [ $interrupted -eq 0 ]; then
        echo "== console closed; waiting for the customers to finish"
    fi
    wait_for "$runner"
    status=$(cat "$report.status" 2>/dev/null || echo 1)
    rm -f "$report.status"
    wait_for "$broker_pid"
    broker_pid=
    cat "$brokerlog" >&2
else
    setsid "$bin/broker" --instance "$instance" --fresh --workers 2 --transport "$transport" \
        --catalogue data/products.csv &
    broker_pid=$!
    # the monitor waits for the broker to be ready, then prints one line per change
    "$bin/monitor" --instance "$instance" --plain > >(sed -u 's/^/monitor | /') &
    monitor_pid=$!
    load >"$report"
    status=$?
    kill -INT "$monitor_pid" 2>/dev/null
    wait_for "$monitor_pid" 2>/dev/null
    monitor_pid=
fi
echo
if [ $interrupted -eq 1 ]; then
    echo "== report (interrupted: what the customers did until Ctrl-C)"
else
    echo "== report"
fi
cat "$report"
rm -f "$report" "$brokerlog"
if [ -n "$broker_pid" ]; then
    kill -INT "$broker_pid" 2>/dev/null
    wait_for "$broker_pid"
    broker_pid=
fi
leftovers=$(ls /dev/shm 2>/dev/null | grep -c "^$instance\." || true)
echo "== leftovers of $instance in /dev/shm: $leftovers"
[ $interrupted -eq 1 ] && exit 130
exit $status
