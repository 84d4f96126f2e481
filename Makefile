# Cairn: two commands do all the setup.
#   make run    builds and starts the stack on the embedded default, in the foreground (Ctrl-C stops it)
#   make test   builds and runs every test, starting the PostgreSQL it needs
SWIFT ?= swift
STACK ?= compose/default.json
BENCH_EVENTS ?= 1000000

.PHONY: all deps build run test lint format bench faults fuzz rpc-docs openapi install clean

all: build

deps:
	@scripts/ensure-deps.sh

build: deps
	$(SWIFT) build

run: build
	.build/debug/cairn-supervisor --stack $(STACK)

test: deps lint
	@scripts/ensure-python-clients.sh
	@scripts/ensure-browser.sh
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# The style of .swift-format: lint fails make test on unformatted code; format fixes it.
SWIFT_SOURCES = Package.swift Services Shared Tests Tools bench
lint:
	$(SWIFT) format lint --strict --recursive --parallel $(SWIFT_SOURCES)

format:
	$(SWIFT) format format --in-place --recursive --parallel $(SWIFT_SOURCES)

# Every fault of the fault suite at full strength, then one table (make test runs a short pass).
faults: deps
	$(SWIFT) build
	.build/debug/cairn-faults

# The seeded fuzzers for longer than make test gives them: FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
fuzz: deps
	$(SWIFT) build --build-tests
	CAIRN_FUZZ_SECONDS=$(FUZZ_SECONDS) $(SWIFT) test --skip-build --filter 'FuzzTests|everyHTTPRouteAnswersAnyBody'

# docs/rpc.md from the method types in Shared/CairnMethods, docs/metrics.md from Shared/CairnMetrics
# (a test fails when either is stale).
rpc-docs: deps
	$(SWIFT) build --product cairn-rpc-docs
	.build/debug/cairn-rpc-docs > docs/rpc.md
	.build/debug/cairn-rpc-docs metrics > docs/metrics.md

# docs/openapi.json from the report API's routes (a test fails when it is stale).
openapi: deps
	$(SWIFT) build --product cairn-rpc-docs
	.build/debug/cairn-rpc-docs openapi > docs/openapi.json

# Release binaries and the default stack file under PREFIX (docs/operations.md, "Install").
PREFIX ?= /usr/local
DESTDIR ?=
install: deps
	$(SWIFT) build -c release
	scripts/install.sh --prefix $(PREFIX) --from .build/release --destdir "$(DESTDIR)"

bench: deps
	@scripts/ensure-python-clients.sh
	$(SWIFT) build -c release
	BENCH_EVENTS=$(BENCH_EVENTS) python3 bench/bench.py

clean:
	rm -rf .build .build-* var
