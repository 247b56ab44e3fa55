#!/usr/bin/env bash
# Each binary's flags, as its --help lists them, must be exactly the flags its
# man page (docs/man/ROLE.1, OPTIONS) and its bash completion
# (dist/bash-completion/ROLE) offer, so neither can drift from the binary.
#   bash tests/install/check-flags.sh BIN_DIR [SRC_DIR]
# --help's flags: those that start a line (after spaces, or after "-h, "),
# and those of its "usage:" lines; --help and --version are every binary's.
# Prints each difference; exits 1 if there is any.
set -euo pipefail
bin=${1:?usage: check-flags.sh BIN_DIR [SRC_DIR]}
src=${2:-.}
status=0

help_flags() {
    local out
    out=$("$bin/$1" --help) || { echo "check-flags: $1 --help failed" >&2; return 1; }
    {
        grep -oE '^[[:space:]]+(-[a-zA-Z], )?--[a-z][a-z0-9-]*' <<<"$out" | grep -oE -- '--[a-z0-9-]+$' || true
        grep -E '^usage:' <<<"$out" | grep -oE -- '--[a-z][a-z0-9-]*' || true
        printf '%s\n' --help --version
    } | sort -u
}

# the tags of the OPTIONS section's .TP entries: their \-\-flags
man_flags() {
    awk '/^\.SH OPTIONS/ {on = 1; next} /^\.SH/ {on = 0} on && tp {print} {tp = on && /^\.TP/}' \
        "$src/docs/man/$1.1" | grep -oE -- '\\-\\-[a-z0-9\\-]+' | sed 's/\\//g' | sort -u
}

# the words of the completion's flags="..." list
completion_flags() {
    sed -n '/flags="/,/"/p' "$src/dist/bash-completion/$1" | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u
}

compare() { # ROLE WHAT LIST_A LIST_B
    local only_help only_other
    only_help=$(comm -23 <(echo "$3") <(echo "$4") | tr '\n' ' ')
    only_other=$(comm -13 <(echo "$3") <(echo "$4") | tr '\n' ' ')
    if [ -n "$only_help" ]; then
        echo "check-flags: $1: in --help but not in its $2: $only_help"
        status=1
    fi
    if [ -n "$only_other" ]; then
        echo "check-flags: $1: in its $2 but not in --help: $only_other"
        status=1
    fi
}

for role in broker consumer monitor producer; do
    h=$(help_flags "$role")
    compare "$role" "man page (docs/man/$role.1)" "$h" "$(man_flags "$role")"
    compare "$role" "completion (dist/bash-completion/$role)" "$h" "$(completion_flags "$role")"
    [ $status -eq 0 ] && echo "check-flags: $role: $(wc -l <<<"$h") flags agree"
done
exit $status
