# cutover: one GNU Makefile.
#   make            build ./cutover (optimised)
#   make test       unit tests (cmocka) + end-to-end tests (pytest) on an ASan+UBSan build
#   make unit M=x   unit tests of one module only (while developing it)
#   make bench      benchmarks: cutover run vs wrk, ab, Artillery; cutover serve vs
#                   HAProxy, nginx (installs them; docs/benchmarks.md)
#   make soak       a 10-minute `cutover run` (SOAK_DURATION=600 s) sampling its RSS
#                   every 10 s: is memory flat? (bench/soak.sh; docs/benchmarks.md)
#   make demo       the main job (installs what it needs first)
#   make deps       install the Debian packages below (as root), or print the command
# Everything we link or test with comes from these Debian packages, listed once:
DEB_PACKAGES := gcc make pkg-config libc6-dev libuv1-dev libssl-dev openssl node-llhttp \
                libyaml-dev libjansson-dev libsqlite3-dev libcmocka-dev zlib1g-dev python3 python3-pytest \
                prometheus chromium

CC      ?= cc
PKGS    := libuv openssl yaml-0.1 jansson sqlite3 zlib
LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp
WARN    := -Wall -Wextra -Werror -Wstrict-prototypes -Wshadow -Wundef -Wno-unused-parameter
CFLAGS_BASE := -std=c17 -D_GNU_SOURCE $(WARN) -fno-omit-frame-pointer -g -pthread \
               -Isrc -I$(LLHTTP_INC) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -lpthread

# Modules in dependency order: a module may include only those before it.
MODULES := base conf stats net http loadtest upstream router rollout report cli
DEPS_base     := base
DEPS_conf     := base conf
DEPS_stats    := base stats
DEPS_net      := base net
DEPS_http     := base net http
DEPS_rollout  := base conf stats net http rollout
DEPS_loadtest := base conf stats net http loadtest
DEPS_upstream := base stats net http upstream
DEPS_router   := base conf stats net http router
DEPS_report   := base report
DEPS_cli      := $(MODULES)

REL := build/rel
SAN := build/san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined

srcs_of = $(wildcard src/$(1)/*.c)
LLHTTP_C := api.c http.c llhttp.c

.PHONY: all test unit e2e bench soak demo deps clean
all: cutover

# ---- release build -------------------------------------------------------
$(REL)/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O2 -MMD -MP -c $< -o $@
$(REL)/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -O2 -g -I$(LLHTTP_INC) -w -c $< -o $@
$(SAN)/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O1 $(SANFLAGS) -MMD -MP -c $< -o $@
$(SAN)/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -O1 -g -I$(LLHTTP_INC) -w $(SANFLAGS) -c $< -o $@

objs = $(patsubst src/%.c,$(1)/%.o,$(foreach m,$(2),$(call srcs_of,$(m)))) \
       $(if $(filter http,$(2)),$(addprefix $(1)/llhttp/,$(LLHTTP_C:.c=.o)))

ALL_OBJS_REL := $(call objs,$(REL),$(MODULES)) $(REL)/main.o
ALL_OBJS_SAN := $(call objs,$(SAN),$(MODULES)) $(SAN)/main.o

cutover: $(ALL_OBJS_REL)
	$(CC) -pthread -o $@ $^ $(LDLIBS)
$(SAN)/cutover: $(ALL_OBJS_SAN)
	$(CC) -pthread $(SANFLAGS) -o $@ $^ $(LDLIBS)

# ---- unit tests: tests/unit/<module>/test_*.c link that module and those below it
UNIT_SRCS := $(wildcard tests/unit/*/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(SAN)/tests/%,$(UNIT_SRCS))
define unit_rule
$(SAN)/tests/$(1)/%: tests/unit/$(1)/%.c $(call objs,$(SAN),$(DEPS_$(1)))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_BASE) -O1 $$(SANFLAGS) -Itests/unit -o $$@ $$^ $$(LDLIBS) -lcmocka
endef
$(foreach m,$(MODULES),$(eval $(call unit_rule,$(m))))

unit: $(if $(M),$(filter $(SAN)/tests/$(M)/%,$(UNIT_BINS)),$(UNIT_BINS))
	@set -e; fail=0; for t in $^; do echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 $$t || fail=1; \
	  case $$t in */tests/net/*) echo "== $$t, early streams on the epoll path (CUTOVER_IO_URING=0)"; \
	    CUTOVER_IO_URING=0 ASAN_OPTIONS=detect_leaks=1 $$t || fail=1;; esac; done; exit $$fail

e2e: $(SAN)/cutover
	CUTOVER_BIN=$(CURDIR)/$(SAN)/cutover /usr/bin/python3 -m pytest -q tests/e2e

test: deps
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory e2e

bench: deps cutover
	bash bench/run.sh
	bash bench/serve.sh

soak: deps cutover
	bash bench/soak.sh

demo: deps cutover
	./cutover demo

deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then echo "installing:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) || exit 1; \
	else echo "missing Debian packages; run: sudo apt-get install -y$$missing"; exit 1; fi

clean:
	rm -rf build cutover

-include $(shell find build -name '*.d' 2>/dev/null)
