#!/usr/bin/env bash
# The Python venv holding goosebit, the DDI server the update tests and `make demo` run on
# loopback (pinned in tools/update-test/requirements.txt), under target/.
# Idempotent: does nothing when the venv already has exactly what the file pins.
#   tools/goosebit-venv.sh            -> prints the venv's bin directory
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${GOOSEBIT_VENV:-target/goosebit-venv}
req=tools/update-test/requirements.txt
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/uvicorn" ] || ! cmp -s "$req" "$stamp"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi
(cd "$venv/bin" && pwd)
