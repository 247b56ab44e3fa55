#!/usr/bin/env bash
# make install / make uninstall: puts stockpipe's binaries, man pages, docs,
# the broker's systemd unit template and bash completions under
# $DESTDIR$PREFIX, or removes exactly those files again.
#   bash scripts/install.sh install|uninstall
# Environment (the Makefile passes its variables):
#   PREFIX          default /usr/local
#   DESTDIR         staging root (packaging, tests); default empty
#   BINDIR          where the built binaries are (default bin)
#   MANDIR          default $PREFIX/share/man
#   DOCDIR          default $PREFIX/share/doc/stockpipe
#   SYSTEMDUNITDIR  default $PREFIX/lib/systemd/system
#   BASHCOMPDIR     default $PREFIX/share/bash-completion/completions
# Run from the source tree's root.
set -euo pipefail

action=${1:-}
case $action in
install | uninstall) ;;
*)
    echo "usage: $0 install|uninstall" >&2
    exit 2
    ;;
esac

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
BINDIR=${BINDIR:-bin}
MANDIR=${MANDIR:-$PREFIX/share/man}
DOCDIR=${DOCDIR:-$PREFIX/share/doc/stockpipe}
SYSTEMDUNITDIR=${SYSTEMDUNITDIR:-$PREFIX/lib/systemd/system}
BASHCOMPDIR=${BASHCOMPDIR:-$PREFIX/share/bash-completion/completions}
case $PREFIX in
/*) ;;
*)
    echo "install: PREFIX must be an absolute path, not '$PREFIX'" >&2
    exit 2
    ;;
esac

roles=(broker consumer monitor producer)
unit=stockpipe-broker@.service
root=$DESTDIR

if [ "$action" = install ]; then
    for r in "${roles[@]}"; do
        if [ ! -x "$BINDIR/$r" ]; then
            echo "install: $BINDIR/$r is missing: run make first" >&2
            exit 1
        fi
    done
    for r in "${roles[@]}"; do
        install -D -m 0755 "$BINDIR/$r" "$root$PREFIX/bin/$r"
        install -D -m 0644 "docs/man/$r.1" "$root$MANDIR/man1/$r.1"
        install -D -m 0644 "dist/bash-completion/$r" "$root$BASHCOMPDIR/$r"
    done
    install -D -m 0644 README.md "$root$DOCDIR/README.md"
    for d in docs/*.md; do
        install -D -m 0644 "$d" "$root$DOCDIR/$(basename "$d")"
    done
    mkdir -p "$root$SYSTEMDUNITDIR"
    sed "s|@PREFIX@|$PREFIX|g" "dist/systemd/$unit.in" >"$root$SYSTEMDUNITDIR/$unit"
    chmod 0644 "$root$SYSTEMDUNITDIR/$unit"
    echo "installed under $root$PREFIX: bin/{${roles[*]// /,}}, man pages, docs ($DOCDIR)," \
        "$SYSTEMDUNITDIR/$unit, bash completions"
    exit 0
fi

for r in "${roles[@]}"; do
    rm -f "$root$PREFIX/bin/$r" "$root$MANDIR/man1/$r.1" "$root$BASHCOMPDIR/$r"
done
rm -f "$root$SYSTEMDUNITDIR/$unit"
# the doc folder is ours alone: all of it goes, whatever docs it had then
rm -rf "$root$DOCDIR"
echo "removed stockpipe from $root$PREFIX"
