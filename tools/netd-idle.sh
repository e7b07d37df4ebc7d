#!/usr/bin/env bash
# netd idle: the resident memory and the CPU time of smartpos-netd (release build) with the
# default schedule, probing the acquirer emulator's three paths, on a private bus.
#
#   tools/netd-idle.sh [SECONDS]     (default 600; `make bench-netd-idle`)
#
# After a 30 s warm-up (start, first probes, certificates), it reads /proc/PID/stat
# (utime + stime) and /proc/PID/status (VmRSS, VmHWM) at the start and the end of the
# window, and gives the CPU time scaled to one hour. Nothing else is measured: the
# emulator and the bus run in their own processes.
set -euo pipefail
cd "$(dirname "$0")/.."
window=${1:-600}
cargo build --locked --release -p smartpos-netd -p smartpos-acquirer-sim >&2
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin/smartpos-acquirer-sim" --listen "127.0.0.1:$port" --pki-dir "$work/pki" \
    --write-terminal-config "$work/etc" --terminal-dir "$work/etc" >/dev/null
"$bin/smartpos-acquirer-sim" --listen "127.0.0.1:$port" --pki-dir "$work/pki" >"$work/sim.out" &
pids+=($!)
for _ in $(seq 50); do grep -q listening "$work/sim.out" && break; sleep 0.1; done

# A private bus that lets netd own its name (the session bus's default policy).
read -r address bus_pid < <(dbus-daemon --session --fork --print-address=1 --print-pid=1 | paste -sd' ')
pids+=("$bus_pid")

cat >"$work/smartpos-netd.toml" <<TOML
merchant_config = "$work/etc/merchant.toml"
update_config = "$work/etc/smartpos-otad.toml"
TOML
DBUS_SYSTEM_BUS_ADDRESS=$address SMARTPOS_LOG=warn \
    "$bin/smartpos-netd" --config "$work/smartpos-netd.toml" 2>"$work/netd.log" &
netd=$!
pids+=("$netd")

tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$netd/stat"; }
kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$netd/status"; }
sleep 30
kill -0 "$netd" || { cat "$work/netd.log" >&2; exit 1; }
c0=$(cpu); r0=$(kib VmRSS)
sleep "$window"
kill -0 "$netd" || { cat "$work/netd.log" >&2; exit 1; }
c1=$(cpu); r1=$(kib VmRSS); hwm=$(kib VmHWM)
awk -v c0="$c0" -v c1="$c1" -v t="$tick" -v w="$window" -v r0="$r0" -v r1="$r1" -v h="$hwm" 'BEGIN {
    cpu = (c1 - c0) / t
    printf "smartpos-netd idle, default schedule, 3 acquirer paths, %d s window after 30 s warm-up\n", w
    printf "  CPU time      %.2f s in %d s  =  %.1f s per hour  (%.3f %% of one core)\n", cpu, w, cpu * 3600 / w, cpu * 100 / w
    printf "  RSS           %.1f MiB at start, %.1f MiB at end, peak %.1f MiB\n", r0 / 1024, r1 / 1024, h / 1024
}'
