#!/usr/bin/env bash
# The pipeline demo behind `make run`: a broker with two workers, simulated
# customers for DURATION seconds over TRANSPORT (mq or zmq), the monitor in
# line mode while it runs, then the report (counts, throughput, latency, the
# final table, the conservation audit).  Exits non-zero if the audit fails.
# Leaves nothing of the instance in /dev/shm or the mqueue namespace; the
# final snapshot goes to run/<instance>/ (git-ignored).
set -uo pipefail

bin=${SP_BIN_DIR:-bin}
duration=${DURATION:-10}
transport=${TRANSPORT:-mq}
customers=${CUSTOMERS:-4}
rate=${RATE:-40}
instance="spdemo-$$"

case $transport in
mq | zmq) ;;
*) echo "demo: TRANSPORT must be mq or zmq, not '$transport'" >&2; exit 2 ;;
esac
if ! [[ $duration =~ ^[0-9]+$ ]] || [ "$duration" -lt 1 ]; then
    echo "demo: DURATION must be a whole number of seconds, not '$duration'" >&2
    exit 2
fi

broker_pid= monitor_pid=
cleanup() {
    [ -n "$monitor_pid" ] && kill -INT "$monitor_pid" 2>/dev/null && wait "$monitor_pid" 2>/dev/null
    if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -INT "$broker_pid"
        wait "$broker_pid"
    fi
    "$bin/broker" --instance "$instance" --clean >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== stockpipe demo: instance $instance, transport $transport, 2 workers," \
     "$customers customers at $rate orders/s for ${duration}s"
"$bin/broker" --instance "$instance" --workers 2 --transport "$transport" \
    --catalogue data/products.csv &
broker_pid=$!

# the monitor waits for the broker to be ready, then prints one line per change
"$bin/monitor" --instance "$instance" --plain > >(sed -u 's/^/monitor | /') &
monitor_pid=$!

report=$(mktemp)
"$bin/producer" --instance "$instance" --customers "$customers" --rate "$rate" \
    --arrival poisson --duration "$duration" --restock 0.35 --qty 1-3 --batch 4 \
    --audit --table >"$report"
status=$?

kill -INT "$monitor_pid" 2>/dev/null
wait "$monitor_pid" 2>/dev/null
monitor_pid=
echo
echo "== report"
cat "$report"
rm -f "$report"
kill -INT "$broker_pid"
wait "$broker_pid"
broker_pid=
leftovers=$(ls /dev/shm 2>/dev/null | grep -c "^$instance\." || true)
echo "== leftovers of $instance in /dev/shm: $leftovers"
exit $status
