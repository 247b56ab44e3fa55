# Sourced by the scripts that start brokers in the background
# (scripts/run-cluster.sh, bench/shard-scaling.sh).
#
# wait_broker_ready INSTANCE LOG PID [SECONDS]: waits until the broker's
# log LOG says INSTANCE is ready.  Returns 1, with the log on stderr, when
# the broker (PID) exits first or SECONDS (default 30) pass.
wait_broker_ready() {
    local deadline=$(($(date +%s) + ${4:-30}))
    until grep -q "instance $1 ready" "$2"; do
        if ! kill -0 "$3" 2>/dev/null || [ "$(date +%s)" -ge "$deadline" ]; then
            cat "$2" >&2
            return 1
        fi
        sleep 0.05
    done
}
