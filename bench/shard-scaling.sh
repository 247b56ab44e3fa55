#!/usr/bin/env bash
# Shard scaling over the nats transport: the same catalogue split across
# 1, 2 and 4 shard brokers (each its own table, stream, workers and
# journal, docs/SHARDING.md) on NATS servers this script starts, with
# customers that route each order to its shard (producer --instance
# A,B,...).  Closed loop, as fast as the window allows; each point is the
# median of REPEATS runs, with their spread, and its ratio to one shard.
#
#   bench/shard-scaling.sh                          1, 2, 4 shards, 1 node
#   SHARDS="1 2 4 8" NODES=3 REPLICAS=3 bench/shard-scaling.sh
#
# Settings (environment): SHARDS (default "1 2 4"), PRODUCTS (1000, split
# evenly), WORKERS per shard (1), CUSTOMERS per shard (1), BATCH (32),
# WINDOW orders in flight per customer (4096), RUN_SECONDS per run (3),
# REPEATS (3), NODES (1 or 3), REPLICAS (1, or 3 with NODES=3).  Prints
# one table row per shard count; stops everything and removes its folder
# (run/shards-PID/, git-ignored; KEEP=1 keeps it).  Every process shares
# this machine's cores with the NATS servers: on a machine with fewer
# cores than they need, more shards only share the same cores.
set -uo pipefail

bin=${SP_BIN_DIR:-bin}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../scripts/broker-ready.sh
source "$here/../scripts/broker-ready.sh"
shard_counts=${SHARDS:-1 2 4}
products=${PRODUCTS:-1000}
workers=${WORKERS:-1}
per_shard_customers=${CUSTOMERS:-1}
batch=${BATCH:-32}
window=${WINDOW:-4096}
seconds=${RUN_SECONDS:-3}
repeats=${REPEATS:-3}
nodes=${NODES:-1}
replicas=${REPLICAS:-1}
keep=${KEEP:-0}
for v in products workers per_shard_customers batch window seconds repeats nodes replicas; do
    if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
        echo "shard-scaling: $v must be a whole number above 0, not '${!v}'" >&2
        exit 2
    fi
done
for n in $shard_counts; do
    if ! [[ $n =~ ^[1-9][0-9]*$ ]] || [ $((products % n)) -ne 0 ]; then
        echo "shard-scaling: SHARDS holds '$n': each must divide PRODUCTS ($products)" >&2
        exit 2
    fi
done

run=$PWD/run/shards-$$
declare -a pids=() names=()
cleanup() {
    for i in "${!pids[@]}"; do
        if kill -0 "${pids[$i]}" 2>/dev/null; then
            kill -INT "${pids[$i]}"
            wait "${pids[$i]}" 2>/dev/null
        fi
        "$bin/broker" --instance "${names[$i]}" --clean >/dev/null 2>&1 || true
    done
    pids=() names=()
}
finish() {
    cleanup
    bash "$here/../scripts/nats-cluster.sh" stop "$run/nats" >/dev/null 2>&1
    if [ "$keep" = 1 ]; then echo "== kept $run"; else rm -rf "$run"; fi
}
trap finish EXIT
trap 'exit 130' INT TERM HUP
# a reader gone (a test timed out): the cleanup still runs, writes just fail
trap '' PIPE
mkdir -p "$run/nats" || exit 1
urls=$(bash "$here/../scripts/nats-cluster.sh" start "$run/nats" "$nodes") || exit 1
export SP_NATS_AUTH=$run/nats/auth

# a catalogue of $products products with stock enough never to run out
bash "$here/../data/gen-catalogue.sh" "$products" |
    awk -F, 'BEGIN { OFS = "," } NR == 1 { print; next } { $NF = 1000000000; print }' \
        >"$run/catalogue.csv" || exit 1

# the median and the spread of a list of numbers
stats() { sort -n | awk '{ v[NR] = $1 } END { printf "%.0f %.0f %.0f", v[int((NR + 1) / 2)], v[1], v[NR] }'; }

echo "shard scaling: nats, $nodes node(s), $replicas replica(s), $products products," \
    "$workers worker(s) and $per_shard_customers customer(s) per shard, batch $batch," \
    "window $window, ${seconds}s x $repeats runs; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-7s %-10s %-26s %s\n' shards customers "orders/s median (min-max)" "x one shard"
base=''
for n in $shard_counts; do
    share=$((products / n))
    list=''
    for ((i = 0; i < n; i++)); do
        lo=$((i * share + 1)) hi=$(((i + 1) * share))
        name=scale-$$-$n-$i
        awk -F, -v lo="$lo" -v hi="$hi" 'NR == 1 || ($1 >= lo && $1 <= hi)' "$run/catalogue.csv" \
            >"$run/catalogue-$n-$i.csv"
        "$bin/broker" --instance "$name" --nats "$urls" --nats-replicas "$replicas" \
            --workers "$workers" --products "$lo-$hi" --catalogue "$run/catalogue-$n-$i.csv" \
            --state-dir "$run/state" --fresh >"$run/broker-$n-$i.log" 2>&1 &
        pids+=($!) names+=("$name")
        list=${list:+$list,}$name
    done
    for i in "${!names[@]}"; do
        if ! wait_broker_ready "${names[$i]}" "$run/broker-$n-$i.log" "${pids[$i]}" 60; then
            echo "shard-scaling: the broker of ${names[$i]} did not become ready (its log above)" >&2
            exit 1
        fi
    done
    customers=$((n * per_shard_customers))
    : >"$run/rates-$n"
    for ((r = 1; r <= repeats; r++)); do
        if ! "$bin/producer" --instance "$list" --customers "$customers" --batch "$batch" \
            --window "$window" --duration "${seconds}s" --restock 0.5 --timeout 60s \
            >"$run/report-$n-$r.txt" 2>&1; then
            echo "shard-scaling: the customers failed with $n shard(s):" >&2
            cat "$run/report-$n-$r.txt" >&2
            exit 1
        fi
        awk '$1 == "throughput" { print $2 }' "$run/report-$n-$r.txt" >>"$run/rates-$n"
    done
    read -r median lo hi < <(stats <"$run/rates-$n")
    base=${base:-$median}
    printf '%-7s %-10s %-26s %s\n' "$n" "$customers" "$median ($lo-$hi)" \
        "$(awk -v a="$median" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
    cleanup
done
