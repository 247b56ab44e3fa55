#!/usr/bin/env bash
# `make install` and `make uninstall`, as scripts/install.sh does them, into a
# fresh temporary DESTDIR with PREFIX=/usr/local: every file is where it
# belongs, the installed binaries run (--version, --help), `man -l` formats
# each man page without a warning, the unit template names the installed
# broker, each completion completes its flags, and uninstall leaves no file.
#   bash tests/install/install-check.sh BIN_DIR [SRC_DIR]
set -euo pipefail
bin=$(cd "${1:?usage: install-check.sh BIN_DIR [SRC_DIR]}" && pwd)
src=${2:-.}
cd "$src"
scratch=$(mktemp -d /tmp/sp-install-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
dest=$scratch/root
prefix=/usr/local
root=$dest$prefix
fail() {
    echo "install-check: $*" >&2
    exit 1
}
roles=(broker consumer monitor producer)

out=$(DESTDIR=$dest PREFIX=$prefix BINDIR=$bin bash scripts/install.sh install) ||
    fail "install failed: $out"
for r in "${roles[@]}"; do
    [ -x "$root/bin/$r" ] || fail "bin/$r not installed"
    v=$("$root/bin/$r" --version) || fail "installed $r --version failed"
    [[ $v =~ ^$r\ [^\ ]+$ ]] || fail "installed $r --version printed '$v'"
    h=$("$root/bin/$r" --help) || fail "installed $r --help failed"
    grep -q '^usage:' <<<"$h" || fail "installed $r --help printed no usage"
    page=$root/share/man/man1/$r.1
    [ -f "$page" ] || fail "man page $r.1 not installed"
    # man-db formats the page with groff; warnings go to stderr
    text=$(MANWIDTH=80 MANPAGER=cat PAGER=cat man --warnings -l "$page" 2>"$scratch/warn") ||
        fail "man -l $r.1 failed: $(cat "$scratch/warn")"
    [ ! -s "$scratch/warn" ] || fail "man -l $r.1 warns: $(cat "$scratch/warn")"
    for section in NAME SYNOPSIS OPTIONS "EXIT STATUS" ENVIRONMENT; do
        grep -q "^$section" <<<"$text" || fail "man -l $r.1 has no $section section"
    done
    grep -q -- '--version' <<<"$text" || fail "man -l $r.1 does not render --version"
    comp=$root/share/bash-completion/completions/$r
    [ -f "$comp" ] || fail "completion $r not installed"
    # complete "ROLE --" and check that --help and --version are offered
    got=$(bash -c 'source "$1"; COMP_WORDS=("$2" --); COMP_CWORD=1; f=$(complete -p "$2" | sed "s/.*-F \([^ ]*\) .*/\1/"); "$f"; printf "%s\n" "${COMPREPLY[@]}"' _ "$comp" "$r")
    grep -qx -- --help <<<"$got" && grep -qx -- --version <<<"$got" ||
        fail "completion $r offers for '--': $got"
done
for d in README.md docs/*.md; do
    cmp -s "$d" "$root/share/doc/stockpipe/$(basename "$d")" || fail "doc $d not installed"
done
unit=$root/lib/systemd/system/stockpipe-broker@.service
[ -f "$unit" ] || fail "systemd unit not installed"
grep -q "^ExecStart=$prefix/bin/broker --instance %i " "$unit" || fail "the unit does not run $prefix/bin/broker --instance %i"
grep -q '^Restart=on-failure$' "$unit" || fail "the unit does not restart on failure"
! grep -q '@PREFIX@' "$unit" || fail "the unit still says @PREFIX@"
if command -v systemd-analyze >/dev/null; then
    # an instance of the template, running the broker just installed
    sed "s|$prefix/bin/broker|$root/bin/broker|" "$unit" >"$scratch/stockpipe-broker@check.service"
    systemd-analyze verify --man=no "$scratch/stockpipe-broker@check.service" 2>"$scratch/verify" &&
        [ ! -s "$scratch/verify" ] || fail "systemd-analyze verify: $(cat "$scratch/verify")"
fi
installed=$(cd "$dest" && find . -type f | wc -l)

out=$(DESTDIR=$dest PREFIX=$prefix BINDIR=$bin bash scripts/install.sh uninstall) ||
    fail "uninstall failed: $out"
left=$(cd "$dest" && find . -type f -o -type l)
[ -z "$left" ] || fail "uninstall left: $left"
[ ! -e "$root/share/doc/stockpipe" ] || fail "uninstall left the doc folder"
echo "install-check: $installed files installed under DESTDIR$prefix, all removed by uninstall"
