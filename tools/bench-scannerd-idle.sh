#!/usr/bin/env bash
# CPU that smartpos-scannerd spends with a camera streaming and no session armed (make
# bench-scanner-idle). A 30 fps replay camera plays one 1280x720 PGM frame in a loop; the
# daemon runs on a private bus; its CPU time (utime + stime, fields 14 and 15 of
# /proc/PID/stat) is read after a warm-up and again after the measured window.
#
#   tools/bench-scannerd-idle.sh            # release build (built first), 60 s window
#   BIN=target/debug/smartpos-scannerd tools/bench-scannerd-idle.sh   # another binary
#   SECONDS_MEASURED=120 WARMUP=10 FPS=15 tools/bench-scannerd-idle.sh
#
# PGM is used because a camera hands over raw frames: a PNG or JPEG replay would decode the
# file for every frame and measure the image decoder instead. Needs dbus-daemon and gdbus.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_MEASURED:-60}
warmup=${WARMUP:-5}
fps=${FPS:-30}
bin=${BIN:-}
if [ -z "$bin" ]; then
  ${CARGO:-cargo} build --locked --release -p smartpos-scannerd
  bin=${CARGO_TARGET_DIR:-target}/release/smartpos-scannerd
fi
[ -x "$bin" ] || { echo "bench-scanner-idle: no binary at $bin" >&2; exit 1; }
command -v dbus-daemon >/dev/null || { echo "bench-scanner-idle: needs dbus-daemon" >&2; exit 1; }

work=$(mktemp -d)
bus_pid=""
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [ -n "$bus_pid" ] && kill "$bus_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/replay"
# A grey ramp with a dark square: a frame with contrast and edges, like a counter top.
python3 - "$work/replay/frame.pgm" <<'EOF'
import sys
w, h = 1280, 720
rows = []
for y in range(h):
    row = bytearray((x * 255) // (w - 1) for x in range(w))
    if 260 <= y < 460:
        row[540:740] = bytes(200)
    rows.append(bytes(row))
with open(sys.argv[1], "wb") as f:
    f.write(b"P5\n%d %d\n255\n" % (w, h))
    f.write(b"".join(rows))
EOF
cat >"$work/scannerd.toml" <<EOF
[camera]
replay = "$work/replay"
fps = $fps
loop = true
EOF

read -r address bus_pid < <(dbus-daemon --session --fork --print-address=1 --print-pid=1 | paste -sd' ')
DBUS_SYSTEM_BUS_ADDRESS=$address "$bin" --config "$work/scannerd.toml" >"$work/daemon.log" 2>&1 &
daemon_pid=$!

ticks() { awk '{print $14 + $15}' "/proc/$daemon_pid/stat"; }
sleep "$warmup"
kill -0 "$daemon_pid" 2>/dev/null || { echo "bench-scanner-idle: scannerd exited:" >&2; cat "$work/daemon.log" >&2; exit 1; }
t0=$(ticks)
sleep "$secs"
t1=$(ticks)
# The camera really streamed and nothing was decoded: the daemon's own figures.
prop() {
  gdbus call --address "$address" --dest org.smartpos.Scanner1 --object-path /org/smartpos/Scanner1 \
    --method org.freedesktop.DBus.Properties.Get org.smartpos.Scanner1 "$1" 2>/dev/null \
    | tr -d '(<>),' | awk '{print $NF}' || echo "?"
}
fps_seen=$(prop FramesPerSecond)
attempts=$(prop DecodeAttempts)
hz=$(getconf CLK_TCK)
used=$((t1 - t0))
pct=$(awk -v u="$used" -v hz="$hz" -v s="$secs" 'BEGIN { printf "%.2f", 100 * u / hz / s }')
echo "scannerd idle, no session armed: $bin, ${fps} fps replay 1280x720 PGM, ${secs} s after ${warmup} s"
echo "camera: FramesPerSecond $fps_seen, DecodeAttempts $attempts (no session armed: expected 0)"
echo "cpu: $used ticks (CLK_TCK $hz) = $pct % of one core"
