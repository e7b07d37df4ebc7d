#!/usr/bin/env bash
# A short run of every cargo-fuzz target (make test): the code classifier and each acquirer
# response parser. The toolchain is stable, so nightly-only flags are enabled with
# RUSTC_BOOTSTRAP=1, as cargo-fuzz needs. Seconds per target: FUZZ_SECONDS (default 15).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-15}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || tools/deps.sh test
# Both fuzz crates build into one target directory: the payment crate depends on the acquirer
# crate, so the second build reuses nearly everything the first compiled. The build is cargo
# fuzz's dev profile (no optimisation; overflow checks and debug assertions on, as in its
# release mode): for a smoke run of seconds the build is what costs. Measured, the payment fuzz
# crate from cold: 296 s of CPU in dev against 535 s in release (`/usr/bin/time cargo fuzz build
# [--dev] --sanitizer none classify`). A longer campaign: `cargo fuzz run <target>` (release).
target_dir=${FUZZ_TARGET_DIR:-$PWD/target/fuzz}
passed=0; failed=0
for dir in crates/*/fuzz; do
  # Each fuzz crate is its own workspace with its own Cargo.lock: it must be current, like
  # the main one (`--locked` everywhere else), or the smoke run would test other versions.
  if ! why=$(cd "$dir" && cargo metadata --locked --format-version 1 2>&1 >/dev/null); then
    echo "fuzz: $dir/Cargo.lock is out of date with the workspace; run: (cd $dir && cargo metadata --format-version 1 >/dev/null) and commit it"
    echo "$why"; exit 1
  fi
  for target in $(cd "$dir" && cargo fuzz list); do
    corpus=$(mktemp -d)
    seeds="$dir/seeds/$target"
    [ -d "$seeds" ] || seeds=""
    echo "fuzz: $dir $target for ${secs}s"
    if (cd "$dir" && cargo fuzz run --dev --sanitizer none --target-dir "$target_dir" "$target" "$corpus" ${seeds:+"$OLDPWD/$seeds"} -- \
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
