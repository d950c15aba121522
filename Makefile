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

JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
BUILD     ?= build/release
ASAN      ?= build/asan
TSAN      ?= build/tsan
FUZZ      ?= build/fuzz
PYTHON    ?= /usr/bin/python3
FUZZ_SECS ?= 30
SIM_SEEDS ?= 100000
SIM_SECS  ?= 1800
# A fresh first seed each time (printed by the runner's failures); pass
# SIM_FIRST=N to repeat a campaign.
SIM_FIRST ?= $(shell date +%s)
SPEC      ?= ../shared/kafka-protocol/messages

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' | grep -v '^src/proto/gen/' | grep -v '^tests/unit/gen/')

.PHONY: all deps deps-test build build-asan run test test-unit test-integration test-asan test-tsan \
        fuzz-build fuzz-ci bench soak sim gen check-gen format format-check clean

all: build

deps:
	@scripts/install-deps.sh

deps-test:
	@scripts/install-deps.sh --test

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
	    ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=8:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    SLUICE_BUILD=$(ASAN) $(PYTHON) -m pytest -q tests/integration; fi

# ThreadSanitizer: any data race makes sluiced exit with 66, which fails the
# test that stopped it. The sluice CLI's tests (test_cli, test_mirror) are left
# out (librdkafka is not instrumented, and TSan cannot run it), and so are the memory-growth tests
# (TSan's shadow memory counts as growth).
test-tsan: deps-test
	cmake -S . -B $(TSAN) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="-fsanitize=thread -O1 -g" \
	    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread"
	cmake --build $(TSAN) -j$(JOBS)
	cd $(TSAN) && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j$(JOBS)
	TSAN_OPTIONS=halt_on_error=0:exitcode=66 SLUICE_BUILD=$(TSAN) $(PYTHON) -m pytest -q tests/integration \
	    --ignore tests/integration/test_cli.py --ignore tests/integration/test_mirror.py \
	    --deselect tests/integration/test_protocol_edges.py::test_slow_reader_memory_is_bounded \
	    --deselect tests/integration/test_net_limits.py::test_unread_old_format_fetch_responses_are_bounded

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

# Longer campaigns than make test can afford: the mirror killed ten times.
soak: deps-test build
	SLUICE_MIRROR_KILLS=10 SLUICE_BUILD=$(BUILD) $(PYTHON) -m pytest -q -s tests/integration/test_mirror.py

# Every scenario of tests/sim for up to SIM_SEEDS seeds or SIM_SECS seconds.
sim: build
	$(BUILD)/sim --seeds $(SIM_SEEDS) --seconds $(SIM_SECS) --first $(SIM_FIRST)

gen:
	$(PYTHON) scripts/protogen.py --spec $(SPEC)

check-gen: gen
	@git diff --exit-code --stat -- src/proto/gen tests/unit/gen \
	    || { echo "check-gen: generated code is stale; run 'make gen' and commit"; exit 1; }

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run -Werror $(FORMAT_FILES)

clean:
	rm -rf build
