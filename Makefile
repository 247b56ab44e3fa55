# stockpipe — one non-recursive Makefile.
#
#   make                 build every role into bin/
#   make test            build and run the Criterion suite (ends with Synthesis)
#   make test-busy       the same with two CPU hogs beside it (BUSY_RUNS=5: five in a row)
#   make run             the pipeline demo (DURATION=10 TRANSPORT=mq|zmq)
#   make bench           the queue-versus-shared-memory benchmark, quick (~1 min);
#                        results in build/bench/DATE/ (CSV, JSON, plots), linked
#                        as build/bench/latest
#   make bench-full      the whole matrix (tens of minutes); BENCH_ARGS= adds flags
#   make bench-docs      make bench, then README.md's and docs/BENCHMARKS.md's figures
#                        rewritten from it (scripts/bench-docs.py)
#   make stall-check     what a stopped monitor costs the workers (bench/monitor-stall.sh)
#   make profile         perf profiles of the bench's main cells (bench/profile.sh)
#   make chaos           1,000,000 orders per transport with workers killed, and 100
#                        restarts of everything killed at once, checked order by order
#                        (tests/chaos/chaos.sh; the --quick runs are in make test)
#   make flood           30 s floods of malformed input per transport (tests/test_flood.c)
#   make SANITIZE=address,undefined test   the same, built in build/san-*/
#   make lint            cppcheck and clang-tidy (bugprone, cert; .clang-tidy);
#                        fails on any finding
#   make tsan            the worker core and the in-process pipeline under
#                        ThreadSanitizer (tests/tsan/; clang)
#   make fuzz            the libFuzzer targets (wire, csv, args) built with clang,
#                        ASan and UBSan into build/fuzz/, each run FUZZ_TIME
#                        seconds (default 60) on a scratch corpus seeded from
#                        tests/fuzz/corpus/; fails on any crash (artifacts in
#                        build/fuzz/artifacts/).  FUZZ_TARGETS=, FUZZ_ARGS=
#   make install / uninstall   binaries, man pages, docs, the broker's systemd
#                        unit template and bash completions under
#                        $(DESTDIR)$(PREFIX) (default /usr/local)
#   make mutants         our mutation run (tests/mutants/): every mutant of the list
#                        applied to a scratch copy in build/mutants/, built, its
#                        module's suites run; killed and surviving mutants reported
#                        (about an hour on 2 cores).  MUTANTS_SAMPLE=N: a sample
#                        (rotating by date); MUTANTS_ARGS= passes flags (--changed
#                        REF, --module, --only, --before REV, --no-wide, --interleave)
#   make format / format-check / clean
#
# Set-up: `scripts/deps.sh` checks the Debian packages we need and installs
# the missing ones when run as root (or prints the exact apt-get command).

SHELL := /bin/bash
CC ?= cc
SANITIZE ?=
WERROR ?= $(if $(CI),1,)
DURATION ?= 10
TRANSPORT ?= mq

# Variant folders: objects never mix between plain and sanitized builds.
comma := ,
ifeq ($(SANITIZE),)
VARIANT := release
BINDIR := bin
else
VARIANT := san-$(subst $(comma),-,$(SANITIZE))
BINDIR := build/$(VARIANT)/bin
endif
BUILD := build/$(VARIANT)

PKGS := libczmq libzmq ncursesw libnats
# Recursive (=) so pkg-config runs only after scripts/deps.sh has installed it.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CRIT_CFLAGS = $(shell pkg-config --cflags criterion 2>/dev/null)
CRIT_LIBS = $(shell pkg-config --libs criterion 2>/dev/null)

CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wshadow -Wstrict-prototypes \
               -Wmissing-prototypes -Wno-missing-field-initializers -pthread -Icommon
# Rows change their stock and the order that changed it with one 16-byte
# compare-and-swap (sp_commit.c): cmpxchg16b on x86-64.
ifeq ($(shell uname -m),x86_64)
CFLAGS_BASE += -mcx16
endif
ifneq ($(WERROR),)
CFLAGS_BASE += -Werror
endif
ifneq ($(SANITIZE),)
CFLAGS_BASE += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS_SAN := -fsanitize=$(SANITIZE)
endif
ALL_CFLAGS = $(CFLAGS_BASE) $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = -pthread $(LDFLAGS_SAN) $(LDFLAGS)
LIBS = $(PKG_LIBS) -lrt -lm

# `make` alone builds everything (the role libraries' rules, made by $(eval)
# below, would otherwise come first and be the default)
.DEFAULT_GOAL := all

# common/ is what two or more roles share; each role's folder holds that
# role's modules (sp_*.c, one static library per folder) and its mains.  A
# role sees only common/ and its own folder: -I says so, so including
# another role's header fails to compile.  The bench and the tests see all.
COMMON_SRC := $(sort $(wildcard common/*.c))
# the version every binary's --version prints: git describe at build time
# (rewritten only when it changes, so a commit does not rebuild the rest)
VERSION_C := $(BUILD)/gen/sp_version.c
VERSION_OBJ := $(BUILD)/gen/sp_version.o
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o) $(VERSION_OBJ)
LIBCOMMON := $(BUILD)/libstockpipe.a

ROLE_DIRS := broker consumer producer
ROLE_LIB = $(BUILD)/lib$(1).a
# broker --metrics' HTTP server (libmicrohttpd) is linked into bin/broker
# only, not into the broker's library that the bench and the tests link.
MHD_SRC := broker/sp_metrics_http.c
MHD_OBJ := $(MHD_SRC:%.c=$(BUILD)/%.o)
MHD_CFLAGS = $(shell pkg-config --cflags libmicrohttpd 2>/dev/null)
MHD_LIBS = $(shell pkg-config --libs libmicrohttpd 2>/dev/null)
ROLE_SRC = $(filter-out $(MHD_SRC),$(sort $(wildcard $(1)/sp_*.c)))
ROLE_LIBS := $(foreach d,$(ROLE_DIRS),$(call ROLE_LIB,$(d)))
ALL_ROLE_INC := $(ROLE_DIRS:%=-I%)
$(foreach d,$(ROLE_DIRS),$(eval $(BUILD)/$(d)/%.o: CFLAGS_ROLE := -I$(d)))
$(foreach d,$(ROLE_DIRS),$(eval $(call ROLE_LIB,$(d)): $(patsubst %.c,$(BUILD)/%.o,$(call ROLE_SRC,$(d)))))
# objects, then the roles' libraries, then common's (which they call)
LINK_ORDER = $(filter %.o,$(1)) $(filter-out $(LIBCOMMON),$(filter %.a,$(1))) $(filter $(LIBCOMMON),$(1))
# every module but the mains (the fuzz library, the link order of the bench)
LIB_SRC := $(COMMON_SRC) $(foreach d,$(ROLE_DIRS),$(call ROLE_SRC,$(d)))

ROLES := broker consumer monitor producer
ROLE_BINS := $(ROLES:%=$(BINDIR)/%)

# The benchmark: bench/main.c is its main; the rest of bench/ is linked into
# the test binary too, so tests can drive the benchmark's parts directly.
BENCH_SRC := $(filter-out bench/main.c,$(sort $(wildcard bench/*.c)))
BENCH_OBJ := $(BENCH_SRC:%.c=$(BUILD)/%.o)
BENCH_BIN := $(BINDIR)/bench

# The chaos run's checker: ledgers against journals (tests/chaos/).
CHAOS_BIN := $(BINDIR)/ledgercheck

# The fuzz harness bodies (tests/fuzz/spf_*.c) are linked into the test
# binary too: tests/test_fuzz_corpus.c replays the committed corpus.
TEST_SRC := $(sort $(wildcard tests/test_*.c)) tests/sp_testutil.c $(sort $(wildcard tests/fuzz/spf_*.c))
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(BUILD)/tests/stockpipe-tests

DEPS_STAMP := build/.deps-ok
FLAGS_FILE := $(BUILD)/.flags

.PHONY: install uninstall
.PHONY: all test test-busy run run-cluster bench-shards clean format format-check deps check-leftovers stall-check bench bench-full bench-docs profile \
        chaos chaos-cluster flood lint tsan valgrind fuzz fuzz-build mutants
all: $(ROLE_BINS) $(BENCH_BIN) $(CHAOS_BIN)

deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/deps.sh
	@bash scripts/deps.sh
	@mkdir -p $(@D) && touch $@

# Rebuild everything when the compiler flags change.
$(FLAGS_FILE): FORCE | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' | cmp -s - $@ || \
	    echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' > $@
FORCE:

$(BUILD)/%.o: %.c $(FLAGS_FILE) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CFLAGS_ROLE) -MMD -MP -c $< -o $@

$(VERSION_C): FORCE
	@mkdir -p $(@D)
	@v=$$(git describe --tags --always --dirty 2>/dev/null || cat VERSION 2>/dev/null || echo unknown); \
	printf '#include "sp_version.h"\n\nconst char *sp_version(void)\n{\n    return "%s";\n}\n' "$$v" \
	    | cmp -s - $@ || \
	printf '#include "sp_version.h"\n\nconst char *sp_version(void)\n{\n    return "%s";\n}\n' "$$v" > $@
$(VERSION_OBJ): $(VERSION_C) $(FLAGS_FILE) | $(DEPS_STAMP)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIBCOMMON): $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(ROLE_LIBS):
	@rm -f $@
	ar rcs $@ $^

# Each role binary links its own folder's library, then common's.
$(BINDIR)/broker: $(BUILD)/broker/main.o $(MHD_OBJ) $(call ROLE_LIB,broker)
$(BINDIR)/broker: LIBS_ROLE = $(MHD_LIBS)
$(MHD_OBJ): CFLAGS_ROLE = -Ibroker $(MHD_CFLAGS)
$(BINDIR)/consumer: $(BUILD)/consumer/main.o $(call ROLE_LIB,consumer)
$(BINDIR)/monitor: $(BUILD)/consumer/monitor_main.o $(call ROLE_LIB,consumer)
$(BINDIR)/producer: $(BUILD)/producer/main.o $(call ROLE_LIB,producer)
$(ROLE_BINS): $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(call LINK_ORDER,$^) $(LIBS_ROLE) $(LIBS)

$(BUILD)/bench/%.o: CFLAGS_ROLE := -Ibench $(ALL_ROLE_INC)
$(BENCH_BIN): $(BUILD)/bench/main.o $(BENCH_OBJ) $(ROLE_LIBS) $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(call LINK_ORDER,$^) $(LIBS)

$(CHAOS_BIN): $(BUILD)/tests/chaos/ledgercheck.o $(ROLE_LIBS) $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(call LINK_ORDER,$^) $(LIBS)

$(BUILD)/tests/%.o: CFLAGS_ROLE := $(CRIT_CFLAGS) -Ibench -Itests/fuzz $(ALL_ROLE_INC)
$(TEST_BIN): $(TEST_OBJ) $(BENCH_OBJ) $(ROLE_LIBS) $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(call LINK_ORDER,$^) $(CRIT_LIBS) $(LIBS)

# The suite execs the real binaries, found through SP_BIN_DIR; it ends with
# Criterion's Synthesis line counting every test, and then checks that
# nothing was left in /dev/shm or the mqueue namespace.  Each run also writes
# a TAP report (SUITE_REPORT); when a test fails, scripts/failed.sh prints
# the failed tests again from it at the end, closing with "N passed, N
# failed", so a log cut to its tail still names them.
TEST_JOBS ?= 2
SUITE_REPORT = $(abspath $(BUILD))/suite.tap
test: $(ROLE_BINS) $(BENCH_BIN) $(CHAOS_BIN) $(TEST_BIN)
	@bash scripts/leftovers.sh snapshot build/.leftovers-before
	SP_BIN_DIR=$(abspath $(BINDIR)) SP_DATA_DIR=$(abspath data) \
	    SP_FUZZ_CORPUS=$(abspath tests/fuzz/corpus) \
	    LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp):print_suppressions=0 \
	    $(TEST_BIN) --jobs $(TEST_JOBS) --tap=$(SUITE_REPORT) $(TEST_ARGS) || \
	    { bash scripts/failed.sh $(SUITE_REPORT); exit 1; }
	@bash scripts/leftovers.sh compare build/.leftovers-before

# The suite as `make test` runs it, with BUSY_HOGS CPU hogs (default 2)
# beside it, BUSY_RUNS times in a row (default 1; the bar is 5): the hogs
# are started and always killed by tests/busy.sh.
BUSY_HOGS ?= 2
BUSY_RUNS ?= 1
test-busy: $(ROLE_BINS) $(BENCH_BIN) $(CHAOS_BIN) $(TEST_BIN)
	bash tests/busy.sh --hogs $(BUSY_HOGS) --runs $(BUSY_RUNS) -- $(MAKE) --no-print-directory test

# Binaries, man pages (docs/man/, roff), docs, the broker's systemd unit
# template (dist/systemd/) and bash completions (dist/bash-completion/) under
# $(DESTDIR)$(PREFIX); uninstall removes exactly those (scripts/install.sh,
# which also takes MANDIR, DOCDIR, SYSTEMDUNITDIR and BASHCOMPDIR).
PREFIX ?= /usr/local
DESTDIR ?=
INSTALL_ENV = PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' BINDIR='$(BINDIR)' \
              $(foreach v,MANDIR DOCDIR SYSTEMDUNITDIR BASHCOMPDIR,$(if $($(v)),$(v)='$($(v))'))
install: $(ROLE_BINS)
	@$(INSTALL_ENV) bash scripts/install.sh install
uninstall:
	@$(INSTALL_ENV) bash scripts/install.sh uninstall

run: $(ROLE_BINS)
	@SP_BIN_DIR=$(abspath $(BINDIR)) DURATION=$(DURATION) TRANSPORT=$(TRANSPORT) \
	    bash scripts/demo.sh

# The cluster demo: a 3-node NATS cluster, two shard brokers on the nats
# transport, customers that reach them only through the cluster, the merged
# monitor, then the audit (scripts/run-cluster.sh).
run-cluster: $(ROLE_BINS) $(CHAOS_BIN)
	@SP_BIN_DIR=$(abspath $(BINDIR)) DURATION=$(DURATION) bash scripts/run-cluster.sh

# The benchmark (gnuplot for the plots is installed or asked for first).
BENCH_ARGS ?=
bench: $(ROLE_BINS) $(BENCH_BIN)
	@bash scripts/deps.sh bench
	@bash scripts/leftovers.sh snapshot build/.leftovers-bench
	$(BENCH_BIN) --quick $(BENCH_ARGS)
	@bash scripts/leftovers.sh compare build/.leftovers-bench
bench-full: $(ROLE_BINS) $(BENCH_BIN)
	@bash scripts/deps.sh bench
	$(BENCH_BIN) --full $(BENCH_ARGS)

# Shard scaling over nats: 1, 2 and 4 shard brokers on NATS servers it
# starts, customers routing each order to its shard (bench/shard-scaling.sh;
# SHARDS="1 2 4 8" NODES=3 REPLICAS=3 and the others it names).
bench-shards: $(ROLE_BINS)
	@SP_BIN_DIR=$(abspath $(BINDIR)) bash bench/shard-scaling.sh

# The docs' benchmark figures (README.md "Measured", docs/BENCHMARKS.md) from
# one new run of the quick preset: scripts/bench-docs.py rewrites the regions
# between <!-- bench:begin NAME --> and <!-- bench:end --> from that run's
# results.json (build/bench/latest), stamped with its date, commit, machine
# and load average.  A run with a failed audit stops here and changes nothing.
# The leftovers check comes last: on a machine shared with other test runs it
# may name their objects, and that says nothing about the figures.
BENCH_DOCS := README.md docs/BENCHMARKS.md
bench-docs: $(ROLE_BINS) $(BENCH_BIN)
	@bash scripts/deps.sh bench
	@bash scripts/leftovers.sh snapshot build/.leftovers-bench
	$(BENCH_BIN) --quick $(BENCH_ARGS)
	python3 scripts/bench-docs.py build/bench/latest/results.json $(BENCH_DOCS) --via 'make bench-docs'
	@bash scripts/leftovers.sh compare build/.leftovers-bench

# Where the CPU goes: perf record of the whole machine while the bench runs
# each main cell (mq, shm, zmq-ipc 1x1; PROFILE_TRANSPORTS=a,b to choose),
# flat reports in build/profile/DATE/ (bench/profile.sh).
PROFILE_TRANSPORTS ?= mq,shm,zmq-ipc
profile: $(ROLE_BINS) $(BENCH_BIN)
	@bash scripts/deps.sh profile
	@SP_BIN_DIR=$(abspath $(BINDIR)) bash bench/profile.sh $(PROFILE_TRANSPORTS)

# What a monitor stopped with SIGSTOP costs the workers (minutes; not part of `make test`).
REPEATS ?= 3
stall-check: $(ROLE_BINS)
	@SP_BIN_DIR=$(abspath $(BINDIR)) bash bench/monitor-stall.sh $(TRANSPORT) $(REPEATS)

# Workers killed at random (and inside the commit) under 1,000,000 orders per
# transport, then the restart loop: everything of the instance killed at once
# mid-load and the broker restarted 100 times per transport (re-attaching,
# or rebuilding a lost table from the journal every third time); every order
# checked against the journals (a few minutes here).  Both parts always run.
# TRANSPORT=, ORDERS=, KILLS=, SYNC=, RESTARTS=, ... as in the script's header.
# The nats transport on a 3-node cluster through node, network and broker
# faults (tests/chaos/cluster.sh; a bounded run is part of `make test`).
chaos-cluster: $(ROLE_BINS) $(CHAOS_BIN)
	SP_BIN_DIR=$(abspath $(BINDIR)) bash tests/chaos/cluster.sh

chaos: $(ROLE_BINS) $(CHAOS_BIN)
	@status=0; \
	SP_BIN_DIR=$(abspath $(BINDIR)) bash tests/chaos/chaos.sh --transport all || status=1; \
	SP_BIN_DIR=$(abspath $(BINDIR)) bash tests/chaos/chaos.sh --restart-loop --transport all || status=1; \
	exit $$status

# Hostile input under load: one producer as fast as it can for 30 s with
# malformed messages mixed in, over mq, zmq and shm, and a zmq client that
# ignores flow control (tests/test_flood.c; `make test` runs 5 s of each).
# Peak memory, queue depths and counts are printed.  FLOOD_SECONDS=30.
FLOOD_SECONDS ?= 30
flood: $(ROLE_BINS) $(TEST_BIN)
	SP_BIN_DIR=$(abspath $(BINDIR)) SP_DATA_DIR=$(abspath data) SP_FLOOD_SECONDS=$(FLOOD_SECONDS) \
	    $(TEST_BIN) --jobs 1 --verbose --filter='flood/*' 2>&1 | grep -v '^\[SKIP\]'; \
	    exit $${PIPESTATUS[0]}

# The suite under valgrind (memcheck): the test binary, its forked tests and
# every role binary they start (shells, Python, tmux and /bin/true, the link
# suite's stand-in worker, are not traced); no process may have a memory
# error or definitely lost memory (each writes build/valgrind/vg.PID.log,
# checked by scripts/valgrind-check.sh).  The load suites are left out:
# under valgrind's 20-50x slowdown they would test their timing, not their
# memory.  VALGRIND_FILTER= chooses other suites.  Workers
# start and turn their loop 20-50x slower here: the broker waits 60 s, not 2,
# before it calls one hung (SP_WORKER_SILENT_MS).
# (the ring's two crash tests fault inside a memcpy on purpose: valgrind reports that;
# the two that count a client's sessions up to its share count HELLOs, and a HELLO
# unanswered for 2 s here is sent again and granted a second session the test cannot
# see: "one address got 63 sessions", timing, not memory)
VALGRIND_FILTER ?= !(@(bench|raw|chaos|cluster|flood|monitor|pipeline|commit|remote)/*|ring/*_dying_inside_*|hostile/*_past_its_share*)
VALGRIND_DIR := build/valgrind
valgrind: $(ROLE_BINS) $(TEST_BIN)
	@bash scripts/deps.sh valgrind
	@rm -rf $(VALGRIND_DIR) && mkdir -p $(VALGRIND_DIR)
	@bash scripts/leftovers.sh snapshot build/.leftovers-valgrind
	SP_BIN_DIR=$(abspath $(BINDIR)) SP_DATA_DIR=$(abspath data) SP_WORKER_SILENT_MS=60000 \
	    valgrind -q --vgdb=no --trace-children=yes --suppressions=$(abspath tests/valgrind.supp) \
	    --trace-children-skip='*/bash,*/sh,*/python3*,*/tmux,*/env,*/timeout,*/true,*/nats-server,*/pgrep' \
	    --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
	    --log-file=$(abspath $(VALGRIND_DIR))/vg.%p.log \
	    $(TEST_BIN) --jobs 2 --tap=$(abspath $(VALGRIND_DIR))/suite.tap --filter='$(VALGRIND_FILTER)' || \
	    { bash scripts/failed.sh $(VALGRIND_DIR)/suite.tap; exit 1; }
	@bash scripts/valgrind-check.sh $(VALGRIND_DIR)
	@bash scripts/leftovers.sh compare build/.leftovers-valgrind

# libFuzzer targets: every common/ module and the harness bodies built with
# clang and -fsanitize=fuzzer-no-link,address,undefined in build/fuzz/obj/
# (never mixed with the gcc objects), one binary per target, then
# tests/fuzz/run.sh runs them one after another: FUZZ_TIME seconds each, on a
# scratch corpus build/fuzz/corpus/TARGET seeded from tests/fuzz/corpus/TARGET
# (libFuzzer writes new inputs only there), crashes in build/fuzz/artifacts/,
# a summary line per target; it fails if any target crashed.
FUZZ_CC ?= clang
FUZZ_TIME ?= 60
FUZZ_TARGETS ?= wire csv args
FUZZ_ARGS ?=
FUZZ_DIR := build/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS = $(filter-out -O2 -fsanitize=% -fno-sanitize-recover=% -fno-omit-frame-pointer, \
                  $(CFLAGS_BASE)) -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link -Itests/fuzz \
              $(ALL_ROLE_INC) $(PKG_CFLAGS) $(CFLAGS)
FUZZ_LIB := $(FUZZ_DIR)/libstockpipe.a
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz-%)
FUZZ_STAMP := $(FUZZ_DIR)/.deps-ok
FUZZ_FLAGS_FILE := $(FUZZ_DIR)/.flags

$(FUZZ_STAMP): scripts/deps.sh | $(DEPS_STAMP)
	@bash scripts/deps.sh fuzz
	@mkdir -p $(@D) && touch $@
$(FUZZ_FLAGS_FILE): FORCE | $(FUZZ_STAMP)
	@echo '$(FUZZ_CC) $(FUZZ_CFLAGS)' | cmp -s - $@ || echo '$(FUZZ_CC) $(FUZZ_CFLAGS)' > $@
$(FUZZ_DIR)/obj/%.o: %.c $(FUZZ_FLAGS_FILE) | $(FUZZ_STAMP)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@
$(FUZZ_TARGETS:%=$(FUZZ_DIR)/obj/tests/fuzz/fuzz_main-%.o): \
$(FUZZ_DIR)/obj/tests/fuzz/fuzz_main-%.o: tests/fuzz/fuzz_main.c $(FUZZ_FLAGS_FILE) | $(FUZZ_STAMP)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -DSPF_ENTRY=spf_$*_one -MMD -MP -c $< -o $@
$(FUZZ_DIR)/obj/gen/sp_version.o: $(VERSION_C) $(FUZZ_FLAGS_FILE) | $(FUZZ_STAMP)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
$(FUZZ_LIB): $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o) $(FUZZ_DIR)/obj/gen/sp_version.o
	@rm -f $@
	ar rcs $@ $^
$(FUZZ_BINS): $(FUZZ_DIR)/fuzz-%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_main-%.o \
                                 $(FUZZ_DIR)/obj/tests/fuzz/spf_%.o \
                                 $(FUZZ_DIR)/obj/tests/fuzz/spf_util.o $(FUZZ_LIB)
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -pthread -o $@ $^ $(PKG_LIBS) -lrt -lm

# Named, so make keeps these objects instead of deleting them as intermediates.
.SECONDARY: $(FUZZ_TARGETS:%=$(FUZZ_DIR)/obj/tests/fuzz/fuzz_main-%.o) \
            $(FUZZ_TARGETS:%=$(FUZZ_DIR)/obj/tests/fuzz/spf_%.o) $(FUZZ_DIR)/obj/tests/fuzz/spf_util.o

fuzz-build: $(FUZZ_BINS)
fuzz: $(FUZZ_BINS)
	@FUZZ_TIME=$(FUZZ_TIME) FUZZ_ARGS='$(FUZZ_ARGS)' bash tests/fuzz/run.sh $(FUZZ_DIR) $(FUZZ_TARGETS)

# Our own mutation run (tests/mutants/run.py reads tests/mutants/mutants.txt):
# each mutant is applied to one scratch copy of the tree (build/mutants/tree,
# restored after each), built incrementally, and the suites of its module run
# (MUTANTS_SUITE_TIMEOUT s, default 300); a survivor then gets a wider run
# (MUTANTS_WIDE, a Criterion filter; MUTANTS_WIDE_TIMEOUT s, default 600).
# The report, with the tests that killed each mutant, is printed and kept in
# build/mutants/report.txt; it fails when a mutant not marked equivalent
# survives.  MUTANTS_SAMPLE=N runs a sample of N (seeded by the date, so it
# rotates day by day); MUTANTS_ARGS= passes the script's flags.
MUTANTS_SAMPLE ?=
MUTANTS_ARGS ?=
mutants: | $(DEPS_STAMP)
	nice -n 10 python3 tests/mutants/run.py $(if $(MUTANTS_SAMPLE),--sample $(MUTANTS_SAMPLE)) \
	    $(MUTANTS_ARGS)

FORMAT_SRC = $(wildcard common/*.[ch] producer/*.[ch] consumer/*.[ch] broker/*.[ch] \
                        tests/*.[ch] tests/chaos/*.[ch] tests/tsan/*.[ch] tests/fuzz/*.[ch] \
                        bench/*.[ch])
format:
	clang-format -i $(FORMAT_SRC)
format-check:
	clang-format --dry-run --Werror $(FORMAT_SRC)

# Static analysis.  cppcheck: warnings, portability and performance (its
# style checks are taste, not defects); clang-tidy: bugprone and CERT, as
# .clang-tidy says, with the build's own flags.  Every finding fails the
# target; each accepted one is suppressed where it occurs, with its reason.
LINT_SRC = $(sort $(wildcard common/*.c producer/*.c consumer/*.c broker/*.c bench/*.c \
                             tests/chaos/*.c tests/tsan/*.c))
LINT_CFLAGS = $(filter-out -Werror,$(CFLAGS_BASE)) -Ibench $(ALL_ROLE_INC) $(PKG_CFLAGS) $(CRIT_CFLAGS)
CPPCHECK_FLAGS := --std=c11 --library=posix,gnu --enable=warning,portability,performance \
                  --inline-suppr --suppressions-list=scripts/cppcheck.supp --error-exitcode=1 \
                  --quiet --template='{file}:{line}: {severity}: {message} [{id}]'
lint: | $(DEPS_STAMP)
	@bash scripts/deps.sh lint
	@echo 'cppcheck $(words $(LINT_SRC)) files $(filter -I% -D%,$(LINT_CFLAGS))'
	@status=0; \
	cppcheck $(CPPCHECK_FLAGS) $(filter -I% -D%,$(LINT_CFLAGS)) $(LINT_SRC) || status=1; \
	echo 'clang-tidy $(words $(LINT_SRC)) files -- $(LINT_CFLAGS)'; \
	for f in $(LINT_SRC); do \
	    clang-tidy --quiet $$f -- $(LINT_CFLAGS) 2>/dev/null || status=1; \
	done; \
	if [ $$status -ne 0 ]; then echo 'lint: findings above (fix, or suppress in place with the reason)'; fi; \
	exit $$status

# ThreadSanitizer, built with clang -fsanitize=thread in build/san-thread/:
# the worker core with threads on one table (tests/tsan/tsan_commit.c, no
# suppressions), then the whole pipeline in one process: the bench's
# zmq-inproc cell runs the broker, its workers and the customers as threads
# over inproc://, for each strategy, and audits the table (suppressions in
# tests/tsan/tsan.supp, for the uninstrumented libzmq).  Only threads of one
# process: ThreadSanitizer's runtime performs 16-byte atomics under a lock of
# its own process, so processes sharing a table are not atomic under it.
# Any report fails the target.
TSAN_OPTS := halt_on_error=1 exitcode=66 second_deadlock_stack=1
TSAN_ROUNDS ?= 1 # tsan_commit: every strategy this many times
TSAN_BENCH_ARGS := --transports zmq-inproc --sync cas,row-lock,table-lock --procs 2x2 \
                   --batch 32 --repeats 1 --warmup 0.1 --seconds 0.5 --rate-seconds 0.5 \
                   --no-raw --no-sweep --no-scaling --no-shop --no-plots
tsan:
	@bash scripts/deps.sh tsan
	@$(MAKE) --no-print-directory SANITIZE=thread CC=clang tsan-run

TSAN_BIN := $(BUILD)/tests/tsan/tsan_commit
$(TSAN_BIN): $(BUILD)/tests/tsan/tsan_commit.o $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(call LINK_ORDER,$^) $(LIBS)

.PHONY: tsan-run
tsan-run: $(TSAN_BIN) $(BENCH_BIN)
	@test '$(SANITIZE)' = thread || { echo 'tsan-run: run make tsan' >&2; exit 2; }
	TSAN_OPTIONS='$(TSAN_OPTS)' $(TSAN_BIN) $(TSAN_ROUNDS)
	TSAN_OPTIONS='$(TSAN_OPTS) suppressions=$(abspath tests/tsan/tsan.supp)' \
	    $(BENCH_BIN) $(TSAN_BENCH_ARGS) --out $(BUILD)/tsan-bench

clean:
	rm -rf build bin

-include $(wildcard $(BUILD)/*/*.d $(BUILD)/tests/chaos/*.d $(BUILD)/tests/tsan/*.d \
                    $(BUILD)/tests/fuzz/*.d $(FUZZ_DIR)/obj/*/*.d $(FUZZ_DIR)/obj/tests/fuzz/*.d)
