#!/usr/bin/env bash
# A short run of every cargo-fuzz target (make test): the code classifier and each acquirer
# response parser. The toolchain is stable, so nightly-only flags are enabled with
# RUSTC_BOOTSTRAP=1, as cargo-fuzz needs. Seconds per target: FUZZ_SECONDS (default 15).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-15}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
passed=0; failed=0
for dir in crates/*/fuzz; do
  for target in $(cd "$dir" && cargo fuzz list); do
    corpus=$(mktemp -d)
    seeds="$dir/seeds/$target"
    [ -d "$seeds" ] || seeds=""
    echo "fuzz: $dir $target for ${secs}s"
    if (cd "$dir" && cargo fuzz run --sanitizer none "$target" "$corpus" ${seeds:+"$OLDPWD/$seeds"} -- \
          -max_total_time="$secs" -print_final_stats=0 >"$corpus.log" 2>&1); then
      passed=$((passed + 1))
      grep -E "^Done|runs in" "$corpus.log" | tail -1 || true
    else
      failed=$((failed + 1))
      echo "fuzz: $target FAILED; last lines:"; tail -30 "$corpus.log"
    fi
    rm -rf "$corpus" "$corpus.log"
  done
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
