#!/usr/bin/env bash
# The cluster demo behind `make run-cluster`: a 3-node NATS cluster on
# loopback (scripts/nats-cluster.sh: generated config files, stores and a
# password under the run folder), two shard brokers on the nats transport
# (products 1-5 and 6-10 of data/products.csv, orders kept in 3 replicas),
# remote-style customers (--connect nats://..., each in a mount namespace of
# its own with an empty /dev/shm, so they cannot see a table), the merged
# monitor while they run, a shard's table read by a monitor through the
# NATS servers alone (the same namespace), then the audit: each shard's journal against the
# customers' ledgers (bin/ledgercheck: nothing lost, nothing duplicated,
# conservation exact).  Stops everything and leaves nothing behind; the run
# folder (run/cluster-PID/, git-ignored) is removed unless KEEP=1.
#
#   DURATION=10 CUSTOMERS=3 RATE=300 make run-cluster
set -uo pipefail

bin=${SP_BIN_DIR:-bin}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=broker-ready.sh
source "$here/broker-ready.sh"
duration=${DURATION:-10}
customers=${CUSTOMERS:-3}
rate=${RATE:-300}
keep=${KEEP:-0}
if ! [[ $duration =~ ^[0-9]+$ ]] || [ "$duration" -lt 1 ]; then
    echo "run-cluster: DURATION must be a whole number of seconds, not '$duration'" >&2
    exit 2
fi
run=$PWD/run/cluster-$$
shards=(shop-a-$$ shop-b-$$)
ranges=(1-5 6-10)
declare -a broker_pid
monitor_pid=''
cleanup() {
    [ -n "$monitor_pid" ] && kill -INT "$monitor_pid" 2>/dev/null && wait "$monitor_pid" 2>/dev/null
    for i in 0 1; do
        if [ -n "${broker_pid[$i]:-}" ] && kill -0 "${broker_pid[$i]}" 2>/dev/null; then
            kill -INT "${broker_pid[$i]}"
            wait "${broker_pid[$i]}"
        fi
        "$bin/broker" --instance "${shards[$i]}" --clean >/dev/null 2>&1 || true
    done
    bash "$here/nats-cluster.sh" stop "$run/nats"
    if [ "$keep" = 1 ]; then echo "== kept $run"; else rm -rf "$run"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
# a reader gone (a test timed out): the cleanup still runs, writes just fail
trap '' PIPE
mkdir -p "$run/nats" "$run/ledgers" || exit 1

echo "== a 3-node NATS cluster on loopback (config and store under $run/nats)"
urls=$(bash "$here/nats-cluster.sh" start "$run/nats" 3) || exit 1
echo "   $urls (clients need the password in $run/nats/auth)"

for i in 0 1; do
    # each shard's own catalogue: its rows of data/products.csv
    lo=${ranges[$i]%-*} hi=${ranges[$i]#*-}
    awk -F, -v lo="$lo" -v hi="$hi" 'NR == 1 || ($1 >= lo && $1 <= hi)' data/products.csv \
        >"$run/catalogue-$i.csv"
    "$bin/broker" --instance "${shards[$i]}" --nats "$urls" --nats-auth "$run/nats/auth" \
        --nats-replicas 3 --workers 2 --products "${ranges[$i]}" --catalogue "$run/catalogue-$i.csv" \
        --state-dir "$run/state" --keep-journal --fresh >"$run/broker-$i.log" 2>&1 &
    broker_pid[$i]=$!
done
for i in 0 1; do
    if ! wait_broker_ready "${shards[$i]}" "$run/broker-$i.log" "${broker_pid[$i]}"; then
        echo "run-cluster: the broker of ${shards[$i]} did not become ready (its log above)" >&2
        exit 1
    fi
done
echo "== shards: ${shards[0]} (products ${ranges[0]}), ${shards[1]} (products ${ranges[1]})"

# the merged monitor, one line per stock change, while the customers run
"$bin/monitor" --instance "${shards[0]},${shards[1]}" --plain --interval 2000 \
    > >(sed -u 's/^/monitor | /') 2>&1 &
monitor_pid=$!

# customers that reach the shop only through the NATS servers
unseen=()
if unshare --mount --propagation private sh -c 'mount -t tmpfs tmpfs /dev/shm' 2>/dev/null; then
    unseen=(unshare --mount --propagation private sh -c
        'mount -t tmpfs -o mode=1777 tmpfs /dev/shm && exec "$@"' sh)
    echo "== $customers customers at $rate orders/s for ${duration}s, in a mount namespace" \
         "without the tables, over --connect nats://"
else
    echo "== $customers customers at $rate orders/s for ${duration}s over --connect nats://" \
         "(this machine refuses mount namespaces: they share /dev/shm, unused)"
fi
"${unseen[@]}" "$bin/producer" --connect "$urls" --nats-auth "$run/nats/auth" \
    --instance "${shards[0]},${shards[1]}" --customers "$customers" --rate "$rate" \
    --duration "$duration" --restock 0.35 --qty 1-3 --batch 4 --timeout 60s \
    --ledger-out "$run/ledgers" >"$run/report.txt" 2>&1
status=$?
kill -INT "$monitor_pid" 2>/dev/null
wait "$monitor_pid" 2>/dev/null
monitor_pid=''
echo
echo "== report"
cat "$run/report.txt"
# a monitor on a host that has only the NATS servers: the broker's events
# and snapshots come through them
echo "== ${shards[0]}'s table through the NATS servers alone (monitor --connect nats://)"
if ! "${unseen[@]}" "$bin/monitor" --connect "$urls" --nats-auth "$run/nats/auth" \
    --instance "${shards[0]}" --once >"$run/remote-table.txt" 2>&1; then
    echo "run-cluster: the monitor over NATS failed" >&2
    status=1
fi
sed "s/^/${shards[0]} via nats | /" "$run/remote-table.txt"
for i in 0 1; do
    kill -INT "${broker_pid[$i]}"
    wait "${broker_pid[$i]}" 2>/dev/null
    broker_pid[$i]=''
    sed "s/^/shard $i | /" "$run/broker-$i.log"
done
echo
echo "== audit: each shard's journal against the customers' ledgers"
for i in 0 1; do
    s=${shards[$i]}
    ledgers=$run/ledgers/$s
    [ -d "$ledgers" ] || ledgers=$run/ledgers
    if ! "$bin/ledgercheck" --catalogue "$run/catalogue-$i.csv" --final "$run/state/$s/table.csv" \
        --journal "$run/state/$s/journal" --complete-ledgers "$ledgers" | sed "s/^/$s: /"; then
        status=1
    fi
done
left=0
for s in "${shards[@]}"; do
    left=$((left + $(ls /dev/shm /dev/mqueue 2>/dev/null | grep -c "^$s\." || true)))
done
echo "== leftovers of the shards in /dev/shm and /dev/mqueue: $left"
[ "$left" -eq 0 ] || status=1
exit $status
