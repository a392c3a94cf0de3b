# cnode: one non-recursive Makefile. `make` builds the library and programs; `make run` and `make test`
# install missing Debian packages first (see `deps`).

BUILD   ?= build
CC      ?= cc
SAN     ?=
EI_DIR  := $(firstword $(wildcard /usr/lib/erlang/lib/erl_interface-*))
PKGS    := erlang-nox erlang-dev erlang-ssl elixir libuv1-dev liburing-dev libssl-dev libcmocka-dev uthash-dev clang libclang-rt-14-dev \
           clang-tools clang-format cppcheck pkg-config libmicrohttpd-dev python3-yaml iproute2 \
           libc-ares-dev dnsmasq-base nftables iptables libmnl-dev libnetfilter-queue-dev

# The version is written once, in base/cn_base.h; the .so name, cnode.pc and the .deb take it from there.
VERSION_MAJOR := $(shell sed -n 's/^[#]define CN_VERSION_MAJOR \([0-9][0-9]*\)$$/\1/p' base/cn_base.h)
VERSION_MINOR := $(shell sed -n 's/^[#]define CN_VERSION_MINOR \([0-9][0-9]*\)$$/\1/p' base/cn_base.h)
VERSION_PATCH := $(shell sed -n 's/^[#]define CN_VERSION_PATCH \([0-9][0-9]*\)$$/\1/p' base/cn_base.h)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)
SONAME  := libcnode.so.$(VERSION_MAJOR)

# The public headers, installed side by side as <cnode/...>: programs write #include <cnode/cnode.h>.
PUBLIC_H := base/cn_base.h term/cn_term.h dist/cn_tls.h cnode/cnode.h otp/cn_global.h otp/cn_pg.h otp/cn_pubsub.h \
            otp/cn_fuse.h otp/cn_alarm.h otp/cn_watchdog.h horde_compat/horde.h cluster/cn_cluster.h sorted_set/cn_sorted_set.h
STAGED_H := $(addprefix $(BUILD)/include/cnode/,$(notdir $(PUBLIC_H)))

OPT     ?= -O2
CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g $(OPT) -fPIC \
           -Ibase -Iterm -Iepmd -Idist -Icnode -Iotp -Ihorde_compat -Icluster -Isorted_set -I$(EI_DIR)/include $(EXTRA_CFLAGS)
LDLIBS  := -L$(EI_DIR)/lib -lei -luv -luring -lcares -lssl -lcrypto -lpthread -lm
ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(SAN),thread)
CFLAGS  += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS += -fsanitize=thread
endif

# MODULES lets one part be built and tested alone: make BUILD=build/x MODULES="base term" build/x/test/test_term
MODULES ?= base term epmd dist cnode otp horde_compat cluster sorted_set
LIB_SRC := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CNODE_SRC := $(wildcard cmd/cnode/*.c)
EPMD_SRC  := $(wildcard cmd/cnode-epmd/*.c)
TEST_SRC  := $(wildcard test/test_*.c)
TERM_UTIL := test/tterm.c
TEST_UTIL := $(filter-out $(TEST_SRC) $(TERM_UTIL),$(wildcard test/*.c))
TESTS     := $(TEST_SRC:test/%.c=$(BUILD)/test/%)
EXAMPLES  := $(patsubst examples/%/main.c,$(BUILD)/examples/%,$(wildcard examples/*/main.c))

.PHONY: all deps run test analyze format format-check unit interop interop-asan asan tsan clean examples bench bench-quick install uninstall \
        install-test examples-installed deb test-otp test-build asan-build faults soak soak-asan
all: $(BUILD)/libcnode.a $(BUILD)/libcnode.so $(BUILD)/cnode $(BUILD)/cnode-epmd

# V=1 shows the full compiler commands.
Q := $(if $(V),,@)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC    $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libcnode.a: $(LIB_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

# The library's own objects hide every symbol that is not marked CN_EXPORT (the public headers' declarations), so
# libcnode.so exports the public API only; static linking (tests, programs) still sees everything.
$(LIB_OBJ): CFLAGS += -fvisibility=hidden

# libei is linked in (only the objects used) and kept local by the version script, so a program with its own
# libei, or its own names, cannot clash with ours. The SONAME carries the major version.
$(BUILD)/libcnode.so.$(VERSION): $(LIB_OBJ) pkg/libcnode.map
	$(Q)$(CC) -shared $(LDFLAGS) -Wl,-soname,$(SONAME) -Wl,--version-script=pkg/libcnode.map -o $@ $(LIB_OBJ) \
	  $(EI_DIR)/lib/libei.a -luv -luring -lcares -lssl -lcrypto -lpthread -lm

$(BUILD)/$(SONAME): $(BUILD)/libcnode.so.$(VERSION)
	$(Q)ln -sf $(notdir $<) $@

$(BUILD)/libcnode.so: $(BUILD)/$(SONAME)
	$(Q)ln -sf $(notdir $<) $@

# The public headers as they are installed, so examples build against <cnode/...> in the tree too.
define stage_header
$(BUILD)/include/cnode/$(notdir $(1)): $(1)
	@mkdir -p $$(dir $$@)
	$(Q)cp $$< $$@
endef
$(foreach h,$(PUBLIC_H),$(eval $(call stage_header,$(h))))

# The cnode program's HTTP endpoint (cmd/cnode/http.c) runs on libmicrohttpd; the library does not need it.
$(BUILD)/cnode: $(CNODE_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/libcnode.a
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lmicrohttpd

$(BUILD)/cnode-epmd: $(EPMD_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/libcnode.a
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Examples see the public headers only, as a user's program does.
$(BUILD)/examples/%: examples/%/main.c $(BUILD)/libcnode.a $(STAGED_H)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(filter-out -I%,$(CFLAGS)) -I$(BUILD)/include $(LDFLAGS) -o $@ $< $(BUILD)/libcnode.a $(LDLIBS)

examples: $(EXAMPLES)

$(BUILD)/test/%: test/%.c $(TEST_UTIL) $(BUILD)/libcnode.a
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD    $@")
	$(Q)$(CC) $(CFLAGS) -Itest $(LDFLAGS) -o $@ $< $(TEST_UTIL) $(BUILD)/libcnode.a $(LDLIBS) -lcmocka

# tterm.c's fixtures (an atom table A, setup, the OTP vectors) belong to the term tests alone: linked into these two.
$(BUILD)/test/test_term $(BUILD)/test/test_etf: $(TERM_UTIL)
$(BUILD)/test/test_term $(BUILD)/test/test_etf: private TEST_UTIL += $(TERM_UTIL)

# test_global makes global's back-off timers (cn_proc_after) fail at will (its __wrap_cn_proc_after), to reach
# results a chain gets at once.
$(BUILD)/test/test_global: private LDFLAGS += -Wl,--wrap=cn_proc_after

# The C-only cluster test runs the programs themselves.
$(BUILD)/test/test_cluster: | $(BUILD)/cnode $(BUILD)/cnode-epmd
$(BUILD)/test/test_sup_cluster: | $(BUILD)/cnode $(BUILD)/cnode-epmd

# Installs the Debian packages that are missing (apt-get update first), and nothing when all are there.
deps:
	@missing=""; for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

# Builds and starts the node on its embedded defaults (name cnode@127.0.0.1, ~/.erlang.cookie).
# CNODE_PREBUILT=1 (set by the OTP matrix in its chroots, which have no compiler) runs the programs as built.
run: $(if $(CNODE_PREBUILT),,deps)
	$(if $(CNODE_PREBUILT),,@$(MAKE) --no-print-directory all)
	exec $(BUILD)/cnode $(ARGS)

# Everything needed, then static analysis, unit tests, interop tests against real nodes, the install check, the
# unit tests and the interop suites under ASan/UBSan (leaks included), ThreadSanitizer, and a 10 s run of each fuzz
# target. The phases (make targets, each can be run alone) go in two lanes that run side by side (test/lanes.sh):
# lane 1 is CPU-bound (static analysis and the ASan build at nice 10, the ASan unit tests, the fuzz build and
# targets), lane 2 mostly waits on real nodes (the build, the unit tests, interop in two lanes of its own, the
# install check, TSan while the ASan build ends, then interop against the ASan cnode once lane 1 has built it).
# The builds beside tests run at nice 10 so that the tests, some timing-sensitive, get the CPU first. Each phase's
# output is printed whole when it ends, then a table of the phases with their times; `make test` fails if any
# phase fails, and the last lines name it. A wait-dominated phase to add is best given a lane of its own, e.g.
# TEST_LANES += "after=asan-build soak": it then costs little more than its CPU time.
# The third lane, mostly waiting: the network-fault scenarios in namespaces once the programs are built, then the
# two-minute soak against the ASan build.
TEST_LANES ?= "nice:analyze nice:asan-build asan fuzz-smoke" \
              "test-build unit interop install-test tsan after=asan-build interop-asan" \
              "after=test-build faults after=asan-build soak-asan"
test: deps
	@MAKE="$(MAKE)" sh test/lanes.sh $(BUILD)/test-logs $(TEST_LANES)

# The lanes' builds, with -j2: the library, programs, unit tests and examples, and the same under ASan/UBSan.
test-build:
	@$(MAKE) --no-print-directory -j2 all $(TESTS) $(EXAMPLES)

ASAN_MAKE = $(MAKE) --no-print-directory BUILD=build/asan SAN=1 OPT=-O1
asan-build:
	@$(ASAN_MAKE) -j2 all $(TESTS:$(BUILD)/%=build/asan/%) $(EXAMPLES:$(BUILD)/%=build/asan/%)

# The C sources as .clang-format lays them out: `make format` rewrites them, `make format-check` fails on any file
# that differs and names it (`make analyze`, so `make test`, runs it first).
FORMAT_SRC = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build/*')
format:
	@clang-format -i $(FORMAT_SRC)

format-check:
	@bad=$$(clang-format --dry-run $(FORMAT_SRC) 2>&1 | sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: warning: code should be clang-formatted.*/\1/p' | sort -u); \
	if [ -n "$$bad" ]; then echo "format-check: not formatted (make format):" $$bad; echo "format: 1 failed"; exit 1; fi; \
	echo "format: $(words $(FORMAT_SRC)) files, 0 failed"

# clang's static analyzer (scan-build, over a clean build of the library and both programs in build/analyze) and
# cppcheck over the same sources; any finding fails. About a minute; test/run_analyze.sh says what it checks.
# Before them, the formatting and the layer rule of docs/architecture.md (test/check_layers.sh, on the includes).
analyze: format-check
	@sh test/check_layers.sh
	@sh test/run_analyze.sh build/analyze $(filter -I% -D%,$(CFLAGS))

unit: $(TESTS) $(EXAMPLES)
	@sh test/run_unit.sh $(TESTS)

# INTEROP_LANES: the suites run in that many lanes side by side (interop/run.sh says how); 1 runs them in turn.
INTEROP_LANES ?= 2
interop: all
	@INTEROP_LANES=$(INTEROP_LANES) sh interop/run.sh $(BUILD)

# The interop suites against other OTP releases: OTP 27 (Debian 13, trixie) and the newest (sid), each in a
# debootstrap chroot cached in /var/cache/cnode-otp (made once, reused), where the suites, epmd and this build's
# cnode run; one summary line per release. OTP_RELEASES picks the Debian suites. interop/otp_matrix.sh says more.
OTP_RELEASES ?= trixie sid
test-otp: PKGS += debootstrap
test-otp: deps
	@$(MAKE) --no-print-directory all
	@sh interop/otp_matrix.sh $(BUILD) $(OTP_RELEASES)

asan:
	@$(ASAN_MAKE) unit

# The threaded unit tests (the dirty pool's) under ThreadSanitizer; any report fails.
TSAN_TESTS := build/tsan/test/test_dirty
tsan:
	@nice -n 10 $(MAKE) --no-print-directory -j2 BUILD=build/tsan SAN=thread OPT=-O1 $(TSAN_TESTS)
	@TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" sh test/run_unit.sh $(TSAN_TESTS)

# The interop suites against an ASan/UBSan build of cnode; any sanitizer report fails.
interop-asan:
	@$(ASAN_MAKE) build/asan/cnode build/asan/cnode-epmd
	@INTEROP_LANES=$(INTEROP_LANES) sh interop/run_san.sh build/asan

# The network-fault scenarios (issue 24; root): nodes in network namespaces on a bridge, partitions, cuts,
# loss (nft), delay and jitter (the NFQUEUE delayer faults_delay, since the kernel has no netem), SIGSTOP.
# interop/faults/run.sh says what it makes and removes; FAULTS_KEEP=1 keeps the logs.
$(BUILD)/faults_delay: interop/faults/faults_delay.c
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC    $<")
	$(Q)$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g $(OPT) $(EXTRA_CFLAGS) $< -o $@ -lnetfilter_queue -lmnl

faults: deps
	@$(MAKE) --no-print-directory all $(BUILD)/faults_delay
	@sh interop/faults/run.sh $(BUILD)
	@sh interop/faults/run.sh $(BUILD) horde_faults.escript

# The soak (`make soak` is not part of `make test`; `make soak-asan` is, in its third lane): a C node among two BEAM nodes under churn for DURATION seconds (default 3600),
# RSS, fds and mailboxes sampled every 10 s into soak.csv; fails on growth after the warm-up or a lost registration
# (interop/soak/soak.escript says how). `make soak-asan`: 120 s against the ASan/UBSan build; any report fails.
DURATION ?= 3600
soak: all
	@sh interop/soak/run.sh $(BUILD) $(DURATION)

soak-asan:
	@$(ASAN_MAKE) build/asan/cnode
	@SOAK_SAN=1 sh interop/soak/run.sh build/asan 120

# Benchmarks (not part of `make test`): every bench/*.sh runs with the build folder as its argument and prints
# figures side by side with a BEAM pair measured in the same run. BENCH_QUICK=1 (`make bench-quick`) shortens them.
bench: all
	@for b in bench/*.sh; do [ -e "$$b" ] || continue; echo "== $$b"; sh "$$b" $(BUILD) || exit 1; done

bench-quick:
	@$(MAKE) --no-print-directory bench BENCH_QUICK=1

# ==== install and packages (issue 17) =================================================================
# `make install` (PREFIX=/usr/local, DESTDIR for staging; LIBDIR, BINDIR, INCLUDEDIR, MANDIR, PCDIR move a part):
# the shared library with its SONAME and links, libcnode.a, the public headers as <cnode/...>, cnode.pc, both
# programs and their man pages. `make uninstall` removes those files again (same variables). `make deb` builds
# libcnode$(VERSION_MAJOR) and libcnode-dev under $(BUILD)/. `make examples-installed PREFIX=...` builds examples/
# against an installed tree through pkg-config alone; `make install-test` is the check `make test` runs.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
PCDIR      ?= $(LIBDIR)/pkgconfig
LDCONFIG   ?= ldconfig
MANPAGES   := man/cnode.1 man/cnode-epmd.1
# libei for static links: erlang-dev's copy outside the versioned erl_interface folder when there is one, so an
# Erlang upgrade does not break installed cnode.pc files.
EI_LIBDIR  := $(if $(wildcard $(EI_DIR)/../../usr/lib/libei.a),$(abspath $(EI_DIR)/../../usr/lib),$(EI_DIR)/lib)
# libuv for static links: Debian (and libuv's CMake install) name the static library libuv_a, in libuv-static.pc.
UV_PC      = $(shell pkg-config --exists libuv-static 2>/dev/null && echo libuv-static || echo libuv)
INSTALLED  := $(BINDIR)/cnode $(BINDIR)/cnode-epmd $(LIBDIR)/libcnode.so.$(VERSION) $(LIBDIR)/$(SONAME) \
              $(LIBDIR)/libcnode.so $(LIBDIR)/libcnode.a $(PCDIR)/cnode.pc \
              $(addprefix $(INCLUDEDIR)/cnode/,$(notdir $(PUBLIC_H))) $(addprefix $(MANDIR)/man1/,$(notdir $(MANPAGES)))

# ldconfig runs only for a real install as root (DESTDIR empty), so a program linked with -lcnode finds it.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PCDIR) $(DESTDIR)$(INCLUDEDIR)/cnode \
	  $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(BUILD)/cnode $(BUILD)/cnode-epmd $(DESTDIR)$(BINDIR)/
	install -m 644 $(BUILD)/libcnode.so.$(VERSION) $(BUILD)/libcnode.a $(DESTDIR)$(LIBDIR)/
	ln -sf libcnode.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libcnode.so
	install -m 644 $(PUBLIC_H) $(DESTDIR)$(INCLUDEDIR)/cnode/
	for m in $(MANPAGES); do sed 's/@VERSION@/$(VERSION)/g' $$m >$(DESTDIR)$(MANDIR)/man1/$${m#man/}; done
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	  -e 's|@VERSION@|$(VERSION)|g' -e 's|@EI_LIBDIR@|$(EI_LIBDIR)|g' -e 's|@UV_PC@|$(UV_PC)|g' \
	  pkg/cnode.pc.in >$(DESTDIR)$(PCDIR)/cnode.pc
	$(if $(LDCONFIG),@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then $(LDCONFIG) || true; fi)

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@rmdir $(DESTDIR)$(INCLUDEDIR)/cnode 2>/dev/null || true
	$(if $(LDCONFIG),@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then $(LDCONFIG) || true; fi)

# Each examples/<name>/main.c compiled with the flags pkg-config gives for the tree installed at PREFIX, nothing
# else (PKG_CONFIG_PATH points at it), and linked once against the .so and once statically.
examples-installed:
	@sh pkg/examples_installed.sh $(PCDIR) $(BUILD)/examples-installed

install-test: all
	@sh test/run_install.sh $(BUILD)

deb: all
	@rm -rf $(BUILD)/deb
	@$(MAKE) --no-print-directory install DESTDIR=$(abspath $(BUILD))/deb/root PREFIX=/usr \
	  LIBDIR=/usr/lib/$(shell $(CC) -print-multiarch) >/dev/null
	@sh pkg/deb.sh $(BUILD) $(VERSION) $(VERSION_MAJOR)

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ==== fuzz (issue 6): libFuzzer targets in fuzz/. Keep this block at the end of the Makefile. ============
# `make fuzz` builds the targets with clang and runs each for FUZZ_SECONDS on build/fuzz/corpus/<target>
# plus the committed seeds fuzz/seeds/<target>/; it prints execs, execs/s and crashes per target and fails
# on any crash (inputs go to build/fuzz/artifacts/<target>/). `make fuzz-smoke` runs each for 10 s.
# Only the pure codecs are built: not cnode/, and not epmd/'s libuv client and server, so a half-written
# runtime file cannot break fuzzing. erl is not needed: the seeds are committed (fuzz/make_seeds.escript).
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_BUILD   := $(BUILD)/fuzz
FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))
# otp/pg_table.c is pg's pure part (tables and message decoding; fuzz_pg), cluster/pure.c discovery's (fuzz_cluster).
FUZZ_LIB_SRC := $(filter-out epmd/client.c epmd/server.c,$(filter base/% term/% dist/% epmd/% otp/pg_table.c,$(LIB_SRC))) \
                $(filter cluster/pure.c,$(LIB_SRC))
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
                $(filter -I%,$(CFLAGS)) -Ifuzz

.PHONY: fuzz fuzz-smoke fuzz-build
.SECONDARY: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/obj/fuzz/%.o)
fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  FUZZCC $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/libcnode_fuzz.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/fuzz/fuzz_%.o $(FUZZ_BUILD)/libcnode_fuzz.a
	@$(if $(V),,echo "  FUZZLD $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# fuzz_node (issue 16) fuzzes the whole node, so it links the runtime too (cnode/, horde_compat/, EPMD's client
# and server) and the cnode program's demo processes: workers.c and the Horde members it drives, not main.c.
FUZZ_NODE_SRC := $(filter-out $(FUZZ_LIB_SRC),$(LIB_SRC)) cmd/cnode/workers.c cmd/cnode/ctl.c \
                 cmd/cnode/horde_reg.c cmd/cnode/horde_sup.c
# Its harness is fuzz/fuzz_node.c (the node, the op loop) plus fuzz/node_*.c (terms, service requests, the peer),
# named so that they are no targets of their own.
FUZZ_NODE_HARNESS := $(wildcard fuzz/node_*.c)
$(FUZZ_BUILD)/obj/fuzz/fuzz_node.o: FUZZ_CFLAGS += -Icmd/cnode
$(FUZZ_BUILD)/fuzz_node: $(FUZZ_BUILD)/obj/fuzz/fuzz_node.o $(FUZZ_NODE_HARNESS:%.c=$(FUZZ_BUILD)/obj/%.o) \
                         $(FUZZ_NODE_SRC:%.c=$(FUZZ_BUILD)/obj/%.o) $(FUZZ_BUILD)/libcnode_fuzz.a
	@$(if $(V),,echo "  FUZZLD $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz: deps fuzz-build
	@sh fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The build first, with -j2 at nice 10 (`make test` runs this beside the interop suites).
fuzz-smoke:
	@nice -n 10 $(MAKE) --no-print-directory -j2 fuzz-build
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10

# The cmocka replay of every committed seed (and the regression inputs) runs the fuzz targets' own checks
# with the ordinary compiler, so `make unit` and `make asan` replay the corpus without libFuzzer.
FUZZ_REPLAY_SRC := $(wildcard fuzz/fuzz_*.c) $(FUZZ_NODE_HARNESS)
FUZZ_REPLAY_APP := cmd/cnode/workers.c cmd/cnode/ctl.c cmd/cnode/horde_reg.c cmd/cnode/horde_sup.c # fuzz_node's node runs them
$(BUILD)/test/test_fuzz_regress: test/test_fuzz_regress.c $(FUZZ_REPLAY_SRC) $(FUZZ_REPLAY_APP) fuzz/fuzz.h \
                                 fuzz/fuzz_node.h $(TEST_UTIL) $(BUILD)/libcnode.a
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD    $@")
	$(Q)$(CC) $(CFLAGS) -Itest -Ifuzz -Icmd/cnode -DCN_FUZZ_NO_ENTRY $(LDFLAGS) -o $@ $< $(FUZZ_REPLAY_SRC) \
	  $(FUZZ_REPLAY_APP) $(TEST_UTIL) $(BUILD)/libcnode.a $(LDLIBS) -lcmocka

-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
# ==== end of the fuzz block ==========================================================================
