# Sluice - top-level commands. The README's two commands are `make run` and
# `make test`; each installs its Debian dependencies first if they are missing.
#
#   make run          build and start a single-node broker on localhost:9092 (data in ./data)
#   make test         build and run every test (unit + integration)
#   make test-asan    the same tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make test-tsan    the unit tests and the broker's integration tests under ThreadSanitizer
#   make fuzz-ci      build the libFuzzer targets and run each briefly from its seed corpus
#   make bench        build and run the benchmarks (ratios against same-run baselines)
#   make sim          a long deterministic-simulation campaign (make test runs a bounded one)
#   make soak         longer real-process campaigns (the mirror under ten SIGKILLs)
#   make gen          regenerate src/proto/gen from ../shared/kafka-protocol
#   make check-gen    fail if regeneration would change the committed code
#   make format       clang-format the hand-written sources; format-check only checks
#   make install      sluiced, sluice and Kafka's tool names into $(DESTDIR)$(PREFIX)/bin
#   make deb          a Debian package dist/sluice_<version>_<arch>.deb (docs/packaging.md)
#   make test-deb     build the package, install it into a scratch root and run it as systemd would
#   make test-aarch64 cross-build for arm64 and run the unit tests and a smoke test under qemu

JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
BUILD     ?= build/release
ASAN      ?= build/asan
TSAN      ?= build/tsan
FUZZ      ?= build/fuzz
AARCH64   ?= build/aarch64
PYTHON    ?= /usr/bin/python3
FUZZ_SECS ?= 30
SIM_SEEDS ?= 100000
SIM_SECS  ?= 1800
# A fresh first seed each time (printed by the runner's failures); pass
# SIM_FIRST=N to repeat a campaign.
SIM_FIRST ?= $(shell date +%s)
SPEC      ?= ../shared/kafka-protocol/messages
PREFIX    ?= /usr/local
DESTDIR   ?=
VERSION_STR = $(shell sh scripts/version.sh)
# Kafka's tool names: links to bin/sluice-kafka-tool, which dispatches on its name.
KAFKA_TOOLS = $(notdir $(wildcard bin/kafka-*.sh))
HOST_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB_ARCH  ?= $(HOST_ARCH)
DEB       = dist/sluice_$(VERSION_STR)_$(DEB_ARCH).deb

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' | grep -v '^src/proto/gen/' | grep -v '^tests/unit/gen/')

.PHONY: all deps deps-test build build-asan run run-cluster test test-unit test-integration test-asan test-tsan \
        fuzz-build fuzz-ci bench soak sim gen check-gen format format-check clean install deb test-deb test-aarch64

all: build

deps:
	@scripts/install-deps.sh

deps-test:
	@scripts/install-deps.sh --test
	@# The KIP-848 client (@platformatic/kafka) from npm, at the pinned version;
	@# its tests say how to install it and skip when this could not.
	@if [ ! -d tests/integration/node/node_modules ] && command -v npm >/dev/null 2>&1; then \
	    npm ci --prefix tests/integration/node --no-audit --no-fund >/dev/null 2>&1 \
	        || echo "deps-test: npm ci in tests/integration/node failed; the consumer-protocol client tests will skip"; \
	fi

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON
	cmake --build $(ASAN) -j$(JOBS)

run: build
	@mkdir -p data
	$(BUILD)/sluiced --override log.dirs=./data

# A local cluster of three combined nodes (scripts/run-cluster.sh; N=5 for five).
run-cluster: build
	scripts/run-cluster.sh $(or $(N),3)

test: deps-test build
	$(MAKE) --no-print-directory test-unit test-integration

test-unit:
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# Integration tests start real sluiced processes; run only once some exist.
test-integration:
	@if ls tests/integration/test_*.py >/dev/null 2>&1; then \
	    SLUICE_BUILD=$(BUILD) $(PYTHON) -m pytest -q tests/integration; \
	else echo "test-integration: no integration tests yet"; fi

test-asan: deps-test build-asan
	cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --output-on-failure -j$(JOBS)
	@# A small quarantine keeps freed memory from counting as growth in the
	@# bounded-memory tests; leaks at exit fail the test that stopped the broker.
	@if ls tests/integration/test_*.py >/dev/null 2>&1; then \
	    ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=8:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 SLUICE_FAULT_SECS=30 SLUICE_EOS_SECS=20 \
	    SLUICE_BUILD=$(ASAN) $(PYTHON) -m pytest -q tests/integration; fi

# ThreadSanitizer: any data race makes sluiced exit with 66, which fails the
# test that stopped it. The sluice CLI's tests (test_cli, test_mirror, test_acls' and test_quotas' CLI tests, and the
# consumer-protocol test that runs `sluice groups`) are left out (librdkafka
# is not instrumented, and TSan cannot run it), and so are the memory-growth tests
# (TSan's shadow memory counts as growth).
test-tsan: deps-test
	cmake -S . -B $(TSAN) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="-fsanitize=thread -O1 -g" \
	    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread"
	cmake --build $(TSAN) -j$(JOBS)
	cd $(TSAN) && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j$(JOBS)
	TSAN_OPTIONS=halt_on_error=0:exitcode=66 SLUICE_FAULT_SECS=30 SLUICE_EOS_SECS=20 SLUICE_BUILD=$(TSAN) $(PYTHON) -m pytest -q tests/integration \
	    --ignore tests/integration/test_cli.py --ignore tests/integration/test_mirror.py \
	    --ignore tests/integration/test_kafka_tools.py \
	    --deselect tests/integration/test_protocol_edges.py::test_slow_reader_memory_is_bounded \
	    --deselect tests/integration/test_net_limits.py::test_unread_old_format_fetch_responses_are_bounded \
	    --deselect tests/integration/test_consumer_protocol.py::test_classic_tools_describe_a_consumer_group \
	    --deselect tests/integration/test_acls.py::test_cli_add_list_remove \
	    --deselect tests/integration/test_acls.py::test_cli_without_authorizer_reports_security_disabled \
	    --deselect tests/integration/test_quotas.py::test_cli_alter_describe_and_errors

fuzz-build: deps-test
	CC=clang cmake -S . -B $(FUZZ) -DCMAKE_BUILD_TYPE=Debug -DSLUICE_FUZZ=ON
	cmake --build $(FUZZ) -j$(JOBS)

# Each target runs FUZZ_SECS seconds from a scratch copy of its committed seed
# corpus (tests/fuzz/corpus/<name without fuzz_>); any crash fails the run.
fuzz-ci: fuzz-build
	@set -e; for t in $(FUZZ)/fuzz_*; do \
	    [ -x "$$t" ] || continue; name=$$(basename $$t); seed=tests/fuzz/corpus/$${name#fuzz_}; \
	    work=$$(mktemp -d); [ -d "$$seed" ] && cp -r "$$seed"/. "$$work"/; \
	    echo "fuzz: $$name for $(FUZZ_SECS)s"; \
	    "$$t" -max_total_time=$(FUZZ_SECS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ)/$$name- "$$work" 2>$(FUZZ)/$$name.log \
	        || { tail -50 $(FUZZ)/$$name.log; rm -rf "$$work"; exit 1; }; \
	    grep -E 'stat::number_of_executed_units' $(FUZZ)/$$name.log || true; \
	    rm -rf "$$work"; \
	done

# Micro-benchmarks (bench_*.c), broker memory, then the end-to-end suite
# (bench/run: sluice perf against a fresh broker, CSV + SVG in bench/results),
# then bench/mirror (sluice mirror between two fresh brokers).
bench: deps-test build
	@for b in $(BUILD)/bench_*; do [ -x "$$b" ] && { echo "== $$(basename $$b)"; $$b; }; done
	$(PYTHON) bench/bench_rss.py --build $(BUILD)
	$(PYTHON) bench/run --build $(BUILD)
	$(PYTHON) bench/mirror --build $(BUILD)

# Longer campaigns than make test can afford: the mirror killed ten times;
# the replication fault campaign (tests/integration/test_faults.py) for
# FAULT_ROUNDS seeds of FAULT_SECS seconds each, from FAULT_SEED.
FAULT_ROUNDS ?= 10
FAULT_SECS ?= 180
FAULT_SEED ?= 1
# And EOS_ROUNDS rounds of EOS_SECS seconds of the exactly-once pipeline
# under kills (tests/integration/test_eos_chaos.py), from EOS_SEED.
EOS_ROUNDS ?= 5
EOS_SECS ?= 120
EOS_SEED ?= 1
soak: deps-test build
	SLUICE_MIRROR_KILLS=10 SLUICE_BUILD=$(BUILD) $(PYTHON) -m pytest -q -s tests/integration/test_mirror.py
	SLUICE_FAULT_ROUNDS=$(FAULT_ROUNDS) SLUICE_FAULT_SECS=$(FAULT_SECS) SLUICE_FAULT_SEED=$(FAULT_SEED) \
	    SLUICE_BUILD=$(BUILD) $(PYTHON) -m pytest -q -s tests/integration/test_faults.py
	SLUICE_EOS_ROUNDS=$(EOS_ROUNDS) SLUICE_EOS_SECS=$(EOS_SECS) SLUICE_EOS_SEED=$(EOS_SEED) \
	    SLUICE_BUILD=$(BUILD) $(PYTHON) -m pytest -q -s tests/integration/test_eos_chaos.py

# Every scenario of tests/sim for up to SIM_SEEDS seeds or SIM_SECS seconds.
sim: build
	$(BUILD)/sim --seeds $(SIM_SEEDS) --seconds $(SIM_SECS) --first $(SIM_FIRST)

gen:
	$(PYTHON) scripts/protogen.py --spec $(SPEC)

check-gen: gen
	@git diff --exit-code --stat -- src/proto/gen tests/unit/gen \
	    || { echo "check-gen: generated code is stale; run 'make gen' and commit"; exit 1; }

# Installs what $(BUILD) holds (run `make build` first); PREFIX=/usr DESTDIR=root
# stages a tree for packaging. The kafka-*.sh names link to one dispatcher in
# $(PREFIX)/lib/sluice, which finds sluice and sluiced beside the link.
install:
	@test -x $(BUILD)/sluiced -a -x $(BUILD)/sluice || { echo "install: build first (make build)"; exit 1; }
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/sluice
	install -m 0755 $(BUILD)/sluiced $(BUILD)/sluice $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 bin/sluice-kafka-tool $(DESTDIR)$(PREFIX)/lib/sluice/kafka-tool
	@for t in $(KAFKA_TOOLS); do ln -sfn ../lib/sluice/kafka-tool $(DESTDIR)$(PREFIX)/bin/$$t; done
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0644 packaging/man/sluice.1 packaging/man/sluice-kafka-tools.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 packaging/man/sluiced.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	@for t in $(KAFKA_TOOLS); do ln -sfn sluice-kafka-tools.1 $(DESTDIR)$(PREFIX)/share/man/man1/$$t.1; done
	@echo "install: sluiced, sluice and $(words $(KAFKA_TOOLS)) kafka-*.sh tools in $(DESTDIR)$(PREFIX)/bin"

# The Debian package of $(BUILD)'s binaries (docs/packaging.md); lintian runs
# on it when installed (its findings and overrides are explained there).
# For another architecture, build first and name both:
#   make deb BUILD=build/aarch64 DEB_ARCH=arm64   (make test-aarch64 does)
deb: $(if $(filter $(HOST_ARCH),$(DEB_ARCH)),build)
	@scripts/install-deps.sh --deb
	scripts/build-deb.sh $(BUILD) $(DEB_ARCH) dist
	@if command -v lintian >/dev/null; then lintian --fail-on error,warning $(DEB); fi

# Installs the package on THIS machine with dpkg -i (root), runs the broker as
# the unit does, then purges it. It changes the machine while it runs (a
# 'sluice' user, /var/lib/sluice), so `make test` does not include it.
test-deb: deps-test deb
	SLUICE_DEB=$(DEB) $(PYTHON) -m pytest -q tests/package

# ARM64: cross-build with Debian's gcc-aarch64-linux-gnu against the arm64
# -dev packages (multiarch), run every unit test under qemu-user-static with
# the ARMv8 CRC-32C path required (SLUICE_CRC32C_EXPECT), then a produce/consume
# smoke of integration tests with sluiced and sluice themselves under qemu, and
# build the arm64 package. About 2.5 minutes on 2 cores (docs/operations.md);
# AARCH64_SMOKE="tests/integration --ignore tests/integration/test_kafka_tools.py"
# runs the whole integration suite under qemu (4 minutes more).
AARCH64_SMOKE = tests/integration/test_produce_fetch.py tests/integration/test_api_versions.py \
                tests/integration/test_cli.py tests/integration/test_daemon.py
test-aarch64: deps-test
	@scripts/install-deps.sh --test --deb --aarch64
	cmake -S . -B $(AARCH64) -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
	cmake --build $(AARCH64) -j$(JOBS)
	cd $(AARCH64) && SLUICE_CRC32C_EXPECT=armv8 ctest --output-on-failure -j$(JOBS)
	@# No binfmt_misc in a container: the tests start these wrappers instead.
	@mkdir -p $(AARCH64)/qemu; for p in sluiced sluice; do \
	    printf '#!/bin/sh\nexec qemu-aarch64-static "$$(dirname "$$0")/../%s" "$$@"\n' $$p > $(AARCH64)/qemu/$$p; \
	    chmod +x $(AARCH64)/qemu/$$p; done
	SLUICE_BUILD=$(AARCH64)/qemu $(PYTHON) -m pytest -q $(AARCH64_SMOKE)
	$(MAKE) --no-print-directory deb BUILD=$(AARCH64) DEB_ARCH=arm64

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run -Werror $(FORMAT_FILES)

clean:
	rm -rf build
