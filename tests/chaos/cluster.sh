#!/usr/bin/env bash
# cluster.sh — the nats transport on a 3-node NATS cluster, under faults,
# then every order checked.
#
# Three nats-server nodes, each in a network namespace of its own joined to
# a bridge by a veth link this script makes (traffic only to the nodes and
# the bridge it made), a broker keeping the order stream in 3 replicas, and
# customers writing a ledger of every outcome they are told.  While they
# run, in turn:
#   leader    kill -9 of the node leading the order stream, back after 5 s
#   stop      SIGSTOP of a node for 5 s
#   partition one node's link taken down for 5 s, three times
#   broker    kill -9 of the broker and all its workers, then a new broker
# Then a clean stop, and bin/ledgercheck joins the ledgers with the workers'
# journals order by order (nothing lost, duplicated or unexpected, every
# replay check, conservation); every customer must have had every answer
# (none timed out) within 30 s of the last heal; nothing may be left.
#
#   tests/chaos/cluster.sh            200,000 orders at 4,000/s (make chaos-cluster)
#   tests/chaos/cluster.sh --quick    3,000/s, two partitions (make test)
# (more orders when the faults take longer than the load would: it outlasts them)
#
# Flags: --orders N, --rate R, --faults "leader stop partition broker",
# --keep (keep the folder), --loopback (no namespaces: the nodes on
# 127.0.0.1, and no partition).  Needs root for the namespaces; where they
# cannot be made it says so and runs on loopback without the partition.
# SP_BIN_DIR names the binaries' folder (default bin/ beside tests/).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${SP_BIN_DIR:-$here/../../bin}
orders=200000 rate=4000 faults="leader stop partition broker" keep=0 loopback=0
partitions=3 down_s=5 heal_s=30
while [ $# -gt 0 ]; do
    case $1 in
    --quick) orders=0 rate=3000 partitions=2 ;;
    --orders) orders=$2; shift ;;
    --rate) rate=$2; shift ;;
    --faults) faults=$2; shift ;;
    --keep) keep=1 ;;
    --loopback) loopback=1 ;;
    *) echo "usage: $0 [--quick] [--orders N] [--rate R] [--faults LIST] [--keep] [--loopback]" >&2
       exit 2 ;;
    esac
    shift
done
server=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$server" ] || { echo "cluster: FAILED: nats-server is not installed (make deps)" >&2; exit 1; }

tag=$$
tmp=$(mktemp -d "/tmp/sp-cluster-$tag-XXXXXX")
instance="sp-cluster-$tag"
bridge="spbr$((tag % 100000))"
net="10.$((200 + tag % 50)).$(((tag / 50) % 250))"
user=sp
pass="pw$tag$RANDOM"
declare -a node_pid node_ip node_ns node_link
broker_pid='' load_pid=''
now_ms() { date +%s%3N; }
log() { echo "cluster: $*"; }
# the end of a log, or from its sanitizer report on, when it holds one
show_err() {
    local at
    at=$(grep -n -m1 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$1" 2>/dev/null | cut -d: -f1)
    if [ -n "$at" ]; then sed -n "$at,$((at + 40))p" "$1" >&2; else tail -n 5 "$1" >&2; fi
}

cleanup() {
    [ -n "$load_pid" ] && kill -9 "$load_pid" 2>/dev/null
    if [ -n "$broker_pid" ]; then
        kill -CONT "$broker_pid" 2>/dev/null
        kill -INT "$broker_pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$broker_pid" 2>/dev/null
    fi
    "$bin/broker" --instance "$instance" --clean >/dev/null 2>&1
    for i in 0 1 2; do
        [ -n "${node_pid[$i]:-}" ] && { kill -CONT "${node_pid[$i]}"; kill -9 "${node_pid[$i]}"; } 2>/dev/null
    done
    wait 2>/dev/null
    if [ "$loopback" -eq 0 ]; then
        for i in 0 1 2; do ip netns del "${node_ns[$i]:-none}" 2>/dev/null; done
        ip link del "$bridge" 2>/dev/null
    fi
    if [ "$keep" -eq 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
# a reader gone (a test timed out): the cleanup still runs, writes just fail
trap '' PIPE

# --- the network: a bridge, and each node in a namespace on a veth link ------
make_net() {
    ip link add "$bridge" type bridge || return 1
    ip addr add "$net.1/24" dev "$bridge" && ip link set "$bridge" up || return 1
    for i in 0 1 2; do
        node_ns[$i]="spns$tag-$i"
        node_link[$i]="spv${tag}h$i"
        node_ip[$i]="$net.$((10 + i))"
        ip netns add "${node_ns[$i]}" || return 1
        ip link add "${node_link[$i]}" type veth peer name "spv${tag}n$i" || return 1
        ip link set "spv${tag}n$i" netns "${node_ns[$i]}" || return 1
        ip link set "${node_link[$i]}" master "$bridge" up || return 1
        ip netns exec "${node_ns[$i]}" ip addr add "${node_ip[$i]}/24" dev "spv${tag}n$i" || return 1
        ip netns exec "${node_ns[$i]}" ip link set "spv${tag}n$i" up || return 1
        ip netns exec "${node_ns[$i]}" ip link set lo up || return 1
    done
}
if [ "$loopback" -eq 0 ] && ! make_net 2>"$tmp/net.err"; then
    log "note: cannot make network namespaces here ($(head -n1 "$tmp/net.err")):" \
        "the nodes run on 127.0.0.1 and the partition round is left out"
    for i in 0 1 2; do ip netns del "spns$tag-$i" 2>/dev/null; done
    ip link del "$bridge" 2>/dev/null
    loopback=1
fi
if [ "$loopback" -eq 1 ]; then
    faults=${faults//partition/}
    base=$((24000 + (tag * 7) % 5000))
    for i in 0 1 2; do node_ip[$i]=127.0.0.1; done
fi
port() { if [ "$loopback" -eq 1 ]; then echo $((base + $1 * 10 + $2)); else echo $((4222 + $2 * 2000)); fi; }
client_port() { port "$1" 0; }   # 4222
route_port() { port "$1" 1; }    # 6222
mon_port() { port "$1" 2; }      # 8222

start_node() {
    local i=$1 routes='' k
    for k in 0 1 2; do
        [ "$k" -ne "$i" ] && routes="$routes${routes:+,}nats://${node_ip[$k]}:$(route_port "$k")"
    done
    local -a run=()
    [ "$loopback" -eq 0 ] && run=(ip netns exec "${node_ns[$i]}")
    "${run[@]}" "$server" -js -n "n$((i + 1))" -a "${node_ip[$i]}" -p "$(client_port "$i")" \
        -m "$(mon_port "$i")" -sd "$tmp/n$i" --user "$user" --pass "$pass" \
        --cluster_name spc --cluster "nats://${node_ip[$i]}:$(route_port "$i")" --routes "$routes" \
        >>"$tmp/n$i.log" 2>&1 &
    node_pid[$i]=$!
    local deadline=$(($(now_ms) + 10000))
    until (exec 3<>"/dev/tcp/${node_ip[$i]}/$(client_port "$i")") 2>/dev/null; do
        if ! kill -0 "${node_pid[$i]}" 2>/dev/null || [ "$(now_ms)" -ge "$deadline" ]; then
            log "FAILED: node n$((i + 1)) did not come up:"; tail -n 5 "$tmp/n$i.log" >&2
            return 1
        fi
        sleep 0.05
    done
}
for i in 0 1 2; do start_node "$i" || exit 1; done
urls=''
for i in 0 1 2; do urls="$urls${urls:+,}nats://${node_ip[$i]}:$(client_port "$i")"; done
printf '%s %s\n' "$user" "$pass" >"$tmp/auth" && chmod 600 "$tmp/auth"

# The node (0..2) leading the instance's order stream, from a node's
# monitoring endpoint, or "" when none answers.
leader() {
    local i
    for i in 0 1 2; do
        python3 - "${node_ip[$i]}" "$(mon_port "$i")" "SP_$instance" <<'EOF' && return 0
import json, sys, urllib.request
ip, port, stream = sys.argv[1:4]
try:
    with urllib.request.urlopen(f"http://{ip}:{port}/jsz?accounts=true&streams=true", timeout=2) as r:
        jsz = json.load(r)
except Exception:
    sys.exit(1)
for acct in jsz.get("account_details") or []:
    for s in acct.get("stream_detail") or []:
        leader = (s.get("cluster") or {}).get("leader", "")
        if s.get("name") == stream and leader.startswith("n"):
            print(int(leader[1:]) - 1)
            sys.exit(0)
sys.exit(1)
EOF
    done
    return 1
}

# --- the shop ------------------------------------------------------------------
catalogue=$tmp/catalogue.csv
{
    echo "id_reg,name,category,weight,price,expiry,stock"
    for i in $(seq 1 20); do echo "$i,Product $i,Cluster,0.5,10,2030-01-01,1000000"; done
} >"$catalogue"
state=$tmp/state ledgers=$tmp/ledgers
mkdir -p "$ledgers"
start_broker() {
    "$bin/broker" --instance "$instance" --nats "$urls" --nats-auth "$tmp/auth" \
        --nats-replicas 3 --workers 2 --catalogue "$catalogue" --state-dir "$state" \
        --keep-journal >>"$tmp/broker.log" 2>&1 &
    broker_pid=$!
    local deadline=$(($(now_ms) + 30000)) ready=$(($(grep -c " ready:" "$tmp/broker.log") + 1))
    until [ "$(grep -c " ready:" "$tmp/broker.log")" -ge "$ready" ]; do
        if ! kill -0 "$broker_pid" 2>/dev/null || [ "$(now_ms)" -ge "$deadline" ]; then
            log "FAILED: the broker did not become ready:"; tail -n 5 "$tmp/broker.log" >&2
            return 1
        fi
        sleep 0.05
    done
}
start_broker || exit 1
# the load outlasts the faults: each round's seconds (with the node's
# restart and the leader lookups), plus a margin, so that every round runs
# while orders flow even when a fault does not slow the load down
span=8
for f in $faults; do
    case $f in
    leader) span=$((span + down_s + 8)) ;;
    stop) span=$((span + down_s + 5)) ;;
    partition) span=$((span + partitions * (down_s + 3) + 3)) ;;
    broker) span=$((span + 10)) ;;
    esac
done
[ $((rate * span)) -gt "$orders" ] && orders=$((rate * span))
log "instance $instance on $urls${loopback:+ }$([ "$loopback" -eq 1 ] && echo '(loopback)'), $orders orders at $rate/s, faults: $faults"

"$bin/producer" --instance "$instance" --connect "$urls" --nats-auth "$tmp/auth" --customers 3 \
    --count "$orders" --rate "$rate" --restock 0.3 --qty 1-3 --seed "$tag" --ledger-out "$ledgers" \
    --timeout 120s \
    --json >"$tmp/producer.json" 2>"$tmp/producer.err" &
load_pid=$!
start=$(now_ms)
sleep 2 # into the load
last_heal=$(now_ms) fail=0
for f in $faults; do
    kill -0 "$load_pid" 2>/dev/null || { log "FAILED: the load ended before the $f round"; fail=1; break; }
    case $f in
    leader)
        l=$(leader) || { log "FAILED: no node says who leads the order stream"; fail=1; continue; }
        log "leader: kill -9 n$((l + 1)), the stream's leader"
        kill -9 "${node_pid[$l]}"; wait "${node_pid[$l]}" 2>/dev/null
        sleep "$down_s"
        start_node "$l" || fail=1
        ;;
    stop)
        l=$(leader) || l=0
        log "stop: SIGSTOP n$((l + 1)) for ${down_s}s"
        kill -STOP "${node_pid[$l]}"; sleep "$down_s"; kill -CONT "${node_pid[$l]}"
        ;;
    partition)
        l=$(leader) || l=0
        for r in $(seq "$partitions"); do
            log "partition $r: n$((l + 1))'s link down for ${down_s}s"
            ip link set "${node_link[$l]}" down; sleep "$down_s"; ip link set "${node_link[$l]}" up
            sleep 2
        done
        ;;
    broker)
        log "broker: kill -9 of the broker and its workers, then a new broker"
        workers=$(pgrep -f -- "consumer --instance $instance --worker-id" | tr '\n' ' ')
        kill -9 "$broker_pid" $workers 2>/dev/null
        wait "$broker_pid" 2>/dev/null
        sleep 1
        start_broker || fail=1
        ;;
    esac
    last_heal=$(now_ms)
    sleep 2
done

# every answer within heal_s of the last heal (the load's own pace aside)
paced_end=$((start + orders * 1000 / rate))
[ "$paced_end" -gt "$last_heal" ] && last_heal=$paced_end
while kill -0 "$load_pid" 2>/dev/null && [ "$(now_ms)" -lt $((last_heal + heal_s * 1000)) ]; do
    sleep 0.2
done
if kill -0 "$load_pid" 2>/dev/null; then
    log "FAILED: customers still waiting ${heal_s}s after the last heal"
    kill -9 "$load_pid"; fail=1
fi
wait "$load_pid"; load_rc=$?; load_pid=''
json_num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$2" | head -n1; }
sent=$(json_num sent "$tmp/producer.json")
timed_out=$(json_num timed_out "$tmp/producer.json")
log "customers: exit $load_rc, sent ${sent:-?}, timed out ${timed_out:-?}, resent $(json_num retried "$tmp/producer.json")"
if [ "$load_rc" -ne 0 ] || [ "${timed_out:-1}" != 0 ] || [ "${sent:-0}" != "$orders" ]; then
    log "FAILED: not every order was answered"; show_err "$tmp/producer.err"; fail=1
fi

kill -INT "$broker_pid"
wait "$broker_pid"; broker_rc=$?; broker_pid=''
[ "$broker_rc" -eq 0 ] || { log "FAILED: the broker exited $broker_rc"; show_err "$tmp/broker.log"; fail=1; }

# a ledger is complete only when its customers ended normally
complete=--complete-ledgers
[ "$load_rc" -eq 0 ] || complete=--ledgers
checked=$("$bin/ledgercheck" --catalogue "$catalogue" --final "$state/$instance/table.csv" \
    --journal "$state/$instance/journal" "$complete" "$ledgers" 2>&1)
check_rc=$?
while IFS= read -r line; do log "ledgercheck: $line"; done <<<"$checked"
[ $check_rc -eq 0 ] || { log "FAILED: ledgercheck exited $check_rc"; fail=1; }

left=$(ls /dev/shm /dev/mqueue 2>/dev/null | grep -F "$instance" || true)
[ -z "$left" ] || { log "FAILED: left behind: $left"; fail=1; }
[ $fail -eq 0 ] && log "ok: $orders orders through faults ($faults), lost 0, duplicated 0"
exit $fail
