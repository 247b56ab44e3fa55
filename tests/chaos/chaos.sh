#!/usr/bin/env bash
# chaos.sh — workers killed at random under load, then every order checked.
#
# For each transport: a broker whose workers also kill themselves inside the
# commit now and then (SP_CRASH_COMMIT), a monitor following the stock, a
# customer load that writes a ledger of every outcome it was told, and
# `kill -9` of random workers at random moments while the load runs.  Then a
# clean stop, and bin/ledgercheck joins the customers' ledgers with the
# workers' journals order by order and replays every product (lost,
# duplicated, unexpected, versions, stock, conservation).  Exits non-zero if
# any check fails, fewer kills than asked happened, a time limit passed, or
# anything of the instance is left in /dev/shm or the mqueue namespace.
#
#   tests/chaos/chaos.sh            1,000,000 orders and 20 kills per transport, mq then zmq
#   tests/chaos/chaos.sh --quick    100,000 orders and 5 kills per transport (make test)
#
# Flags, or the same settings from the environment (flags win):
#   --transport T   TRANSPORT   mq, zmq or both (default both, in sequence)
#   --orders N      ORDERS      orders per transport
#   --kills N       KILLS       external kills per transport
#   --customers N   CUSTOMERS   customer processes (default 4)
#   --workers N     WORKERS     workers (default 2)
#   --sync S        SYNC        cas, row-lock or table-lock (default cas)
#   --rate R        RATE        orders/s offered, which paces the run so the kills
#                               land during the load (default 25000 quick, 50000 full)
#   --time-limit S  TIME_LIMIT  seconds per transport before giving up
#   --crash P:N     CRASH       SP_CRASH_COMMIT for the workers (default: a commit
#                               point valid for the sync at random, 1 in ORDERS/KILLS),
#                               or "off"
#   --keep          KEEP=1      keep the temporary folder (state, ledgers, logs)
# SP_BIN_DIR names the binaries' folder (default bin/ beside tests/).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${SP_BIN_DIR:-$here/../../bin}
quick=0
transport=${TRANSPORT:-both}
orders=${ORDERS:-}
kills=${KILLS:-}
customers=${CUSTOMERS:-4}
workers=${WORKERS:-2}
sync=${SYNC:-cas}
rate=${RATE:-}
time_limit=${TIME_LIMIT:-}
crash=${CRASH:-}
keep=${KEEP:-0}
products=50

usage() {
    sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}
die() {
    echo "chaos: $*" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --transport) transport=${2:?}; shift ;;
    --orders) orders=${2:?}; shift ;;
    --kills) kills=${2:?}; shift ;;
    --customers) customers=${2:?}; shift ;;
    --workers) workers=${2:?}; shift ;;
    --sync) sync=${2:?}; shift ;;
    --rate) rate=${2:?}; shift ;;
    --time-limit) time_limit=${2:?}; shift ;;
    --crash) crash=${2:?}; shift ;;
    --keep) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
    shift
done
if [ $quick -eq 1 ]; then
    orders=${orders:-100000} kills=${kills:-5} rate=${rate:-25000} time_limit=${time_limit:-40}
else
    orders=${orders:-1000000} kills=${kills:-20} rate=${rate:-50000} time_limit=${time_limit:-300}
fi
for v in orders kills customers workers rate time_limit; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
[ "$orders" -ge 1000 ] || die "orders must be at least 1000"
[ "$rate" -ge 1 ] || die "rate must be at least 1"
case $transport in
both) transports=(mq zmq) ;;
mq | zmq) transports=("$transport") ;;
*) die "transport must be mq, zmq or both, not '$transport'" ;;
esac
case $sync in
cas) points=(1 3 4) ;; # 2 (locked) and 5 (done) exist only with a lock
row-lock | table-lock) points=(1 2 3 4 5) ;;
*) die "sync must be cas, row-lock or table-lock, not '$sync'" ;;
esac
if [ -n "$crash" ] && [ "$crash" != off ] && ! [[ $crash =~ ^[1-5]:[0-9]+$ ]]; then
    die "crash must be POINT:ONE_IN or off, not '$crash'"
fi
for b in broker producer monitor ledgercheck; do
    [ -x "$bin/$b" ] || die "$bin/$b is missing: run make"
done

# POSIX queues live in the mqueue filesystem; mount it if we can (as scripts/leftovers.sh).
if ! mountpoint -q /dev/mqueue 2>/dev/null && [ "$(id -u)" -eq 0 ]; then
    if mkdir -p /dev/mqueue; then
        mount -t mqueue none /dev/mqueue 2>/dev/null
    fi
fi

tmp=$(mktemp -d /tmp/sp-chaos-XXXXXX) || die "cannot create a temporary folder"
instance='' broker_pid='' monitor_pid='' load_pid=''

now_ms() { date +%s%3N; }

# Children of the instance still running: workers, customers, monitor.
instance_pids() {
    pgrep -f -- "(consumer|producer|monitor) --instance $instance( |$)" || true
}

# Stops the load early: the customers are the producer's forked children,
# so each is asked (SIGINT: they stop sending and write their ledgers), then
# killed if it does not go within 5 s.
stop_load() {
    local deadline pid
    [ -n "$load_pid" ] || return 0
    for pid in "$load_pid" $(pgrep -f -- "producer --instance $instance( |$)"); do
        kill -INT "$pid" 2>/dev/null
    done
    deadline=$(($(now_ms) + 5000))
    while kill -0 "$load_pid" 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do
        sleep 0.1
    done
    for pid in "$load_pid" $(pgrep -f -- "producer --instance $instance( |$)"); do
        kill -9 "$pid" 2>/dev/null
    done
    wait "$load_pid" 2>/dev/null
    load_pid=''
}

# Stops what this run started, removes the instance's leftovers; idempotent.
stop_instance() {
    local deadline pid
    [ -n "$instance" ] || return 0
    stop_load
    if [ -n "$broker_pid" ]; then
        kill -INT "$broker_pid" 2>/dev/null
        deadline=$(($(now_ms) + 20000))
        while kill -0 "$broker_pid" 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do
            sleep 0.1
        done
        if kill -0 "$broker_pid" 2>/dev/null; then
            echo "chaos: broker $broker_pid did not stop in 20 s; killing it" >&2
            kill -9 "$broker_pid" 2>/dev/null
        fi
        wait "$broker_pid" 2>/dev/null
        broker_pid=
    fi
    if [ -n "$monitor_pid" ]; then
        # it ends by itself when the broker's stream ends; nudge it if not
        deadline=$(($(now_ms) + 5000))
        while kill -0 "$monitor_pid" 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do
            sleep 0.1
        done
        kill -INT "$monitor_pid" 2>/dev/null
        wait "$monitor_pid" 2>/dev/null
        monitor_pid=
    fi
    for pid in $(instance_pids); do
        kill -9 "$pid" 2>/dev/null
    done
    "$bin/broker" --instance "$instance" --clean >/dev/null 2>&1 || true
}

# What of the instance still exists: shared memory, queues, its run folder.
leftovers() {
    { ls -1 /dev/shm 2>/dev/null
      if mountpoint -q /dev/mqueue 2>/dev/null; then ls -1 /dev/mqueue; fi
    } | grep -F -- "$instance." || true
    local run_dir=${SP_RUN_DIR:-/tmp/stockpipe-$(id -u)}/$instance
    if [ -e "$run_dir" ]; then echo "$run_dir"; fi
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    stop_instance
    if [ "$keep" = 1 ]; then
        echo "chaos: kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The catalogue: Zipf-popular products with the same stock, sized so that the
# popular ones run out and are restocked during the run while most orders
# still succeed (about 80%), so both types and both outcomes occur throughout.
stock=$((orders * 32 / 1000))
catalogue=$tmp/catalogue.csv
{
    echo "id_reg,name,category,weight,price,expiry,stock"
    for ((i = 1; i <= products; i++)); do
        echo "$i,Product $i,Chaos,0.5,10,2030-01-01,$stock"
    done
} >"$catalogue"

json_num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$2" | head -n1; }

# Runs one transport; prints its figures; returns non-zero on any failure.
run_one() {
    local t=$1 fail=0
    instance="sp-chaos-$$-$t"
    broker_pid='' monitor_pid='' load_pid=''
    local state=$tmp/state-$t ledgers=$tmp/ledgers-$t
    local blog=$tmp/broker-$t.log mlog=$tmp/monitor-$t.log plog=$tmp/producer-$t.json
    mkdir -p "$ledgers"
    local hook=$crash
    if [ -z "$hook" ]; then
        hook="${points[RANDOM % ${#points[@]}]}:$((orders / (kills > 0 ? kills : 1)))"
    fi
    echo "== chaos $t: instance $instance, $orders orders at $rate/s, $customers customers," \
         "$workers workers, sync $sync, $kills kills, commit crash hook ${hook}"

    local -a env=()
    [ "$hook" != off ] && env=(SP_CRASH_COMMIT="$hook")
    env "${env[@]}" "$bin/broker" --instance "$instance" --transport "$t" --workers "$workers" \
        --sync "$sync" --catalogue "$catalogue" --state-dir "$state" --keep-journal \
        >"$blog" 2>&1 &
    broker_pid=$!
    local deadline=$(($(now_ms) + 10000))
    until grep -q "instance $instance ready" "$blog"; do
        if ! kill -0 "$broker_pid" 2>/dev/null || [ "$(now_ms)" -ge "$deadline" ]; then
            echo "chaos $t: FAILED: the broker did not become ready:" >&2
            cat "$blog" >&2
            stop_instance
            instance=''
            return 1
        fi
        sleep 0.05
    done
    "$bin/monitor" --instance "$instance" --plain --quiet --final >"$mlog" 2>&1 &
    monitor_pid=$!

    local start end
    start=$(now_ms)
    "$bin/producer" --instance "$instance" --customers "$customers" --count "$orders" \
        --rate "$rate" --restock 0.1 --qty 1-3 --zipf 0.6 --seed "$$" --ledger-out "$ledgers" \
        --json >"$plog" 2>"$tmp/producer-$t.err" &
    load_pid=$!

    # Kill workers at random moments spread over about 70% of the paced run.
    local mean=$((orders * 700 / rate / (kills > 0 ? kills : 1))) done_kills=0 limit_hit=0
    [ "$mean" -lt 100 ] && mean=100
    local stop_at=$((start + time_limit * 1000))
    while kill -0 "$load_pid" 2>/dev/null; do
        if [ "$(now_ms)" -ge "$stop_at" ]; then
            limit_hit=1
            break
        fi
        if [ "$done_kills" -ge "$kills" ]; then
            sleep 0.1
            continue
        fi
        local pause=$((mean / 2 + RANDOM % (mean + 1)))
        sleep "$((pause / 1000)).$(printf '%03d' $((pause % 1000)))"
        local -a pids
        mapfile -t pids < <(pgrep -f -- "consumer --instance $instance --worker-id" || true)
        [ "${#pids[@]}" -gt 0 ] || continue
        local victim=${pids[RANDOM % ${#pids[@]}]}
        # a worker that has just died of the hook is a zombie until reaped:
        # killing it again would count as ours
        local state_now
        state_now=$(awk '{print $3}' "/proc/$victim/stat" 2>/dev/null)
        if [ -n "$state_now" ] && [ "$state_now" != Z ]; then
            kill -9 "$victim" 2>/dev/null && done_kills=$((done_kills + 1))
        fi
    done
    if [ $limit_hit -eq 1 ]; then
        echo "chaos $t: FAILED: the load ran past the time limit of ${time_limit}s" >&2
        stop_load
        fail=1
    fi
    local load_rc=0
    if [ -n "$load_pid" ]; then
        wait "$load_pid"
        load_rc=$?
    fi
    load_pid=''

    end=$(now_ms)
    stop_instance

    # figures
    local deaths restarts hook_deaths ms sent timed_out resent unexpected
    deaths=$(grep -c "killed by signal 9" "$blog")
    restarts=$(grep -c "restarted as pid" "$blog")
    hook_deaths=$((deaths > done_kills ? deaths - done_kills : 0))
    ms=$((end - start > 0 ? end - start : 1))
    sent=$(json_num sent "$plog")
    timed_out=$(json_num timed_out "$plog")
    resent=$(json_num retried "$plog")
    unexpected=$(json_num unexpected "$plog")
    echo "chaos $t: $orders orders in $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s" \
         "($((orders * 1000 / ms)) orders/s); kills: $done_kills external + $hook_deaths" \
         "in the commit hook; $restarts restarts; producer: sent ${sent:-?}," \
         "resent ${resent:-?}, timed out ${timed_out:-?}, unexpected results ${unexpected:-?}"
    # The monitor's own final view against the saved table: informational,
    # since a worker killed before publishing its events loses them (and the
    # stream has ended, so no resync can repair the view any more).
    local summary differ
    summary=$(grep "^summary:" "$mlog" | tail -n 1 | grep -o "gaps [0-9]*, resyncs [0-9]*")
    differ=$(awk -F, 'NR == FNR { if (FNR > 1) stock[$1] = $NF; next }
                      $1 ~ /^[0-9]+$/ && ($1 in stock) { seen++; if ($NF != stock[$1]) bad++ }
                      END { print (seen ? bad + 0 : "?") }' \
        "$state/$instance/table.csv" <(awk '{ print $1 "," $NF }' "$mlog") 2>/dev/null)
    echo "chaos $t: monitor: ${summary:-no summary}; final view differs from the table on" \
         "${differ:-?} products"
    if [ "$load_rc" -ne 0 ]; then
        echo "chaos $t: FAILED: the producer exited $load_rc:" >&2
        cat "$tmp/producer-$t.err" >&2
        fail=1
    fi
    if [ "${unexpected:-1}" != 0 ]; then
        echo "chaos $t: FAILED: the customers got unexpected results" >&2
        fail=1
    fi
    if [ "$done_kills" -lt "$kills" ]; then
        echo "chaos $t: FAILED: only $done_kills of $kills kills before the load ended" \
             "(lower --rate or raise --orders)" >&2
        fail=1
    fi
    if grep -q "not restarting\|cannot restart" "$blog"; then
        echo "chaos $t: FAILED: the broker gave up on a worker:" >&2
        grep "not restarting\|cannot restart" "$blog" >&2
        fail=1
    fi
    if ! grep -q "stopped:" "$blog"; then
        echo "chaos $t: FAILED: the broker did not stop cleanly:" >&2
        tail -n 5 "$blog" >&2
        fail=1
    fi

    local checked
    checked=$("$bin/ledgercheck" --catalogue "$catalogue" --final "$state/$instance/table.csv" \
        --journal "$state/$instance/journal" --ledgers "$ledgers" 2>&1)
    local check_rc=$?
    local line
    while IFS= read -r line; do
        echo "chaos $t: ledgercheck: $line"
    done <<<"$checked"
    if [ $check_rc -ne 0 ]; then
        echo "chaos $t: FAILED: ledgercheck exited $check_rc" >&2
        fail=1
    elif ! echo "$checked" | grep -q "unacknowledged applied 0 "; then
        # nobody killed a customer here: every applied order had a listener
        echo "chaos $t: FAILED: orders applied that no customer heard about" >&2
        fail=1
    fi

    local left
    left=$(leftovers)
    if [ -n "$left" ]; then
        echo "chaos $t: FAILED: left behind: $left" >&2
        fail=1
    fi
    [ $fail -eq 0 ] && echo "chaos $t: ok"
    instance=
    return $fail
}

status=0
total_start=$(now_ms)
for t in "${transports[@]}"; do
    run_one "$t" || status=1
done
total=$(($(now_ms) - total_start))
echo "== chaos: ${transports[*]}: $([ $status -eq 0 ] && echo ok || echo FAILED)" \
     "in $((total / 1000)).$(printf '%03d' $((total % 1000)))s"
exit $status
