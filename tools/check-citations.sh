#!/usr/bin/env bash
# The repository stands on its own: a comment or a doc may cite only what is in the
# repository or a public source named by title. This check fails when a tracked file cites
# one of the design and research notes that were never part of the repository (the facts
# they held live in docs/: acquirers.md, ARCHITECTURE.md, test-data.md, and
# tests/system/README.md).
#
#   tools/check-citations.sh      # prints each offending line, then one summary line;
#                                 # exit 1 when there is any
#
# A name stops being refused once a tracked file of that name exists (then a citation of
# it points into the repository).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

# Notes outside the repository, by file name (stems here, ".md" added below, so that this
# script does not itself read as a citation to a plain-text search).
STEMS=(DESIGN STYLE payments foundations ota vm-harness scanning)
NOTES=()
for s in "${STEMS[@]}"; do NOTES+=("$s.md"); done
# Files that may name them: this check, which has to.
ALLOW=(tools/check-citations.sh)

tracked_names=$(git ls-files | sed 's|.*/||' | sort -u)
alts=()
for n in "${NOTES[@]}"; do
    if grep -qxF "$n" <<<"$tracked_names"; then
        echo "check-citations: $n is in the repository now; citations of it are allowed"
        continue
    fi
    alts+=("${n//./\\.}")
done
# A note's name not preceded by a name character (a longer name that merely ends in a
# note's name is not a citation of it), and any
# path into the research notes' folder.
pattern="shared/research/"
if [ ${#alts[@]} -gt 0 ]; then
    pattern="(^|[^A-Za-z0-9_.-])($(IFS='|'; echo "${alts[*]}"))|$pattern"
fi

excludes=()
for f in "${ALLOW[@]}"; do excludes+=(":(exclude)$f"); done

hits=$(git grep -I -n -E "$pattern" -- . "${excludes[@]}")
if [ -n "$hits" ]; then
    echo "$hits"
    files=$(cut -d: -f1 <<<"$hits" | sort -u | wc -l)
    lines=$(wc -l <<<"$hits")
    echo "check-citations: FAILED: $lines line(s) in $files file(s) cite notes that are not in the repository;"
    echo "check-citations: move the fact into docs/ and cite that (e.g. docs/acquirers.md §1.7)"
    exit 1
fi
echo "check-citations: ok, no citation of notes outside the repository"
