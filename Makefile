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
STATIC_DEPS ?= 1
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
# What a program links (LIB_LIBS is the shared library's). An actor is a
# fresh exec, and every shared library costs each actor its loading, its
# relocations and its resident pages: canopy's own programs link libuv and
# msgpack-c statically when their archives are installed (Debian's
# libuv1-dev and libmsgpack-dev ship them). STATIC_DEPS=0 links them shared.
# docs/performance.md has what it saves (spawn_100_ms, idle_actor_rss_kib).
pc_own_l  = $(firstword $(shell $(PKG_CONFIG) --libs-only-l $(1)))
ar_path   = $(firstword $(foreach a,lib$(1).a lib$(1)_a.a,$(filter /%,$(shell $(CC) -print-file-name=$(a)))))
own_ls    = $(foreach p,$(LIB_PKGS),$(call pc_own_l,$(p)))
static_of = $(foreach l,$(1),$(or $(call ar_path,$(l:-l%=%)),$(l)))
EXE_LIBS  = $(call lazy_once,EXE_LIBS,$(if $(filter 1,$(STATIC_DEPS)),$(call static_of,$(own_ls)) $(filter-out $(own_ls),$(LIB_LIBS)),$(LIB_LIBS)))
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
SETTINGS = CC=$(CC) CFLAGS=$(CFLAGS_ALL) CPPFLAGS=$(CPPFLAGS_ALL) LDFLAGS=$(LDFLAGS_ALL) STATIC_DEPS=$(STATIC_DEPS)
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
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $(UI_OBJS) $(LIBA) $(UI_LIBS) $(EXE_LIBS)

-include $(LIB_OBJS:.o=.d) $(UI_OBJS:.o=.d) $(TEST_SRCS:%.c=$(B)/obj/%.d) $(BENCH_SRCS:%.c=$(B)/obj/%.d) \
         $(HELPER_SRCS:%.c=$(B)/obj/%.d) $(EXAMPLE_SRCS:%.c=$(B)/obj/%.d) $(DEMO_SRCS:%.c=$(B)/obj/%.d) \
         $(CHAOS_SRCS:%.c=$(B)/obj/%.d)

# ---------------------------------------------------------------- tests
$(B)/obj/tests/%.o: CFLAGS_ALL += $(TEST_CFLAGS)

$(B)/tests/%: $(B)/obj/tests/%.o $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBA) $(TEST_LIBS) $(EXE_LIBS)

# The TUI's view models are tested without a terminal: the test links the
# model and the views (no curses), and sees ui/ headers.
TUI_MODEL_OBJS := $(B)/obj/ui/tui_model.o $(B)/obj/ui/lint.o $(B)/obj/ui/fmt.o \
                  $(patsubst %.c,$(B)/obj/%.o,$(sort $(wildcard ui/view_*.c)))
$(B)/obj/tests/test_tui_model.o: CFLAGS_ALL += -Iui
$(B)/tests/test_tui_model: $(B)/obj/tests/test_tui_model.o $(TUI_MODEL_OBJS) $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $< $(TUI_MODEL_OBJS) $(LIBA) $(TEST_LIBS) $(EXE_LIBS)

# ---------------------------------------------------------------- examples
# Built against the public header only, as a user's program would be.
$(B)/examples/%: $(B)/obj/contrib/examples/%.o $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBA) $(EXE_LIBS)

.PHONY: examples
examples: $(EXAMPLE_BINS)

# The demo tree (contrib/demo/), built like an example.
$(B)/demo/%: $(B)/obj/contrib/demo/%.o $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBA) $(EXE_LIBS)

# Programs the tests spawn (fake peers and the like).
$(B)/tests/helpers/%: $(B)/obj/tests/helpers/%.o $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBA) $(EXE_LIBS)

.PHONY: tests check
tests: all $(TEST_BINS) $(HELPER_BINS) $(EXAMPLE_BINS) $(DEMO_BINS) $(CHAOS_BINS)

# Runs every cmocka binary and every shell test, prints each one's own
# summary and how long it took, then one closing line; fails if anything
# failed.
check: tests
	@pass=0; fail=0; failed=; t0=$$(date +%s); \
	for t in $(TEST_BINS) $(TEST_SH); do \
	    echo "== $$t"; s=$$(date +%s); \
	    case $$t in *.sh) run="sh $$t";; *) run=$$t;; esac; \
	    if B="$(B)" CC="$(CC)" SANITIZE="$(SANITIZE)" $$run; then pass=$$((pass+1)); else fail=$$((fail+1)); failed="$$failed $$t"; fi; \
	    echo "== $$t: $$(($$(date +%s) - s)) s"; \
	done; \
	[ -z "$$failed" ] || echo "failed:$$failed"; \
	echo "check: $$pass passed, $$fail failed, in $$(($$(date +%s) - t0)) s"; \
	[ $$fail -eq 0 ]

# ---------------------------------------------------------------- bench
$(B)/bench/%: $(B)/obj/tests/bench/%.o $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBA) $(EXE_LIBS)

.PHONY: bench
bench: all $(BENCH_BINS)
	@sh tests/bench/run.sh $(B)/bench.json $(BENCH_BINS)

# ---------------------------------------------------------------- chaos and soak
# docs/reliability.md. `make check` runs the short versions (tests/test_chaos.sh,
# tests/test_soak.sh); these run the long ones and print the figures.
CHAOS_ROUNDS ?= 1000
$(B)/chaos/%: $(B)/obj/tests/chaos/%.o $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBA) $(EXE_LIBS)

.PHONY: chaos soak
chaos: all $(CHAOS_BINS)
	@CHAOS_ROUNDS=$(CHAOS_ROUNDS) B=$(B) sh tests/chaos/run.sh chaos

soak: all $(CHAOS_BINS)
	@B=$(B) sh tests/chaos/run.sh soak

# ---------------------------------------------------------------- fuzz
# libFuzzer targets, built with clang straight from the sources (never from
# objects another compiler made), with ASan and UBSan: the objects under
# $(B)/fuzz/obj/ are FUZZ_CC's own, shared by the targets.
FUZZ_FLAGS  = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
              -Iinclude -Isrc -D_GNU_SOURCE $(call pc_cflags,msgpack)
FUZZ_SETTINGS = $(FUZZ_CC) $(FUZZ_FLAGS)

# What each target links besides its own file: FUZZ_DEPS_name (sources),
# FUZZ_LIBS_name, FUZZ_LDFLAGS_name. fuzz_attach and fuzz_repl run a root
# in-process (tests/fuzz/root_harness.c); the symbols they wrap would end
# the process (tests/fuzz/root_harness.h says why each).
FUZZ_ROOT_WRAP := -Wl,--wrap=kill,--wrap=cn__cancel_tree,--wrap=cn__shutdown_after_debug
FUZZ_DEPS_fuzz_wire     = $(filter src/wire/%.c src/errors.c,$(LIB_SRCS))
FUZZ_LIBS_fuzz_wire     = $(call pc_libs,msgpack)
FUZZ_DEPS_fuzz_attach   = $(LIB_SRCS) tests/fuzz/root_harness.c
FUZZ_LIBS_fuzz_attach   = $(LIB_LIBS)
FUZZ_LDFLAGS_fuzz_attach = $(FUZZ_ROOT_WRAP)
FUZZ_DEPS_fuzz_repl     = $(FUZZ_DEPS_fuzz_attach)
FUZZ_LIBS_fuzz_repl     = $(LIB_LIBS)
FUZZ_LDFLAGS_fuzz_repl  = $(FUZZ_ROOT_WRAP)
FUZZ_DEPS_fuzz_client   = $(LIB_SRCS)
FUZZ_LIBS_fuzz_client   = $(LIB_LIBS)
# The whole tool but its main(), which fuzz_cli must not run (-Dmain).
FUZZ_DEPS_fuzz_cli      = $(LIB_SRCS) $(UI_SRCS)
FUZZ_LIBS_fuzz_cli      = $(UI_LIBS) $(LIB_LIBS)

$(B)/fuzz/.settings: FORCE
	@mkdir -p $(@D)
	@if [ "$$(cat $@ 2>/dev/null)" != '$(FUZZ_SETTINGS)' ]; then echo '$(FUZZ_SETTINGS)' > $@; fi

# FUZZ_OBJ_FLAGS: what some objects add (not in .settings: a prerequisite
# would inherit it from the object that asked for it first).
$(B)/fuzz/obj/%.o: %.c $(B)/fuzz/.settings
	@mkdir -p $(@D)
	$(call say,FUZZCC,$<)$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_OBJ_FLAGS) -MMD -MP -c $< -o $@

$(B)/fuzz/obj/tests/fuzz/%.o: FUZZ_OBJ_FLAGS += -Wall -Wextra -Wno-missing-field-initializers \
                                                -Werror=implicit-function-declaration
$(B)/fuzz/obj/ui/%.o: FUZZ_OBJ_FLAGS += $(UI_CFLAGS)
$(B)/fuzz/obj/ui/canopy.o: FUZZ_OBJ_FLAGS += -Dmain=canopy_main
$(B)/fuzz/obj/tests/fuzz/fuzz_cli.o: FUZZ_OBJ_FLAGS += $(UI_CFLAGS) -Iui

-include $(wildcard $(B)/fuzz/obj/*/*.d $(B)/fuzz/obj/*/*/*.d)

fuzz_objs = $(patsubst %.c,$(B)/fuzz/obj/%.o,$(1))
.SECONDEXPANSION:
$(FUZZ_BINS): $(B)/fuzz/%: $(B)/fuzz/obj/tests/fuzz/%.o $$(call fuzz_objs,$$(FUZZ_DEPS_$$*))
	$(call say,FUZZ,$@)$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_LDFLAGS_$*) -o $@ $^ $(FUZZ_LIBS_$*)

# The same harnesses built by $(CC) with the build's own flags and a main
# that replays files (tests/fuzz/replay.c), no libFuzzer: `make check`
# runs each over its checked-in corpus, regress-* inputs included
# (tests/test_fuzz_replay.sh). fuzz_cli gets the tool without its main.
REPLAY_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/tests/replay/%)
REPLAY_OBJS_fuzz_attach = $(B)/obj/tests/fuzz/root_harness.o
REPLAY_OBJS_fuzz_repl   = $(B)/obj/tests/fuzz/root_harness.o
REPLAY_OBJS_fuzz_cli    = $(B)/obj/tests/fuzz/canopy_nomain.o $(filter-out %/canopy.o,$(UI_OBJS))
REPLAY_LIBS_fuzz_cli    = $(UI_LIBS)

$(B)/obj/tests/fuzz/fuzz_cli.o: CFLAGS_ALL += $(UI_CFLAGS) -Iui
$(B)/obj/tests/fuzz/canopy_nomain.o: ui/canopy.c $(B)/.settings
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $(UI_CFLAGS) -Dmain=canopy_main \
	    -Wno-missing-prototypes -MMD -MP -c $< -o $@

$(REPLAY_BINS): $(B)/tests/replay/%: $(B)/obj/tests/fuzz/%.o $(B)/obj/tests/fuzz/replay.o \
                                     $$(REPLAY_OBJS_$$*) $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) $(FUZZ_LDFLAGS_$*) -o $@ $(filter %.o,$^) $(LIBA) \
	    $(REPLAY_LIBS_$*) $(LIB_LIBS)

-include $(wildcard $(B)/obj/tests/fuzz/*.d)
tests: $(REPLAY_BINS)

.PHONY: fuzz fuzz-run fuzz-corpus
fuzz: $(FUZZ_BINS)

# Regenerates the checked-in seed corpora: from the codec itself, and the
# client's from what a real root answers (mkcorpus_client is a tree).
$(B)/fuzz/mkcorpus_%: $(B)/obj/tests/fuzz/mkcorpus_%.o $(LIBA)
	@mkdir -p $(@D)
	$(call say,LD,$@)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBA) $(EXE_LIBS)

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
	    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+[[:space:]]+DONE' $(B)/fuzz/$$n.log; \
	    if [ $$rc -ne 0 ]; then tail -40 $(B)/fuzz/$$n.log; echo "fuzz: $$n failed (log: $(B)/fuzz/$$n.log)"; exit 1; fi; \
	done

# ---------------------------------------------------------------- tools
# `make lint`: clang-tidy, with the checks in .clang-tidy, over every C file
# (library, tool, tests, helpers, examples, demo) and the project headers
# they include, each with the flags the build gives it. The flags go to
# $(B)/compile_commands.json, which editors and clangd can use too.
CLANG_TIDY ?= clang-tidy
LINT_JOBS  ?= 2
LINT_SRCS  := $(LIB_SRCS) $(UI_SRCS) $(TEST_SRCS) $(HELPER_SRCS) $(EXAMPLE_SRCS) $(DEMO_SRCS)

# A file's flags: the common ones plus what the rules above add for its
# directory (keep the two in step). The gcc-only option and -Werror are
# dropped: clang-tidy is clang, and .clang-tidy decides what fails.
lint_flags = $(filter-out -Werror -Wno-format-truncation,$(CPPFLAGS_ALL) $(CFLAGS_ALL)) \
             $(if $(filter ui/%,$(1)),$(UI_CFLAGS)) $(if $(filter tests/%,$(1)),$(TEST_CFLAGS)) \
             $(if $(filter tests/test_tui_model.c,$(1)),-Iui)

# One entry per file, its arguments as a JSON list: each argument on its
# own line through sed, which escapes it and quotes it.
$(B)/compile_commands.json: $(B)/.settings Makefile
	$(call say,GEN,$@){ echo '['; sep=; \
	$(foreach f,$(LINT_SRCS),printf '%s{"directory": "%s", "file": "%s", "arguments": [\n' "$$sep" '$(CURDIR)' '$(f)'; \
	    for a in $(CC) $(call lint_flags,$(f)); do printf '%s\n' "$$a"; done | sed 's/[\\"]/\\&/g; s/.*/  "&",/'; \
	    printf '  "-c", "%s"]}\n' '$(f)'; sep=,;) \
	echo ']'; } > $@

# Each file's report goes to $(B)/lint/, all of them to $(B)/lint.log;
# a finding in a header shows once, however many files include it. The
# header filter names this tree's headers exactly (.clang-tidy's is for
# editors, which have no $(CURDIR)). Any finding fails the target.
LINT_DIAG := ^[^ ]+:[0-9]+:[0-9]+: (warning|error):
.PHONY: lint
lint: $(B)/compile_commands.json
	@command -v $(CLANG_TIDY) >/dev/null || { echo "lint: no $(CLANG_TIDY); run 'make deps'"; exit 2; }
	@rm -rf $(B)/lint; start=$$(date +%s); \
	printf '%s\n' $(LINT_SRCS) | xargs -P$(LINT_JOBS) -I{} sh -c \
	    'printf "  %-6s %s\n" TIDY {}; f=$(B)/lint/{}.log; mkdir -p $${f%/*}; \
	     $(CLANG_TIDY) -p $(B) --quiet --header-filter="^$(CURDIR)/(src|ui|include|tests)/" {} >$$f 2>&1 \
	         || echo "clang-tidy exited $$? on {}" >>$$f'; \
	cat $$(printf '$(B)/lint/%s.log ' $(LINT_SRCS)) > $(B)/lint.log; \
	awk '/$(LINT_DIAG)/ { show = !seen[$$0]++ } /^[0-9]+ warnings? (generated|treated)|^clang-tidy exited/ { show = 0 } show' \
	    $(B)/lint.log; \
	n=$$(grep -E '$(LINT_DIAG)' $(B)/lint.log | sort -u | wc -l); \
	if [ $$n -eq 0 ]; then grep '^clang-tidy exited' $(B)/lint.log; fi; \
	echo "lint: $(words $(LINT_SRCS)) files, $$n findings, $$(( $$(date +%s) - start )) s (report: $(B)/lint.log)"; \
	[ $$n -eq 0 ] && ! grep -q '^clang-tidy exited' $(B)/lint.log

# `make memcheck`: valgrind's memcheck over each cmocka binary and over the
# examples that start small trees. A program passes if it passes by itself
# and valgrind finds no error in any of its processes: no invalid access,
# use of an uninitialised value or bad free, and no leak that is definitely
# lost ("possibly lost" blocks are the thread-local storage of the broker
# and task threads, and what they hold, still running at exit on purpose:
# an actor exits without joining them). Each process logs to
# $(B)/memcheck/PROG/PID.log, the program's own output to .../output.
#
# Children re-execute /proc/self/exe, which valgrind cannot follow (it would
# start valgrind itself): CANOPY_EXE names the program instead. Test
# binaries run their children natively (--trace-children=no): under
# valgrind a child takes longer to exit than the runtime waits for an exit
# status (50 ms) or a shutdown (500 ms), which several tests check. The
# examples run every actor under valgrind (--trace-children=yes), so the
# callee side is checked too; programs under /usr and /bin are not. The
# tests' own time limits are scaled by CN_TEST_TIME_SCALE (tests/suite.h).
VALGRIND        ?= valgrind
MEMCHECK_SCALE  ?= 10
MEMCHECK_TIMEOUT ?= 900
MEMCHECK_FLAGS  := --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
                   --show-leak-kinds=definite --num-callers=30 \
                   $(if $(wildcard tests/valgrind.supp),--suppressions=tests/valgrind.supp)
MEMCHECK_BINS   := $(TEST_BINS) $(addprefix $(B)/examples/,hello stream cancel)

ifneq ($(filter memcheck,$(MAKECMDGOALS)),)
ifneq ($(SANITIZE),)
$(error memcheck: not with SANITIZE=$(SANITIZE): valgrind and the sanitizers exclude each other)
endif
endif

.PHONY: memcheck
memcheck: tests
	@command -v $(VALGRIND) >/dev/null || { echo "memcheck: no $(VALGRIND); run 'make deps'"; exit 2; }
	@rm -rf $(B)/memcheck; start=$$(date +%s); pass=0; fail=0; failed=; \
	for p in $(MEMCHECK_BINS); do \
	    n=$${p##*/}; d=$(B)/memcheck/$$n; mkdir -p $$d; t0=$$(date +%s); \
	    case $$p in */examples/*) kids=yes;; *) kids=no;; esac; \
	    case $$p in /*) exe=$$p;; *) exe=$(CURDIR)/$$p;; esac; \
	    CANOPY_EXE=$$exe CN_TEST_TIME_SCALE=$(MEMCHECK_SCALE) timeout -k 10 $(MEMCHECK_TIMEOUT) \
	        $(VALGRIND) $(MEMCHECK_FLAGS) --trace-children=$$kids --trace-children-skip='/usr/*,/bin/*' \
	        --log-file=$$d/%p.log $$p >$$d/output 2>&1; rc=$$?; \
	    errs=$$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' $$d/*.log | awk '{ s += $$1 } END { print s + 0 }'); \
	    procs=$$(grep -l 'ERROR SUMMARY' $$d/*.log | wc -l); \
	    if [ $$rc -eq 0 ] && [ $$errs -eq 0 ]; then verdict=ok; pass=$$((pass + 1)); \
	    else verdict=FAIL; fail=$$((fail + 1)); failed="$$failed $$n"; fi; \
	    printf '  %-4s %-16s %3d error(s) in %2d process(es), exit %d, %3d s\n' \
	        $$verdict $$n $$errs $$procs $$rc $$(( $$(date +%s) - t0 )); \
	    if [ $$verdict = FAIL ]; then \
	        for l in $$(grep -L 'ERROR SUMMARY: 0 errors' $$d/*.log); do \
	            grep -q 'ERROR SUMMARY' $$l && { echo "--- $$l"; grep -v '^==[0-9]*== *$$' $$l | sed -n '6,65p'; }; \
	        done; \
	        [ $$rc -eq 0 ] || tail -20 $$d/output; \
	    fi; \
	done; \
	[ -z "$$failed" ] || echo "failed:$$failed"; \
	echo "memcheck: $$pass passed, $$fail failed, $$(( $$(date +%s) - start )) s (logs: $(B)/memcheck/)"; \
	[ $$fail -eq 0 ]

# ---------------------------------------------------------------- install
.PHONY: install uninstall
# A directory under PREFIX goes into canopy.pc as ${prefix}/..., so that
# `pkg-config --define-variable=prefix=DIR` (or --define-prefix) finds a
# tree that was moved; one elsewhere stays as it is.
pc_rel = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
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
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(call pc_rel,$(LIBDIR))|' \
	    -e 's|@INCLUDEDIR@|$(call pc_rel,$(INCLUDEDIR))|' \
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
	@echo "make chaos         kill -9 / SIGSTOP CHAOS_ROUNDS (1000) times on a streaming tree"
	@echo "make soak          1000 spawn/call/cancel cycles, then 200 actors under load for 2 x 60 s"
	@echo "make fuzz          build the libFuzzer targets with clang"
	@echo "make fuzz-run      run each fuzz target for FUZZ_SECONDS (default 60)"
	@echo "make install       install the tool, its man page, the library, headers and canopy.pc"
	@echo "                   into DESTDIR/PREFIX (default /usr/local); make uninstall removes them"
	@echo "make format        apply .clang-format to the sources"
	@echo "make lint          clang-tidy (.clang-tidy) over every C file; fails on any finding"
	@echo "make memcheck      the tests and three examples under valgrind; fails on any error"
	@echo "make clean         remove $(B)/"
	@echo "options: CC=clang V=1 WERROR=1 SANITIZE=address,undefined STATIC_DEPS=0 PREFIX=... DESTDIR=..."

FORCE:
