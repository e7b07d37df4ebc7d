# smartpos — two commands for a newcomer: `make demo` and `make test`.
# Both install what they need (Debian packages, cargo tools, Python venvs) and are idempotent.

SHELL := /bin/bash
CARGO ?= cargo
PREFIX ?= /usr
DESTDIR ?=
export CARGO_TERM_COLOR ?= never

.PHONY: all deps deps-build build lint test test-unit fuzz system-test demo install bench-decode bench-payment clean help

all: build

help:
	@echo "make demo    - the whole stack on a private bus with simulated devices: a sale end to end"
	@echo "make test    - all tests and lints (what CI runs)"
	@echo "make lint    - fmt, clippy -D warnings, cargo deny, packaging checks, citations"
	@echo "make system-test - scannerd against vivid and uinput in a qemu VM (root)"
	@echo "make install - install binaries, units and policy under DESTDIR/PREFIX"
	@echo "make bench-decode  - decoder benchmark: smartpos vs zxing-cpp vs zbar"
	@echo "make bench-payment - the terminal's own work per sale"

deps:
	@tools/deps.sh test

deps-build:
	@tools/deps.sh build

build: deps-build
	$(CARGO) build --locked --workspace --bins

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) deny -L error check licenses bans
	tools/check-packaging.sh
	tools/check-citations.sh

test-unit: deps build
	$(CARGO) nextest run --locked --workspace --no-fail-fast

fuzz: deps
	tools/fuzz-smoke.sh

# The real kernel drivers (vivid camera, uinput scanners) in a qemu VM; needs root.
system-test: build
	NO_BUILD=1 tools/system-test.sh

test: lint test-unit fuzz system-test
	@echo "make test: all passed"

demo: build
	tools/demo.sh

install:
	$(CARGO) build --locked --release --workspace --bins
	tools/install-files.sh "$(DESTDIR)" "$(PREFIX)" target/release

bench-decode: deps-build
	tools/bench-decoders/run.sh --with-rqrr

bench-payment: deps-build
	$(CARGO) bench -p smartpos-payment --bench sale_path -- 300

clean:
	$(CARGO) clean
