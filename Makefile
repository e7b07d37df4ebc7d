# smartpos — two commands for a newcomer: `make demo` and `make test`.
# Both install what they need (Debian packages, cargo tools, Python venvs) and are idempotent.

SHELL := /bin/bash
CARGO ?= cargo
PREFIX ?= /usr
DESTDIR ?=
export CARGO_TERM_COLOR ?= never

.PHONY: all deps deps-build build build-test lint test test-unit fuzz system-test yocto-check demo install bench-decode bench-payment bench-net bench-scanner-idle bench-update clean help

all: build

help:
	@echo "make demo    - the whole stack on a private bus with simulated devices: a sale end to end"
	@echo "make test    - all tests and lints (what CI runs)"
	@echo "make lint    - fmt, clippy -D warnings, cargo deny, packaging checks, citations"
	@echo "make system-test - the stack in a qemu VM: devices (vivid, uinput), then booted under systemd (root)"
	@echo "make yocto-check - bitbake -p and -g of the layer against oe-core/meta-rauc wrynose (root)"
	@echo "make install - install binaries, units and policy under DESTDIR/PREFIX"
	@echo "make bench-decode  - decoder benchmark: smartpos vs zxing-cpp vs zbar"
	@echo "make bench-payment - the terminal's own work per sale"
	@echo "make bench-net     - CPU per probe; a sale's network step, fresh vs kept-alive connection"
	@echo "make bench-scanner-idle - scannerd's CPU with the camera streaming and no session armed"
	@echo "make bench-netd-idle - smartpos-netd's RSS and CPU per hour with the default schedule (10 min)"
	@echo "make bench-update  - one remote update (5 and 50 MiB bundles): bytes, time, otad CPU and peak RSS; otad idle"

deps:
	@tools/deps.sh test

deps-build:
	@tools/deps.sh build

build: deps-build
	$(CARGO) build --locked --workspace --bins

# The binaries the tests start, with the crash-test failpoints (SMARTPOS_FAILPOINT) compiled
# in. Only here: `build`, `install` and every release build leave the feature off.
TEST_FEATURES := smartpos-payment/failpoints,smartpos-paymentd/failpoints

# The test targets too, in the same build: tests enable dev-dependency features (tokio's
# test-util), and a build of the binaries alone would resolve features differently and leave
# nextest to compile tokio and everything above it a second time.
build-test: deps-build
	$(CARGO) build --locked --workspace --bins --tests --features $(TEST_FEATURES)

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) deny -L error check licenses bans
	tools/check-packaging.sh
	tools/check-citations.sh

test-unit: deps build-test
	$(CARGO) nextest run --locked --workspace --no-fail-fast --features $(TEST_FEATURES)

fuzz: deps
	tools/fuzz-smoke.sh

# The real kernel drivers (vivid camera, uinput scanners) in a qemu VM, then the whole stack
# booted under systemd from the installed files; needs root.
system-test: build-test
	NO_BUILD=1 tools/system-test.sh

# The Yocto layer parsed with real oe-core and meta-rauc (../shared/yocto, unpacked under
# /var/tmp); zero errors and zero warnings. Needs root (packages, a build user).
yocto-check:
	tools/yocto-check.sh

# Each stage timed; the last lines list the stages, their times and the runners' summaries.
test:
	@MAKE="$(MAKE)" tools/make-test.sh deps build-test lint test-unit fuzz system-test yocto-check

demo: build
	tools/demo.sh

# DAEMONS="scannerd paymentd" installs only those daemons' files (default: those built).
install:
	$(CARGO) build --locked --release --workspace --bins
	tools/install-files.sh "$(DESTDIR)" "$(PREFIX)" target/release

bench-decode: deps-build
	tools/bench-decoders/run.sh --with-rqrr

bench-payment: deps-build
	$(CARGO) bench -p smartpos-payment --bench sale_path -- 300

bench-net: deps-build
	$(CARGO) bench -p smartpos-transport --bench net -- 300
	$(CARGO) bench -p smartpos-payment --bench sale_path -- 300

bench-scanner-idle: deps-build
	tools/bench-scannerd-idle.sh

# netd's resident memory and CPU per hour with the default schedule (a 10-minute window).
.PHONY: bench-netd-idle
bench-netd-idle: deps-build
	tools/netd-idle.sh

bench-update: deps-build
	$(CARGO) build --release -p smartpos-otad -p smartpos-tests --bin smartpos-otad --bin bench-update
	target/release/bench-update 5 50

clean:
	$(CARGO) clean
