#!/usr/bin/env bash
# `make test`: each stage in turn, timed. The last lines name every stage with its time and
# repeat the test runners' own summaries, so that the tail of a CI log says what ran, what
# passed and where the minutes went.      tools/make-test.sh STAGE...   (make targets)
set -uo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
mkdir -p target
log=target/make-test.log
: >"$log"
times=()
t_all=$(date +%s)
summary() {
    echo
    local joined
    joined=$(printf '%s, ' "${times[@]}")
    echo "make test: stages: ${joined%, }; total $(($(date +%s) - t_all)) s"
    # The runners' own summary lines, as they printed them above.
    grep -E '^ *Summary \[|^fuzz: [0-9]+ passed|^system-test: [0-9]+ passed|^yocto-check: took|^check-packaging:' "$log" |
        sed 's/^ */make test: | /'
}
for stage in "$@"; do
    t=$(date +%s)
    # Everything is shown as it runs and kept for the summary.
    if ! $MAKE --no-print-directory "$stage" 2>&1 | tee -a "$log"; then
        times+=("$stage $(($(date +%s) - t)) s (FAILED)")
        summary
        echo "make test: FAILED in stage '$stage'"
        exit 1
    fi
    times+=("$stage $(($(date +%s) - t)) s")
done
summary
echo "make test: all passed"
