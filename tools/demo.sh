#!/usr/bin/env bash
# make demo: run the story in tests/src/bin/demo.rs (binaries are built by `make build`).
set -euo pipefail
cd "$(dirname "$0")/.."
exec target/debug/smartpos-demo "$@"
