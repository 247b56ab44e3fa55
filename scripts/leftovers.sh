#!/usr/bin/env bash
# Lists stockpipe's IPC objects in /dev/shm and the mqueue namespace.
#   leftovers.sh snapshot FILE   record what exists now
#   leftovers.sh compare FILE    fail, naming them, if anything new appeared
# Objects made by tests and demos carry "sp" in their instance name; we only
# look at names that did not exist before the run, so a user's own pipeline
# running beside the tests is never blamed.
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
    new=$(comm -13 "$file" <(list))
    if [ -n "$new" ]; then
        echo "leftovers: IPC objects left behind:" >&2
        echo "$new" >&2
        exit 1
    fi ;;
esac
