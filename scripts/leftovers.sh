#!/usr/bin/env bash
# Lists stockpipe's IPC objects in /dev/shm and the mqueue namespace.
#   leftovers.sh snapshot FILE   record what exists now
#   leftovers.sh compare FILE    fail, naming them, if anything new appeared
# Objects made by tests and demos carry "sp" in their instance name; we only
# look at names that did not exist before the run, so a user's own pipeline
# running beside the tests is never blamed; one that appears during the run
# and is gone within LEFTOVERS_WAIT_S seconds (default 10) belonged to another
# run going on beside it (two test runs at once share /dev/shm).
set -uo pipefail
mode=$1 file=$2
mq_dir=/dev/mqueue
if [ ! -d "$mq_dir" ] || ! mountpoint -q "$mq_dir" 2>/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        mkdir -p "$mq_dir" && mount -t mqueue none "$mq_dir" 2>/dev/null || true
    fi
fi
list() {
    { ls -1 /dev/shm 2>/dev/null | sed 's|^|shm:|'
      if mountpoint -q "$mq_dir" 2>/dev/null; then ls -1 "$mq_dir" | sed 's|^|mq:|'; fi
    } | { grep -E '^(shm|mq):(sp|stockpipe)' || true; } | sort
}
case $mode in
snapshot) mkdir -p "$(dirname "$file")"; list > "$file"; exit 0 ;;
compare)
    # an object of another run still going on this machine (its tests
    # make and remove their own) is gone within moments; ours stay: look
    # again for up to LEFTOVERS_WAIT_S seconds before blaming any
    new=$(comm -13 "$file" <(list))
    for ((i = 0; i < ${LEFTOVERS_WAIT_S:-10} && ${#new} > 0; i++)); do
        sleep 1
        new=$(comm -12 <(echo "$new") <(comm -13 "$file" <(list)))
    done
    if [ -n "$new" ]; then
        echo "leftovers: IPC objects left behind:" >&2
        echo "$new" >&2
        exit 1
    fi ;;
esac
