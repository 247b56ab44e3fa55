#!/usr/bin/env bash
# Checks the Debian packages stockpipe builds and tests with.  Missing ones are
# installed when we are root (after apt-get update); otherwise the exact
# command is printed and we fail.
#   bash scripts/deps.sh         build and test packages
#   bash scripts/deps.sh bench   also gnuplot (gnuplot-nox), for bench/plot.sh
#                                (redis-server, for the bench's Redis peer, is
#                                in the build-and-test list: its test runs it)
#   bash scripts/deps.sh lint    also cppcheck and clang-tidy, for `make lint`
#   bash scripts/deps.sh tsan    also clang and its sanitizer runtimes, for `make tsan`
#   bash scripts/deps.sh valgrind  also valgrind, for `make valgrind`
#   bash scripts/deps.sh profile   also perf (linux-perf), for `make profile`
#   bash scripts/deps.sh fuzz    also clang and its libFuzzer runtime
#                                (libclang-rt-14-dev), for `make fuzz`
set -euo pipefail

want_bench=0
want_lint=0
want_tsan=0
want_valgrind=0
want_fuzz=0
want_profile=0
case "${1:-}" in
'') ;;
bench) want_bench=1 ;;
lint) want_lint=1 ;;
tsan) want_tsan=1 ;;
valgrind) want_valgrind=1 ;;
fuzz) want_fuzz=1 ;;
profile) want_profile=1 ;;
*)
    echo "usage: $0 [bench|lint|tsan|valgrind|fuzz|profile]" >&2
    exit 2
    ;;
esac

need=()
have_pc() { pkg-config --exists "$1" 2>/dev/null; }
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v cc >/dev/null || need+=(gcc)
command -v clang-format >/dev/null || need+=(clang-format)
have_pc libzmq || need+=(libzmq3-dev)
have_pc libczmq || need+=(libczmq-dev)
have_pc criterion || need+=(libcriterion-dev)
have_pc libnats || need+=(libnats-dev)                 # the nats transport (nats.c)
command -v nats-server >/dev/null || need+=(nats-server) # its tests run a JetStream server
command -v ip >/dev/null || need+=(iproute2) # the cluster chaos run: network namespaces
have_pc ncursesw || need+=(libncurses-dev)
command -v python3 >/dev/null || need+=(python3)
command -v tmux >/dev/null || need+=(tmux) # the full-screen monitor test drives it
# test_bench runs the bench's Redis peer (bench/peer.h), which starts its own
# redis-server; the bench itself needs it too (below)
command -v redis-server >/dev/null || need+=(redis-server)
command -v pgrep >/dev/null || need+=(procps) # pgrep/pkill: the chaos runs find their processes
command -v unshare >/dev/null || need+=(util-linux) # test_remote: a producer in a mount namespace
# Debian's python3 (the protocol test runs /usr/bin/python3, not a pyenv one)
/usr/bin/python3 -c 'import zmq' 2>/dev/null || need+=(python3-zmq)
have_pc libmicrohttpd || need+=(libmicrohttpd-dev) # the broker's --metrics endpoint
# test_metrics scrapes it with curl and parses it with prometheus_client's parser
command -v curl >/dev/null || need+=(curl)
/usr/bin/python3 -c 'import prometheus_client.parser' 2>/dev/null || need+=(python3-prometheus-client)
# test_install reads each installed man page with `man -l` (man-db runs groff)
command -v man >/dev/null || need+=(man-db)
command -v groff >/dev/null || command -v nroff >/dev/null || need+=(groff-base)
if [ "$want_bench" -eq 1 ]; then
    command -v gnuplot >/dev/null || need+=(gnuplot-nox) # bench/plot.sh
    # redis-server, for the Redis peer that make bench runs, is in the list
    # above: the tests run the peer too, so every caller needs it
fi
if [ "$want_profile" -eq 1 ]; then
    command -v perf >/dev/null || need+=(linux-perf)
fi
if [ "$want_valgrind" -eq 1 ]; then
    command -v valgrind >/dev/null || need+=(valgrind)
fi
if [ "$want_lint" -eq 1 ]; then
    command -v cppcheck >/dev/null || need+=(cppcheck)
    command -v clang-tidy >/dev/null || need+=(clang-tidy)
fi
if [ "$want_tsan" -eq 1 ]; then
    if ! command -v clang >/dev/null; then
        need+=(clang libclang-rt-dev)
    elif [ ! -f "$(clang -print-file-name=libclang_rt.tsan-$(uname -m).a)" ]; then
        need+=(libclang-rt-dev) # the ThreadSanitizer runtime
    fi
fi

if [ "$want_fuzz" -eq 1 ]; then
    # clang links -fsanitize=fuzzer against libclang_rt.fuzzer, which Debian
    # ships apart from the compiler (libclang-rt-14-dev for clang 14)
    if ! command -v clang >/dev/null; then
        need+=(clang libclang-rt-14-dev)
    elif [ ! -f "$(clang --print-runtime-dir 2>/dev/null)/libclang_rt.fuzzer-$(uname -m).a" ]; then
        need+=(libclang-rt-14-dev)
    fi
fi

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
cmd="apt-get install -y --no-install-recommends ${need[*]}"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "deps: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
else
    echo "deps: missing packages: ${need[*]}" >&2
    echo "deps: run as root: apt-get update && $cmd" >&2
    exit 1
fi
