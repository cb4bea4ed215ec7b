# canopy: a plain Makefile. `make help` lists the targets.
#
# Every output goes under build/. The compiler, flags and sanitizers in use
# are recorded in build/.settings; when they change, everything rebuilds, so
# a sanitizer build never links objects from a plain one.

.DEFAULT_GOAL := all
.DELETE_ON_ERROR:
.SUFFIXES:
.SECONDARY:

# ---------------------------------------------------------------- settings
CC       ?= cc
FUZZ_CC  ?= clang
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
LIBDIR   ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR   ?= $(PREFIX)/share/man
DESTDIR  ?=
SANITIZE ?=
WERROR   ?=
FUZZ_SECONDS ?= 60
PKG_CONFIG ?= pkg-config

B := build

VERSION := $(shell sed -n 's/^\#define CN_VERSION_MAJOR \([0-9]*\)/\1/p' include/canopy/version.h).$(shell sed -n 's/^\#define CN_VERSION_MINOR \([0-9]*\)/\1/p' include/canopy/version.h).$(shell sed -n 's/^\#define CN_VERSION_PATCH \([0-9]*\)/\1/p' include/canopy/version.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))

# pkg-config, checked once: a missing package stops the build with the fix.
LIB_PKGS  := libuv msgpack
UI_PKGS   := ncursesw libedit
TEST_PKGS := cmocka
ifeq ($(filter clean help deps format demo,$(MAKECMDGOALS)),)
MISSING_PKGS := $(strip $(foreach p,$(LIB_PKGS) $(UI_PKGS) $(TEST_PKGS),$(if $(shell $(PKG_CONFIG) --exists $(p) && echo y),,$(p))))
ifneq ($(MISSING_PKGS),)
$(error pkg-config cannot find: $(MISSING_PKGS). Run 'make deps' (contrib/install-deps.sh) first)
endif
endif

# pkg-config is asked once, on first use, not when the Makefile is read:
# `make deps check` must see the packages that `deps` has just installed.
pc_cflags = $(shell $(PKG_CONFIG) --cflags $(1))
pc_libs   = $(shell $(PKG_CONFIG) --libs $(1))
lazy_once = $(eval $(1) := $(2))$($(1))
LIB_CFLAGS  = $(call lazy_once,LIB_CFLAGS,$(call pc_cflags,$(LIB_PKGS)))
LIB_LIBS    = $(call lazy_once,LIB_LIBS,$(call pc_libs,$(LIB_PKGS)) -lpthread)
UI_CFLAGS   = $(call lazy_once,UI_CFLAGS,$(call pc_cflags,$(UI_PKGS)))
UI_LIBS     = $(call lazy_once,UI_LIBS,$(call pc_libs,$(UI_PKGS)))
TEST_CFLAGS = $(call lazy_once,TEST_CFLAGS,$(call pc_cflags,$(TEST_PKGS)))
TEST_LIBS   = $(call lazy_once,TEST_LIBS,$(call pc_libs,$(TEST_PKGS)))

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers
# Reasons and paths are cut to fixed buffers with snprintf on purpose; gcc
# warns about every such call. (clang 14 does not know the option.)
WARN += $(shell $(CC) -Werror -Wno-format-truncation -E -x c /dev/null >/dev/null 2>&1 && echo -Wno-format-truncation)
ifneq ($(WERROR),)
WARN += -Werror
endif
ifneq ($(SANITIZE),)
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

CFLAGS   ?= -O2 -g
CPPFLAGS_ALL := -Iinclude -Isrc -D_GNU_SOURCE -DCN_TOP_SRCDIR='"$(CURDIR)"' -DCN_HELPERS_DIR='"$(abspath $(B))/tests/helpers"' $(CPPFLAGS)
CFLAGS_ALL    = -std=c11 -fPIC -fvisibility=hidden $(WARN) $(SAN_FLAGS) $(CFLAGS) $(LIB_CFLAGS)
LDFLAGS_ALL  := $(SAN_FLAGS) $(LDFLAGS)

# ---------------------------------------------------------------- sources
LIB_SRCS   := $(sort $(wildcard src/*.c src/*/*.c))
UI_SRCS    := $(sort $(wildcard ui/*.c))
TEST_SRCS  := $(sort $(wildcard tests/test_*.c))
TEST_SH    := $(sort $(wildcard tests/test_*.sh))
BENCH_SRCS := $(sort $(wildcard tests/bench/bench_*.c))
HELPER_SRCS := $(sort $(wildcard tests/helpers/*.c))
EXAMPLE_SRCS := $(sort $(wildcard contrib/examples/*.c))
DEMO_SRCS  := $(sort $(wildcard contrib/demo/*.c))
FUZZ_SRCS  := $(sort $(wildcard tests/fuzz/fuzz_*.c))
CHAOS_SRCS := $(sort $(wildcard tests/chaos/*.c))
CORPUS_SRCS := $(sort $(wildcard tests/fuzz/mkcorpus_*.c))

LIB_OBJS   := $(LIB_SRCS:%.c=$(B)/obj/%.o)
UI_OBJS    := $(UI_SRCS:%.c=$(B)/obj/%.o)
TEST_BINS  := $(TEST_SRCS:tests/%.c=$(B)/tests/%)
HELPER_BINS := $(HELPER_SRCS:tests/helpers/%.c=$(B)/tests/helpers/%)
EXAMPLE_BINS := $(EXAMPLE_SRCS:contrib/examples/%.c=$(B)/examples/%)
DEMO_BINS  := $(DEMO_SRCS:contrib/demo/%.c=$(B)/demo/%)
BENCH_BINS := $(BENCH_SRCS:tests/bench/%.c=$(B)/bench/%)
CHAOS_BINS := $(CHAOS_SRCS:tests/chaos/%.c=$(B)/chaos/%)
FUZZ_BINS  := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/fuzz/%)

LIBA  := $(B)/libcanopy.a
LIBSO := $(B)/libcanopy.so
BIN   := $(B)/canopy

ifeq ($(V),1)
Q :=
say :=
else
Q := @
say = @printf '  %-6s %s\n' $(1) $(2);
endif

# ---------------------------------------------------------------- build
.PHONY: all
all: $(LIBA) $(LIBSO) $(BIN)

# Rewritten only when the settings change, so objects rebuild only then.
SETTINGS = CC=$(CC) CFLAGS=$(CFLAGS_ALL) CPPFLAGS=$(CPPFLAGS_ALL) LDFLAGS=$(LDFLAGS_ALL)
$(B)/.settings: FORCE
	@mkdir -p $(B)
	@if [ "$$(cat $@ 2>/dev/null)" != '$(SETTINGS)' ]; then echo '$(SETTINGS)' > $@; fi

$(B)/obj/%.o: %.c $(B)/.settings
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(B)/obj/ui/%.o: CFLAGS_ALL += $(UI_CFLAGS)

$(LIBA): $(LIB_OBJS)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^

$(LIBSO): $(LIB_OBJS)
	$(call say,LD,$@)$(CC) -shared -Wl,-soname,libcanopy.so.$(SOMAJOR) $(LDFLAGS_ALL) -o $@ $^ $(LIB_LIBS)

$(BIN): $(UI_OBJS) $(LIBA)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $(UI_OBJS) $(LIBA) $(UI_LIBS) $(LIB_LIBS)

-include $(LIB_OBJS:.o=.d) $(UI_OBJS:.o=.d) $(TEST_SRCS:%.c=$(B)/obj/%.d) $(BENCH_SRCS:%.c=$(B)/obj/%.d) \
         $(HELPER_SRCS:%.c=$(B)/obj/%.d) $(EXAMPLE_SRCS:%.c=$(B)/obj/%.d) $(DEMO_SRCS:%.c=$(B)/obj/%.d) \
         $(CHAOS_SRCS:%.c=$(B)/obj/%.d)

# ---------------------------------------------------------------- tests
$(B)/obj/tests/%.o: CFLAGS_ALL += $(TEST_CFLAGS)

$(B)/tests/%: $(B)/obj/tests/%.o $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBA) $(TEST_LIBS) $(LIB_LIBS)

# The TUI's view models are tested without a terminal: the test links the
# model and the views (no curses), and sees ui/ headers.
TUI_MODEL_OBJS := $(B)/obj/ui/tui_model.o $(B)/obj/ui/lint.o \
                  $(patsubst %.c,$(B)/obj/%.o,$(sort $(wildcard ui/view_*.c)))
$(B)/obj/tests/test_tui_model.o: CFLAGS_ALL += -Iui
$(B)/tests/test_tui_model: $(B)/obj/tests/test_tui_model.o $(TUI_MODEL_OBJS) $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $< $(TUI_MODEL_OBJS) $(LIBA) $(TEST_LIBS) $(LIB_LIBS)

# ---------------------------------------------------------------- examples
# Built against the public header only, as a user's program would be.
$(B)/examples/%: $(B)/obj/contrib/examples/%.o $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBA) $(LIB_LIBS)

.PHONY: examples
examples: $(EXAMPLE_BINS)

# The demo tree (contrib/demo/), built like an example.
$(B)/demo/%: $(B)/obj/contrib/demo/%.o $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBA) $(LIB_LIBS)

# Programs the tests spawn (fake peers and the like).
$(B)/tests/helpers/%: $(B)/obj/tests/helpers/%.o $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBA) $(LIB_LIBS)

.PHONY: tests check
tests: all $(TEST_BINS) $(HELPER_BINS) $(EXAMPLE_BINS) $(DEMO_BINS) $(CHAOS_BINS)

# Runs every cmocka binary and every shell test, prints each one's own
# summary, then one closing line; fails if anything failed.
check: tests
	@pass=0; fail=0; failed=; \
	for t in $(TEST_BINS); do \
	    echo "== $$t"; \
	    if $$t; then pass=$$((pass+1)); else fail=$$((fail+1)); failed="$$failed $$t"; fi; \
	done; \
	for t in $(TEST_SH); do \
	    echo "== $$t"; \
	    if B="$(B)" CC="$(CC)" SANITIZE="$(SANITIZE)" sh $$t; then pass=$$((pass+1)); else fail=$$((fail+1)); failed="$$failed $$t"; fi; \
	done; \
	[ -z "$$failed" ] || echo "failed:$$failed"; \
	echo "check: $$pass passed, $$fail failed"; \
	[ $$fail -eq 0 ]

# ---------------------------------------------------------------- bench
$(B)/bench/%: $(B)/obj/tests/bench/%.o $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBA) $(LIB_LIBS)

.PHONY: bench
bench: all $(BENCH_BINS)
	@sh tests/bench/run.sh $(B)/bench.json $(BENCH_BINS)

# ---------------------------------------------------------------- chaos and soak
# docs/reliability.md. `make check` runs the short versions (tests/test_chaos.sh,
# tests/test_soak.sh); these run the long ones and print the figures.
CHAOS_ROUNDS ?= 1000
$(B)/chaos/%: $(B)/obj/tests/chaos/%.o $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBA) $(LIB_LIBS)

.PHONY: chaos soak
chaos: all $(CHAOS_BINS)
	@CHAOS_ROUNDS=$(CHAOS_ROUNDS) B=$(B) sh tests/chaos/run.sh chaos

soak: all $(CHAOS_BINS)
	@B=$(B) sh tests/chaos/run.sh soak

# ---------------------------------------------------------------- fuzz
# libFuzzer targets, built with clang straight from the sources (never from
# objects another compiler made), with ASan and UBSan.
FUZZ_FLAGS  = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
              -Iinclude -Isrc -D_GNU_SOURCE $(call pc_cflags,msgpack)

$(FUZZ_BINS): $(B)/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) $(wildcard src/*.h src/*/*.h include/*.h include/canopy/*.h)
	@mkdir -p $(@D)
	$(call say,FUZZ,$@)$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(filter src/wire/%.c src/errors.c,$(LIB_SRCS)) $(call pc_libs,msgpack)

.PHONY: fuzz fuzz-run fuzz-corpus
fuzz: $(FUZZ_BINS)

# Regenerates the checked-in seed corpora from the codec itself.
$(B)/fuzz/mkcorpus_%: $(B)/obj/tests/fuzz/mkcorpus_%.o $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBA) $(LIB_LIBS)

fuzz-corpus: $(CORPUS_SRCS:tests/fuzz/%.c=$(B)/fuzz/%)
	@for g in $^; do n=$${g##*/mkcorpus_}; mkdir -p tests/fuzz/corpus/$$n; $$g tests/fuzz/corpus/$$n || exit 1; \
	    echo "fuzz-corpus: tests/fuzz/corpus/$$n: $$(ls tests/fuzz/corpus/$$n | wc -l) seeds"; done

# Each target runs FUZZ_SECONDS on a scratch copy of its checked-in corpus;
# a crash leaves its input in build/fuzz/ and fails the target.
fuzz-run: fuzz
	@for f in $(FUZZ_BINS); do \
	    n=$$(basename $$f); c=tests/fuzz/corpus/$${n#fuzz_}; w=$(B)/fuzz/corpus-$${n#fuzz_}; \
	    mkdir -p $$w; cp $$c/* $$w/ 2>/dev/null; \
	    echo "== $$f for $(FUZZ_SECONDS) s"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=$(B)/fuzz/$$n- $$w 2>$(B)/fuzz/$$n.log; rc=$$?; \
	    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+ *DONE' $(B)/fuzz/$$n.log; \
	    if [ $$rc -ne 0 ]; then tail -40 $(B)/fuzz/$$n.log; echo "fuzz: $$n failed (log: $(B)/fuzz/$$n.log)"; exit 1; fi; \
	done

# ---------------------------------------------------------------- install
.PHONY: install uninstall
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/canopy \
	    $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/canopy
	install -m 644 docs/canopy.1 $(DESTDIR)$(MANDIR)/man1/canopy.1
	install -m 644 $(LIBA) $(DESTDIR)$(LIBDIR)/libcanopy.a
	install -m 755 $(LIBSO) $(DESTDIR)$(LIBDIR)/libcanopy.so.$(VERSION)
	ln -sf libcanopy.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libcanopy.so.$(SOMAJOR)
	ln -sf libcanopy.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libcanopy.so
	install -m 644 include/canopy.h $(DESTDIR)$(INCLUDEDIR)/canopy.h
	install -m 644 include/canopy/*.h $(DESTDIR)$(INCLUDEDIR)/canopy/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' contrib/canopy.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/canopy.pc

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/canopy $(DESTDIR)$(LIBDIR)/libcanopy.a \
	      $(DESTDIR)$(LIBDIR)/libcanopy.so $(DESTDIR)$(LIBDIR)/libcanopy.so.$(SOMAJOR) \
	      $(DESTDIR)$(LIBDIR)/libcanopy.so.$(VERSION) $(DESTDIR)$(LIBDIR)/pkgconfig/canopy.pc \
	      $(DESTDIR)$(INCLUDEDIR)/canopy.h $(DESTDIR)$(MANDIR)/man1/canopy.1
	rm -rf $(DESTDIR)$(INCLUDEDIR)/canopy

# ---------------------------------------------------------------- misc
.PHONY: deps format clean help demo FORCE
deps:
	sh contrib/install-deps.sh

FORMAT_SRCS := $(wildcard src/*.[ch] src/*/*.[ch] ui/*.[ch] include/*.h include/canopy/*.h tests/*.c tests/*/*.c)
format:
	clang-format -i $(FORMAT_SRCS)

# Installs what is missing, builds, and opens the TUI on the demo tree
# (contrib/demo/README.md). Without a terminal it runs the demo with its
# log on stdout instead. DEMO_ARGS go to the demo, e.g. DEMO_ARGS=--tour.
DEMO_ARGS ?=
demo:
	@sh contrib/install-deps.sh
	@$(MAKE) -s -j$$(nproc 2>/dev/null || echo 2) --no-print-directory all $(DEMO_BINS)
	@if [ -t 0 ] && [ -t 1 ]; then \
	    exec $(BIN) run --debug --name demo -- $(B)/demo/pipeline $(DEMO_ARGS); \
	else \
	    echo "make demo: no terminal, so no TUI: the demo's log follows (Ctrl-C stops it);"; \
	    echo "look at it from another terminal with: $(BIN) attach demo"; \
	    CANOPY_TREE=demo CANOPY_DEBUG=1 exec $(B)/demo/pipeline $(DEMO_ARGS); \
	fi

clean:
	rm -rf $(B)

help:
	@echo "make               build $(LIBA), $(LIBSO) and $(BIN)"
	@echo "make deps          install the Debian packages (contrib/install-deps.sh)"
	@echo "make check         build and run every test (SANITIZE=address,undefined for sanitizers)"
	@echo "make examples      build the examples as build/examples/NAME"
	@echo "make demo          install what is missing, build, open the TUI on the demo tree"
	@echo "make bench         run the benchmarks; figures also in $(B)/bench.json"
	@echo "make fuzz          build the libFuzzer targets with clang"
	@echo "make fuzz-run      run each fuzz target for FUZZ_SECONDS (default 60)"
	@echo "make install       install the tool, its man page, the library, headers and canopy.pc"
	@echo "                   into DESTDIR/PREFIX (default /usr/local); make uninstall removes them"
	@echo "make format        apply .clang-format to the sources"
	@echo "make clean         remove $(B)/"
	@echo "options: CC=clang V=1 WERROR=1 SANITIZE=address,undefined PREFIX=... DESTDIR=..."

FORCE:
