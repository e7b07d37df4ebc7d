#!/usr/bin/env bash
# The Python venv for examples/python (jeepney, pinned in requirements.txt), under target/.
# Idempotent: does nothing when the venv already has exactly what the file pins.
#   tools/examples-venv.sh            -> prints the venv's python
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/examples-venv
req=examples/python/requirements.txt
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$stamp"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi
echo "$venv/bin/python"
