#!/usr/bin/env bash
# Side-by-side decoder benchmark: smartpos's decoder (Rust), zxing-cpp and zbar (Python
# bindings) on the same pixels. Installs what it needs (idempotent), then runs.
#
#   tools/bench-decoders/run.sh [--data DIR] [--only boofcv|blackbox] [--with-rqrr]
#
# DIR defaults to $SMARTPOS_QR_DATA, else ../shared/qr-data next to the repository.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv/bench"

if ! ldconfig -p | grep -q 'libzbar\.so\.0'; then
    echo "installing libzbar0 (zbar itself) ..." >&2
    if command -v apt-get >/dev/null; then
        (apt-get install -y libzbar0 >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y libzbar0 >/dev/null; }) \
            || { echo "could not install libzbar0; install it and re-run" >&2; exit 1; }
    else
        echo "libzbar0 is missing and apt-get is not available; install zbar and re-run" >&2; exit 1
    fi
fi
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import zxingcpp, pyzbar.pyzbar, PIL, numpy' 2>/dev/null; then
    "$venv/bin/pip" install -q --disable-pip-version-check zxing-cpp pyzbar pillow numpy
fi

# DECODE_BENCH_BIN: use an already built decode-bench instead of building it here.
bin="${DECODE_BENCH_BIN:-}"
if [ -z "$bin" ]; then
    (cd "$root" && cargo build --release -q -p smartpos-scanner --example decode-bench)
    bin="$root/target/release/examples/decode-bench"
fi
exec "$venv/bin/python" "$root/tools/bench-decoders/bench.py" --root "$root" --rust "$bin" "$@"
