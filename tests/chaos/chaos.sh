#!/usr/bin/env bash
# chaos.sh — workers killed at random under load, then every order checked.
#
# For each transport: a broker whose workers also kill themselves inside the
# commit now and then (SP_CRASH_COMMIT), a monitor following the stock, a
# customer load that writes a ledger of every outcome it was told, and
# `kill -9` of random workers at random moments while the load runs.  Then a
# clean stop, and bin/ledgercheck joins the customers' ledgers with the
# workers' journals order by order and replays every product (lost,
# duplicated, unexpected, versions, stock, conservation), and the monitor's
# final view must equal the saved table.  Exits non-zero if any check fails,
# fewer kills than asked happened, a time limit passed, or anything of the
# instance is left in /dev/shm or the mqueue namespace.
#
#   tests/chaos/chaos.sh            1,000,000 orders and 20 kills per transport, mq then zmq
#   tests/chaos/chaos.sh --quick    100,000 orders and 5 kills per transport (make test)
#
# The restart loop (--restart-loop, or --restarts N) kills everything instead:
# per transport, a broker with its own state folder, its workers, customers
# and a monitor all get SIGKILL at once at a random moment of the load, and
# the broker is started again on the same instance and state folder, N times.
# It must re-attach to the dead broker's table ("re-attaching"), or, in the
# rounds that lose the table (/dev/shm/NAME.table removed before the restart),
# remove the other leftovers itself and rebuild the table from its base and
# journal ("rebuilt it from"), and be ready again.  Every round has new
# customers (new producer ids, new ledgers in the same folder).  A last round
# of customers runs to its end, then a clean stop, and bin/ledgercheck over
# every ledger, every journal and the saved table: nothing lost, duplicated or
# unexpected (killed customers leave applied orders they never heard of:
# "unacknowledged applied"), replay ok, conservation exact.
#
#   tests/chaos/chaos.sh --restart-loop          100 restarts per transport
#   tests/chaos/chaos.sh --restart-loop --quick  10 restarts per transport (make test)
#
# Flags, or the same settings from the environment (flags win):
#   --transport T   TRANSPORT   mq, zmq, shm, both (mq and zmq) or all (the three);
#                               default both, in sequence (make chaos: all)
#   --orders N      ORDERS      orders per transport
#   --kills N       KILLS       external kills per transport
#   --customers N   CUSTOMERS   customer processes (default 4)
#   --workers N     WORKERS     workers (default 2)
#   --sync S        SYNC        cas, row-lock or table-lock (default cas)
#   --rate R        RATE        orders/s offered (default 25000 quick, 50000 full); the
#                               kills follow the load's progress, spread over its first half
#   --time-limit S  TIME_LIMIT  seconds per transport before giving up
#   --crash P:N     CRASH       SP_CRASH_COMMIT for the workers (default: a commit
#                               point valid for the sync at random, 1 in ORDERS/KILLS),
#                               or "off"
#   --keep          KEEP=1      keep the temporary folder (state, ledgers, logs)
#   --seed N        SEED        seeds the script's choices and the customers (default:
#                               the process id); printed, to repeat a run's choices
# Restart loop (--orders, --customers, --rate and --time-limit mean the same
# there, but their variables are RESTART_ORDERS, RESTART_CUSTOMERS,
# RESTART_RATE and RESTART_TIME_LIMIT; --kills and --crash do not apply):
#   --restart-loop              run the restart loop instead of the worker kills
#   --restarts N    RESTARTS    restarts per transport (--restarts implies
#                               --restart-loop; default 100, 10 with --quick)
#   --lose-segment              every round loses the table before the restart
#   --lose-every K  LOSE_EVERY  every K-th round loses it (default 3; 0: never)
#   --kill-after A-B KILL_AFTER the kill lands A..B ms after the customers start
#                               (default 250-700)
#   --customers defaults to 3 per round (new ones every round: 300 producers
#   over 100 rounds, more than the table's 256 producer slots, so rebuilds
#   must keep the most recent producers and free slots for new ones), --rate
#   to 8000, --time-limit to 420 (45 with --quick); --orders is the last
#   round's, which runs to its end without a kill: 4000.
#   REAPER=0        do not make this script the reaper of orphans: without it
#                   the killed workers are reaped by init, whenever it gets to it
#                   (a re-attaching broker counts zombies as dead, so it does not wait)
# SP_BIN_DIR names the binaries' folder (default bin/ beside tests/).
set -uo pipefail
# Under pipefail never pipe text into `grep -q`: grep exits at its first
# match, the writer may die of SIGPIPE on its next write, and the pipeline
# fails although the text matched.  Match a variable with a here-string.
orig_args=("$@")

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${SP_BIN_DIR:-$here/../../bin}
quick=0
transport=${TRANSPORT:-both}
orders='' kills='' customers='' rate='' time_limit='' restarts='' # flags; then by mode
workers=${WORKERS:-2}
sync=${SYNC:-cas}
crash=${CRASH:-}
keep=${KEEP:-0}
seed=${SEED:-$$}
mode='kill'
lose_every=${LOSE_EVERY:-3}
kill_after=${KILL_AFTER:-250-700}
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
    --seed) seed=${2:?}; shift ;;
    --restart-loop) mode=restart ;;
    --restarts) restarts=${2:?}; mode=restart; shift ;;
    --lose-segment) lose_every=1 ;;
    --lose-every) lose_every=${2:?}; shift ;;
    --kill-after) kill_after=${2:?}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
    shift
done
# the two modes take their settings from different variables, so that one
# environment (make chaos ORDERS=...) serves both runs.  HOLDS: the fraction
# of orders that reserve units (then buy, release or abandon them).
holds=${HOLDS:-0.1}
# snapshots (and journal epochs) while processes die; the journal files a
# snapshot contains are kept as NAME.log.kept for the checker
snapshot_every=${SNAPSHOT_EVERY:-300ms}
if ! [[ $holds =~ ^(0(\.[0-9]+)?|1(\.0+)?)$ ]]; then
    die "HOLDS must be a fraction 0..1, not '$holds'"
fi
if [ $mode = restart ]; then
    orders=${orders:-${RESTART_ORDERS:-4000}} rate=${rate:-${RESTART_RATE:-8000}}
    customers=${customers:-${RESTART_CUSTOMERS:-3}} kills=${kills:-0}
    if [ $quick -eq 1 ]; then
        restarts=${restarts:-${RESTARTS:-10}} time_limit=${time_limit:-${RESTART_TIME_LIMIT:-45}}
    else
        restarts=${restarts:-${RESTARTS:-100}} time_limit=${time_limit:-${RESTART_TIME_LIMIT:-420}}
    fi
else
    customers=${customers:-${CUSTOMERS:-4}} restarts=0
    orders=${orders:-${ORDERS:-}} kills=${kills:-${KILLS:-}} rate=${rate:-${RATE:-}}
    time_limit=${time_limit:-${TIME_LIMIT:-}}
    if [ $quick -eq 1 ]; then
        orders=${orders:-100000} kills=${kills:-5} rate=${rate:-25000} time_limit=${time_limit:-40}
    else
        orders=${orders:-1000000} kills=${kills:-20} rate=${rate:-50000} time_limit=${time_limit:-300}
    fi
fi
for v in orders kills customers workers rate time_limit seed restarts lose_every; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
if ! [[ $kill_after =~ ^([0-9]+)-([0-9]+)$ ]] || [ "${BASH_REMATCH[1]}" -gt "${BASH_REMATCH[2]}" ]
then
    die "kill-after must be MIN-MAX milliseconds, not '$kill_after'"
fi
kill_min=${BASH_REMATCH[1]} kill_max=${BASH_REMATCH[2]}
if [ $mode = restart ]; then
    [ "$restarts" -ge 1 ] || die "restarts must be at least 1"
    [ "$orders" -ge 1 ] || die "orders must be at least 1"
else
    [ "$orders" -ge 1000 ] || die "orders must be at least 1000"
fi
[ "$rate" -ge 1 ] || die "rate must be at least 1"
case $transport in
both) transports=(mq zmq) ;;
all) transports=(mq zmq shm) ;;
mq | zmq | shm) transports=("$transport") ;;
*) die "transport must be mq, zmq, shm, both (mq and zmq) or all, not '$transport'" ;;
esac
case $sync in
cas) points=(1 3 4) ;; # 2 (locked) and 5 (done) exist only with a lock
row-lock | table-lock) points=(1 2 3 4 5) ;;
*) die "sync must be cas, row-lock or table-lock, not '$sync'" ;;
esac
if [ -n "$crash" ] && [ "$crash" != off ] && ! [[ $crash =~ ^[1-5]:[0-9]+$ ]]; then
    die "crash must be POINT:ONE_IN or off, not '$crash'"
fi
roles=(broker consumer producer monitor ledgercheck)
for b in "${roles[@]}"; do
    [ -x "$bin/$b" ] || die "$bin/$b is missing: run make"
done
RANDOM=$seed

# The restart loop kills a broker with its workers: they become orphans, and
# until someone reaps them they are zombies that still answer kill(pid, 0),
# so a re-attaching broker waits for them.  A real init reaps them at once;
# some container inits only now and then.  So this script makes itself the
# reaper of its orphans (PR_SET_CHILD_SUBREAPER, kept across exec; bash reaps
# any child it gets), through perl or python3, whichever is here.
if [ $mode = restart ] && [ "${REAPER:-1}" != 0 ] && [ -z "${SP_CHAOS_REAPER:-}" ]; then
    export SP_CHAOS_REAPER=1
    if perl -e 'require "syscall.ph"' 2>/dev/null; then
        exec perl -e 'require "syscall.ph"; syscall(&SYS_prctl, 36, 1, 0, 0, 0) == 0 or
                      die "prctl: $!\n"; exec @ARGV or die "exec: $!\n"' -- \
            bash "${BASH_SOURCE[0]}" "${orig_args[@]}"
    elif python3 -c 'import ctypes' 2>/dev/null; then
        exec python3 -c 'import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:
    sys.exit("prctl: " + os.strerror(ctypes.get_errno()))
os.execvp(sys.argv[1], sys.argv[1:])' bash "${BASH_SOURCE[0]}" "${orig_args[@]}"
    fi
    echo "chaos: neither perl nor python3 here: orphans are left to init" >&2
fi

# POSIX queues live in the mqueue filesystem; mount it if we can (as scripts/leftovers.sh).
if ! mountpoint -q /dev/mqueue 2>/dev/null && [ "$(id -u)" -eq 0 ]; then
    if mkdir -p /dev/mqueue; then
        mount -t mqueue none /dev/mqueue 2>/dev/null
    fi
fi

tmp=$(mktemp -d /tmp/sp-chaos-XXXXXX) || die "cannot create a temporary folder"
instance='' broker_pid='' monitor_pid='' load_pid=''

# The run uses its own copy of the binaries (the broker starts the consumer
# beside it), so a `make` elsewhere during the run cannot swap or half-write
# one under it.  A copy taken while one was being linked fails --help: retry.
mkdir "$tmp/bin" || die "cannot create $tmp/bin"
for try in 1 2 3 4 5 0; do
    [ "$try" = 0 ] && { rm -rf "$tmp"; die "cannot take a working copy of $bin (being rebuilt?)"; }
    good=1
    for b in "${roles[@]}"; do
        cp "$bin/$b" "$tmp/bin/$b" 2>/dev/null && "$tmp/bin/$b" --help >/dev/null 2>&1 || good=0
    done
    [ $good = 1 ] && break
    sleep 1
done
bin=$tmp/bin

now_ms() {
    if [ -n "${EPOCHREALTIME:-}" ]; then
        local t=${EPOCHREALTIME/[.,]/}
        echo $((t / 1000))
    else
        date +%s%3N
    fi
}

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
    signal_load CONT # a load paused for a kill
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
trap 'echo "chaos: interrupted" >&2; exit 130' INT TERM HUP
# a reader gone (a test timed out): the cleanup still runs, writes just fail
trap '' PIPE

# The catalogue: Zipf-popular products with the same stock, sized so that the
# popular ones run out and are restocked during the run while most orders
# still succeed (about 80%), so both types and both outcomes occur throughout.
expected=$orders
if [ $mode = restart ]; then
    # the killed rounds' orders too: about rate x the mean time before the kill
    expected=$((orders + restarts * rate * (kill_min + kill_max) / 2000))
fi
stock=$((expected * 32 / 1000 > 100 ? expected * 32 / 1000 : 100))
catalogue=$tmp/catalogue.csv
{
    echo "id_reg,name,category,weight,price,expiry,stock"
    for ((i = 1; i <= products; i++)); do
        echo "$i,Product $i,Chaos,0.5,10,2030-01-01,$stock"
    done
} >"$catalogue"

json_num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$2" | head -n1; }

# Orders the broker has answered so far (accepted + out of stock), from its
# metrics endpoint (its own counters, at most 100 ms old, whoever else is
# late: a starved monitor's summaries were seconds behind); 0 before its
# first.  The broker said its port in its log ("metrics at http://...").
answered() {
    local port body
    port=$(sed -n 's|.*metrics at http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$blog" | head -n1)
    [ -n "$port" ] || { echo 0; return; }
    body=$( (exec 3<>"/dev/tcp/127.0.0.1/$port" &&
        printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && cat <&3) 2>/dev/null)
    awk '/^sp_orders_total\{outcome="(accepted|out_of_stock)"\}/ { n += $2 } END { print n + 0 }' \
        <<<"$body"
}

# The load's processes (the producer and the customers it forked) paused
# (STOP) or resumed (CONT).
signal_load() {
    local pid
    [ -n "$load_pid" ] || return 0
    for pid in "$load_pid" $(pgrep -P "$load_pid"); do
        kill "-$1" "$pid" 2>/dev/null
    done
}

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
        --snapshot-every "$snapshot_every" --metrics 0 >"$blog" 2>&1 &
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
    "$bin/monitor" --instance "$instance" --plain --quiet --final --interval 100 >"$mlog" 2>&1 &
    monitor_pid=$!

    local start end
    start=$(now_ms)
    "$bin/producer" --instance "$instance" --customers "$customers" --count "$orders" \
        --rate "$rate" --restock 0.1 --holds "$holds" --hold-time 1s --qty 1-3 --zipf 0.6 --seed "$seed" --ledger-out "$ledgers" \
        --json >"$plog" 2>"$tmp/producer-$t.err" &
    load_pid=$!

    # Kill workers at points of the load's progress, not of the clock: kill
    # K of N is due once the broker has answered about K/(N+1) of the first
    # half of the orders (its counters, from its metrics), so a busy machine
    # that slows the load or this script delays the kills with it, and the
    # last one is due while half the orders are still to come.  Should this
    # script fall so far behind that a quarter of the orders is left with
    # kills still to make, the load is paused (SIGSTOP) until they are made:
    # the kills never race the load.  A moment with no worker to kill (all
    # of them restarting) is tried again 50 ms later.
    local done_kills=0 limit_hit=0 due=0 paused=0 pauses=0 got
    local stop_at=$((start + time_limit * 1000))
    while kill -0 "$load_pid" 2>/dev/null; do
        if [ "$(now_ms)" -ge "$stop_at" ]; then
            limit_hit=1
            break
        fi
        if [ "$done_kills" -ge "$kills" ]; then
            if [ $paused -eq 1 ]; then
                signal_load CONT
                paused=0
            fi
            sleep 0.1
            continue
        fi
        if [ "$due" -eq 0 ]; then
            # a random point in the later half of this kill's share
            local share=$((orders / 2 / (kills + 1)))
            due=$(((done_kills + 1) * share - RANDOM % (share / 2 + 1)))
        fi
        got=$(answered)
        if [ "$got" -lt "$due" ]; then
            sleep 0.05
            continue
        fi
        if [ $paused -eq 0 ] && [ "$got" -ge $((orders * 3 / 4)) ]; then
            signal_load STOP
            paused=1
            pauses=$((pauses + 1))
        fi
        local -a pids
        mapfile -t pids < <(pgrep -f -- "consumer --instance $instance --worker-id" || true)
        if [ "${#pids[@]}" -eq 0 ]; then
            sleep 0.05
            continue
        fi
        local victim=${pids[RANDOM % ${#pids[@]}]}
        # a worker that has just died of the hook is a zombie until reaped:
        # killing it again would count as ours
        local state_now
        state_now=$(awk '{print $3}' "/proc/$victim/stat" 2>/dev/null)
        if [ -n "$state_now" ] && [ "$state_now" != Z ] && kill -9 "$victim" 2>/dev/null; then
            done_kills=$((done_kills + 1))
            due=0
        else
            sleep 0.05
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
         "in the commit hook ($pauses load pauses for them); $restarts restarts; producer: sent ${sent:-?}," \
         "resent ${resent:-?}, timed out ${timed_out:-?}, unexpected results ${unexpected:-?}"
    # The monitor's own final view against the saved table: they must agree.
    # A worker killed between applying an order and publishing its event
    # leaves a change no event carries; the broker counts the death in STATS
    # once it has settled what the worker left, and the monitor resyncs from
    # a snapshot (at the end of the stream, from the table it has mapped).
    local summary differ
    summary=$(grep "^summary:" "$mlog" | tail -n 1 | grep -o "gaps [0-9]*, resyncs [0-9]*")
    differ=$(awk -F, 'NR == FNR { if (FNR > 1) stock[$1] = $NF; next }
                      $1 ~ /^[0-9]+$/ && ($1 in stock) { seen++; if ($NF != stock[$1]) bad++ }
                      END { print (seen ? bad + 0 : "?") }' \
        "$state/$instance/table.csv" <(awk '{ print $1 "," $NF }' "$mlog") 2>/dev/null)
    echo "chaos $t: monitor: ${summary:-no summary}; final view differs from the table on" \
         "${differ:-?} products"
    if [ "${differ:-?}" != 0 ]; then
        echo "chaos $t: FAILED: the monitor's final view differs from the saved table on" \
             "${differ:-?} products (${summary:-no summary})" >&2
        fail=1
    fi
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
             "(they wait for the broker's answered orders, from its metrics;" \
             "last seen: ${got:-0} of $orders)" >&2
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
    elif ! grep -q "unacknowledged applied 0 " <<<"$checked"; then
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

# --- the restart loop ---------------------------------------------------------

# "1.234s" from milliseconds.
secs() { echo "$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))s"; }

# Every process of the instance now: broker, workers, customers, monitor.
all_pids() {
    pgrep -f -- "(broker|consumer|producer|monitor) --instance $instance( |$)" || true
}

# Starts the broker of the instance on its state folder; sets broker_pid.
start_broker() {
    local log=$1
    shift
    : >"$log" # before the broker runs: the waiting starts at once
    "$bin/broker" --instance "$instance" --transport "$t" --workers "$workers" --sync "$sync" \
        --catalogue "$catalogue" --state-dir "$state" --keep-journal \
        --snapshot-every "$snapshot_every" "$@" >"$log" 2>&1 &
    broker_pid=$!
}

# Waits until the broker's log says it is ready (it marks the table READY
# under its own pid, then says so); 1 if it exits or the time passes.
wait_ready() {
    local log=$1 deadline=$(($(now_ms) + $2))
    until grep -q "broker\[$broker_pid\]: instance $instance ready" "$log"; do
        if ! kill -0 "$broker_pid" 2>/dev/null || [ "$(now_ms)" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.005
    done
}

# SIGKILL to every process of the instance at once, then whatever a parent
# forked in the meantime; reaps our own children.  Sets killed, stragglers.
kill_everything() {
    local -a pids
    mapfile -t pids < <(all_pids)
    killed=${#pids[@]} stragglers=0
    local -a ours=()
    local p
    for p in "$broker_pid" "$load_pid" "$monitor_pid"; do
        [ -n "$p" ] && ours+=("$p")
    done
    [ ${#ours[@]} -gt 0 ] || [ ${#pids[@]} -gt 0 ] || return 0
    kill -9 "${ours[@]}" "${pids[@]}" 2>/dev/null
    [ ${#ours[@]} -gt 0 ] && wait "${ours[@]}" 2>/dev/null
    broker_pid='' load_pid='' monitor_pid=''
    local deadline=$(($(now_ms) + 3000))
    while mapfile -t pids < <(all_pids) && [ ${#pids[@]} -gt 0 ]; do
        stragglers=$((stragglers + ${#pids[@]}))
        kill -9 "${pids[@]}" 2>/dev/null
        if [ "$(now_ms)" -ge "$deadline" ]; then
            echo "chaos $t: processes of the instance survive SIGKILL: ${pids[*]}" >&2
            return 1
        fi
        sleep 0.01
    done
}

# The evidence of a failed round: the broker logs' last lines.
show_logs() {
    local f
    for f in "$@"; do
        [ -f "$f" ] || continue
        echo "chaos $t: --- last lines of $f:" >&2
        tail -n 8 "$f" | sed 's/^/    /' >&2
    done
}

# Answers written to the ledgers in folder $1 so far (32-byte records).
answers_in() {
    find "$1" -name 'ledger-*.bin' -printf '%s\n' | awk '{ n += $1 } END { print int(n / 32) }'
}

# Minimum, median, mean and maximum of whole numbers (ms), as text.
spread() {
    [ $# -gt 0 ] || { echo "none"; return; }
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1; s += $1 }
        END { printf "min %d, median %d, mean %d, max %d ms (%d)", v[1], v[int((NR + 1) / 2)],
              s / NR, v[NR], NR }'
}

# Runs the restart loop on one transport; prints its figures; non-zero on failure.
run_restarts() {
    t=$1
    local fail=0 why=''
    instance="sp-chaos-$$-$t"
    broker_pid='' monitor_pid='' load_pid=''
    state=$tmp/state-$t
    local ledgers=$tmp/ledgers-$t finals=$tmp/ledgers-$t-final logs=$tmp/logs-$t
    mkdir -p "$ledgers" "$finals" "$logs"
    local -a attach_ms=() rebuild_ms=()
    local reattached=0 rebuilt=0 round=0 killed=0 stragglers=0 total_killed=0 heard=0 heard_before=0
    local idle_rounds=0
    local start deadline
    start=$(now_ms)
    deadline=$((start + time_limit * 1000))
    echo "== chaos restarts $t: instance $instance, $restarts restarts, $customers customers" \
         "per round at $rate/s killed after ${kill_min}-${kill_max} ms, $workers workers," \
         "sync $sync, table lost every ${lose_every} rounds, seed $seed"

    local blog=$logs/broker-0.log
    start_broker "$blog" --fresh
    if ! wait_ready "$blog" 10000; then
        echo "chaos restarts $t: FAILED: the first broker did not become ready" >&2
        show_logs "$blog"
        fail=1
    fi
    while [ $fail -eq 0 ] && [ $round -lt "$restarts" ]; do
        round=$((round + 1))
        if [ "$(now_ms)" -ge "$deadline" ]; then
            why="the time limit of ${time_limit}s passed after $((round - 1)) restarts"
            fail=1
            break
        fi
        # a load that cannot end by itself before the kill
        "$bin/monitor" --instance "$instance" --plain --quiet >"$logs/monitor-$round.log" 2>&1 &
        monitor_pid=$!
        "$bin/producer" --instance "$instance" --customers "$customers" \
            --count $((rate * 20 + customers)) --rate "$rate" --restock 0.1 --holds "$holds" --hold-time 1s --qty 1-3 --zipf 0.6 \
            --seed $((seed + round)) --ledger-out "$ledgers" --json \
            >"$logs/producer-$round.json" 2>"$logs/producer-$round.err" &
        load_pid=$!
        local pause=$((kill_min + RANDOM % (kill_max - kill_min + 1)))
        sleep "$(secs $pause | tr -d s)"
        if ! kill -0 "$load_pid" 2>/dev/null; then
            # it ended (failed) before the kill: the round has no kill mid-flow
            why="round $round: the customers ended before the kill: $(tail -n 3 \
                "$logs/producer-$round.err" | tr '\n' ' ')"
            fail=1
        fi
        if ! kill_everything; then
            why="round $round: processes survived SIGKILL"
            fail=1
            break
        fi
        total_killed=$((total_killed + killed))
        heard=$(($(answers_in "$ledgers") - heard_before))
        heard_before=$((heard_before + heard))
        # a kill before any answer is fine once in a while (start-up), not as a rule
        [ "$heard" -gt 0 ] || idle_rounds=$((idle_rounds + 1))
        local lose=0 expect="re-attaching" what=re-attach
        if [ "$lose_every" -gt 0 ] && [ $((round % lose_every)) -eq 0 ]; then
            lose=1 expect="rebuilt it from" what=rebuild
            rm -f "/dev/shm/$instance.table"
        fi
        blog=$logs/broker-$round.log
        local t0 ms
        t0=$(now_ms)
        start_broker "$blog"
        if ! wait_ready "$blog" 30000; then
            # say whether it died or was slow, and what it said
            local how="still starting after 30 s"
            kill -0 "$broker_pid" 2>/dev/null || how="it exited"
            why="round $round ($what): the broker did not become ready ($how): $(tail -n 5 \
                "$blog" | tr '\n' ' ')"
            fail=1
            break
        fi
        ms=$(($(now_ms) - t0))
        if ! grep -q -- "$expect" "$blog"; then
            why="round $round: the broker did not $what (no '$expect' in its log)"
            fail=1
            break
        fi
        if [ $lose -eq 1 ]; then
            if ! grep -q "removed [0-9]* leftover" "$blog"; then
                why="round $round: the broker did not say it removed the dead run's leftovers"
                fail=1
                break
            fi
            rebuilt=$((rebuilt + 1))
            rebuild_ms+=("$ms")
        else
            reattached=$((reattached + 1))
            attach_ms+=("$ms")
        fi
        printf '  round %d/%d %s: killed %d processes after %d ms (%d stragglers; %d answers heard),' \
            "$round" "$restarts" "$t" "$killed" "$pause" "$stragglers" "$heard"
        printf ' %s in %d ms\n' "$what" "$ms"
    done

    # the last customers run to their end on the last restarted broker
    local final_rc=0 fplog=$logs/producer-final.json
    if [ $fail -eq 0 ]; then
        "$bin/monitor" --instance "$instance" --plain --quiet >"$logs/monitor-final.log" 2>&1 &
        monitor_pid=$!
        "$bin/producer" --instance "$instance" --customers "$customers" --count "$orders" \
            --rate "$rate" --restock 0.1 --holds "$holds" --hold-time 1s --qty 1-3 --zipf 0.6 --seed $((seed + round + 1)) \
            --ledger-out "$finals" --json >"$fplog" 2>"$logs/producer-final.err" &
        load_pid=$!
        wait "$load_pid"
        final_rc=$?
        load_pid=''
        if [ $final_rc -ne 0 ] || [ "$(json_num timed_out "$fplog")" != 0 ] ||
            [ "$(json_num unexpected "$fplog")" != 0 ]; then
            why="the last customers (no kill) exited $final_rc, timed out"
            why+=" $(json_num timed_out "$fplog"), unexpected $(json_num unexpected "$fplog"):"
            why+=" $(tail -n 3 "$logs/producer-final.err" | tr '\n' ' ')"
            fail=1
        fi
    fi
    if [ $fail -ne 0 ] && [ -e "/dev/shm/$instance.table" ]; then
        # evidence: the table as the failure left it (the clean-up removes it)
        cp --sparse=always "/dev/shm/$instance.table" "$tmp/$instance.table" 2>/dev/null
    fi
    stop_instance
    local total=$(($(now_ms) - start))
    if [ -n "$why" ]; then
        echo "chaos restarts $t: FAILED: $why" >&2
    fi
    if [ $fail -ne 0 ]; then
        show_logs "$blog" "$logs/broker-$((round > 0 ? round - 1 : 0)).log"
    fi
    if [ $fail -eq 0 ] && [ $((idle_rounds * 4)) -gt "$round" ]; then
        echo "chaos restarts $t: FAILED: in $idle_rounds of $round rounds the kill came before" \
             "any answer (raise --kill-after)" >&2
        fail=1
    fi
    if [ $fail -eq 0 ] && ! grep -q "stopped:" "$blog"; then
        echo "chaos restarts $t: FAILED: the broker did not stop cleanly" >&2
        show_logs "$blog"
        fail=1
    fi

    local checked='' check_rc=0 line
    if [ -f "$state/$instance/table.csv" ]; then
        checked=$("$bin/ledgercheck" --catalogue "$catalogue" --final "$state/$instance/table.csv" \
            --journal "$state/$instance/journal" --ledgers "$ledgers" --complete-ledgers "$finals" \
            --tables 1 2>&1)
        check_rc=$?
        while IFS= read -r line; do
            echo "chaos restarts $t: ledgercheck: $line"
        done <<<"$checked"
    else
        echo "chaos restarts $t: FAILED: no saved table, so no ledger check" >&2
        fail=1
    fi
    if [ $check_rc -ne 0 ]; then
        echo "chaos restarts $t: FAILED: ledgercheck exited $check_rc" >&2
        fail=1
    elif ! grep -q "lost 0, duplicated 0, unexpected 0," <<<"$checked" ||
        ! grep -q "replay ok, conservation exact" <<<"$checked"; then
        echo "chaos restarts $t: FAILED: the ledger check did not pass" >&2
        fail=1
    fi
    local left strays
    left=$(leftovers)
    if [ -n "$left" ]; then
        echo "chaos restarts $t: FAILED: left behind: $left" >&2
        fail=1
    fi
    strays=$(all_pids | tr '\n' ' ')
    if [ -n "$strays" ]; then
        echo "chaos restarts $t: FAILED: processes of the instance still run: $strays" >&2
        fail=1
    fi

    # figures
    local acked unacked
    acked=$(echo "$checked" | sed -n 's/^orders [0-9]*: accepted \([0-9]*\), refused \([0-9]*\),.*/\1 \2/p' |
        awk '{ print $1 + $2 }')
    unacked=$(echo "$checked" | sed -n 's/.*unacknowledged applied \([0-9]*\) .*/\1/p')
    echo "chaos restarts $t: $round rounds ($reattached re-attaches, $rebuilt rebuilds)," \
         "$total_killed processes killed ($idle_rounds rounds killed before any answer);" \
         "orders acknowledged ${acked:-?}, unacknowledged applied ${unacked:-?}; total $(secs $total)"
    echo "chaos restarts $t: broker start to ready: re-attach $(spread "${attach_ms[@]}");" \
         "rebuild $(spread "${rebuild_ms[@]}")"
    if [ $fail -ne 0 ]; then
        keep=1 # the evidence: state, journals, ledgers, every log
        echo "chaos restarts $t: FAILED; evidence kept in $tmp; repeat with: $0 --restarts" \
             "$restarts --transport $t --seed $seed --customers $customers --rate $rate" \
             "--lose-every $lose_every --kill-after $kill_after --orders $orders" >&2
    else
        echo "chaos restarts $t: ok"
    fi
    instance=
    return $fail
}

status=0
total_start=$(now_ms)
for t in "${transports[@]}"; do
    if [ $mode = restart ]; then
        run_restarts "$t" || status=1
    else
        run_one "$t" || status=1
    fi
done
total=$(($(now_ms) - total_start))
label=$([ $mode = restart ] && echo "chaos restarts" || echo chaos)
echo "== $label: ${transports[*]}: $([ $status -eq 0 ] && echo ok || echo FAILED)" \
     "in $(secs $total)"
exit $status
