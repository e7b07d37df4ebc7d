# The system test, run as root inside the VM by tools/system-test.sh, in a chroot of the
# host's root (read-only) with the run directory shared read-write at the same path and as
# the working directory. Writes one `PASS …`/`FAIL …` line per check to ./results; the exit
# status is the number of failures.
#
# A cashier's terminal in miniature: the real kernel's vivid camera and a uinput keyboard-wedge
# scanner, a system-style D-Bus with the project's policy files, the real smartpos-scannerd,
# and posctl as the technician would type it.

# The helpers below are mostly called through wait_until, which shellcheck cannot follow.
# shellcheck disable=SC2317
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/target/debug
# The host's cargo target directory, if not the default.
[ -f env ] && . ./env
OUT=$(pwd)
CODE=286934501234567890
SCANNER_NAME="smartpos system-test scanner"
failed=0
# The guest kernel's modules are under /run/kernel (the host's /lib/modules is not for it).
modprobe() { /sbin/modprobe -d /run/kernel "$@"; }
: >results

pass() { echo "PASS $*" | tee -a results; }
fail() { echo "FAIL $*" | tee -a results; failed=$((failed + 1)); }
# A check the guest kernel cannot run (a module it lacks): named, with the reason, not counted.
skip() { echo "SKIP $*" | tee -a results; }
# Payment codes are bearer tokens: only their first 2 and last 4 characters in the output.
mask() { echo "$1" | sed 's/^\(..\).*\(....\)$/\1…\2/'; }

# wait_until SECONDS COMMAND...: poll every 0.2 s.
wait_until() {
    t=$1; shift
    end=$(($(date +%s) + t))
    while ! "$@"; do
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.2
    done
}

status() { "$BIN/posctl" scanner status --json >status.json 2>status.err; }
# camera_state: the camera source's state from the last status.json (empty if none).
camera_state() {
    python3 -c 'import json,sys; s=json.load(open("status.json")); print(next((x["state"] for x in s["sources"] if x["kind"]=="camera"), ""))' 2>/dev/null
}
fps() { python3 -c 'import json; print("%.1f" % json.load(open("status.json"))["frames_per_second"])' 2>/dev/null; }
verdict() { python3 -c 'import json; print(json.load(open("status.json"))["verdict"])' 2>/dev/null; }
verdict_is() { status && [ "$(verdict)" = "$1" ]; }
camera_is() { status && camera_state | grep -Eq "$1"; }
streaming() { camera_is '^streaming$' && python3 -c 'import json,sys; sys.exit(not json.load(open("status.json"))["frames_per_second"] > 0)'; }

cleanup() {
    touch scanner1-stop scanner2-stop
    for p in ${SCANNERD:-} ${TYPIST:-} ${SCAN:-} ${PHONE:-} ${NETD:-} ${ENDPOINT:-}; do kill "$p" 2>/dev/null; done
    [ -n "${BUS_PID:-}" ] && kill "$BUS_PID" 2>/dev/null
}
trap cleanup EXIT

# --- 1. kernel drivers --------------------------------------------------------------------
# A capture node (video0) and an output node (video1), both HDMI, so that what is written to
# the output can be looped into the camera (tests/system/README.md, "vivid settings").
VIVID="n_devs=1 node_types=0x101 num_inputs=1 input_types=0x3 num_outputs=1 output_types=0x1"
# shellcheck disable=SC2086 # $VIVID is a list of module parameters
if modprobe vivid $VIVID && modprobe uinput && modprobe evdev \
    && [ -c /dev/uinput ] && [ "$(cat /sys/class/video4linux/video0/name 2>/dev/null)" = vivid-000-vid-cap ]; then
    pass "kernel: vivid ($(cat /sys/class/video4linux/video0/name)) and uinput loaded ($(uname -r))"
else
    fail "kernel: vivid/uinput did not load: $(ls /dev/video* /dev/uinput 2>&1 | tr '\n' ' ')"
    exit "$failed"
fi

# --- 2. a system-style bus with the project's policy -------------------------------------
# The same configuration as tests/src/lib.rs: Debian's system.conf default policy, then dbus/*.conf.
BUSDIR=/run/smartpos-system-test
mkdir -p "$BUSDIR"
cat >"$BUSDIR/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$BUSDIR/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny send_type="method_call"/>
    <deny own="*"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
  <includedir>$ROOT/dbus</includedir>
</busconfig>
EOF
BUS_PID=$(dbus-daemon --fork --print-pid --nopidfile --config-file="$BUSDIR/bus.conf" 2>dbus-daemon.log)
export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$BUSDIR/system_bus_socket
if [ -n "$BUS_PID" ] && [ -S "$BUSDIR/system_bus_socket" ]; then
    pass "bus: private system bus with $(ls "$ROOT"/dbus/*.conf | wc -l) policy files from dbus/"
else
    fail "bus: dbus-daemon did not start: $(cat dbus-daemon.log)"
    exit "$failed"
fi

# --- 3. the scanner plugged in before the daemon starts, as at a till ----------------------
# plug TAG CODE PRODUCT: a uinput scanner that will type CODE; its node name in $NODE.
plug() {
    python3 "$ROOT/tests/system/wedge-scanner.py" "$SCANNER_NAME" 0x1eab "$3" "$2" "$OUT/$1" \
        >"$1.log" 2>&1 &
    TYPIST=$!
    wait_until 10 test -s "$1-node" || fail "hid: the uinput scanner $1 did not appear: $(cat "$1.log")"
    NODE=$(cat "$1-node" 2>/dev/null)
}
# opened NODE [N]: the daemon's (N+1)th "scanner opened" is NODE, and grabbed; the kernel
# reuses a freed node name, so a replugged scanner is told apart by the count.
opened() {
    grep "scanner opened" scannerd.log | sed -n "$((${2:-0} + 1))p" | grep "path=/dev/input/$1 " | grep -q "grabbed=true"
}
plug scanner1 "$CODE" 0x5301

# 640x480 on both ends of the loop (DV timings index 0), set before the daemon opens the
# camera; vivid's on-screen text off, so the looped image arrives as written.
if ! { v4l2-ctl -d /dev/video0 --set-dv-bt-timings index=0 >/dev/null \
    && v4l2-ctl -d /dev/video1 --set-dv-bt-timings index=0 >/dev/null \
    && v4l2-ctl -d /dev/video0 -c loop_video=1,osd_text_mode=2; }; then
    fail "camera: cannot set up vivid's loop (v4l2-ctl)"
fi

cat >scannerd.toml <<EOF
[camera]
match = "vivid"
width = 640
height = 480
fps = 15

[hid]
grab = true
rescan_interval = 0.2
[[hid.matchers]]
vendor = 0x1eab
name_contains = "$SCANNER_NAME"
[hid.wedge]
# uinput stamps each key when the typist writes it; under TCG that process can be
# descheduled for far longer than a USB scanner's few ms between keys.
inter_key_timeout = 500
EOF
"$BIN/smartpos-scannerd" --config "$OUT/scannerd.toml" >scannerd.log 2>&1 &
SCANNERD=$!
if wait_until 30 status; then
    pass "scannerd: owns org.smartpos.Scanner1 and answers posctl scanner status"
else
    fail "scannerd: not on the bus after 30 s: $(cat status.err; tail -5 scannerd.log)"
    exit "$failed"
fi

# hid_scan TAG CODE: arm with posctl scan, let scanner TAG type once armed, check the result.
hid_scan() {
    "$BIN/posctl" scan --json --timeout 30 >"$1-scan.json" 2>"$1-scan.err" &
    SCAN=$!
    # The scanner fires only once the daemon says it is scanning, as a cashier would.
    if wait_until 15 sh -c "'$BIN/posctl' scanner status --json | grep -q '\"state\": \"scanning\"'"; then
        touch "$1-go"
    else
        fail "scan: posctl scan did not arm the scanner: $(cat "$1-scan.err")"
    fi
    wait "$SCAN"
    rc=$?
    SCAN=
    read_text=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["text"])' "$1-scan.json" 2>/dev/null)
    read_src=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["source"])' "$1-scan.json" 2>/dev/null)
    if [ "$rc" = 0 ] && [ "$read_text" = "$2" ] && echo "$read_src" | grep -q "^hid:/dev/input/$NODE "; then
        pass "scan: posctl scan --json read $(mask "$2") from $read_src"
    else
        fail "scan: posctl rc=$rc, source '$read_src', text matches: $([ "$read_text" = "$2" ] && echo yes || echo no); $(cat "$1-scan.err")"
    fi
    wait_until 5 test -s "$1-leaked"
    if [ "$(cat "$1-leaked" 2>/dev/null)" = 0 ]; then
        pass "hid: no key of the scan reached another reader (grabbed)"
    else
        fail "hid: key events reached another reader despite the grab (at least $(cat "$1-leaked" 2>/dev/null))"
    fi
}

if wait_until 10 opened "$NODE"; then
    pass "hid: scannerd opened and grabbed the uinput scanner /dev/input/$NODE"
else
    fail "hid: scannerd did not open /dev/input/$NODE: $(grep -i scanner scannerd.log | tail -3)"
fi
hid_scan scanner1 "$CODE"

# The cashier unplugs the scanner and plugs in another one while the daemon runs.
touch scanner1-stop
wait "$TYPIST"
if wait_until 10 grep -Eq "(scanner removed|scanner stopped answering).*path=/dev/input/$NODE " scannerd.log; then
    pass "hid: scannerd noticed the scanner unplugged"
else
    fail "hid: no unplug of /dev/input/$NODE in scannerd.log"
fi
if wait_until 10 sh -c "'$BIN/posctl' scanner status --json | grep -q 'no scanner connected'"; then
    pass "hid: posctl scanner status says no scanner is connected"
else
    fail "hid: posctl scanner status does not show the unplug: $("$BIN/posctl" scanner status --json 2>&1 | tr '\n' ' ')"
fi
CODE2=134500001111222233
plug scanner2 "$CODE2" 0x5302
if wait_until 10 opened "$NODE" 1; then
    pass "hid: a scanner plugged in later is opened and grabbed (/dev/input/$NODE)"
else
    fail "hid: scannerd did not open the replugged scanner /dev/input/$NODE"
fi
if wait_until 10 sh -c "'$BIN/posctl' scanner status --json | python3 -c 'import json,sys; s=json.load(sys.stdin)[\"sources\"]; sys.exit(not any(x[\"name\"].startswith(\"/dev/input/$NODE \") and x[\"state\"] == \"grabbed\" for x in s))'"; then
    pass "hid: posctl scanner status lists /dev/input/$NODE as grabbed"
else
    fail "hid: posctl scanner status does not list /dev/input/$NODE: $("$BIN/posctl" scanner status --json 2>&1 | tr '\n' ' ')"
fi
hid_scan scanner2 "$CODE2"
touch scanner2-stop

# --- 4. the camera: streaming, unplugged, plugged back ------------------------------------
if wait_until 30 streaming; then
    pass "camera: vivid streaming at $(fps) frames/s ($(camera_state))"
else
    fail "camera: not streaming after 30 s: $(cat status.json status.err 2>/dev/null | tr '\n' ' ')"
fi

# A customer holds a phone with a payment QR code up to the camera: the frame goes into
# vivid's output node and comes back out of the camera, through the whole V4L2 path.
QR=286934509876543210
qrencode -t ASCII -m 0 "$QR" | python3 "$ROOT/tests/system/qr-frame.py" 640 480 10 >qr.grey
v4l2-ctl -d /dev/video1 --set-fmt-video-out=width=640,height=480,pixelformat=GREY \
    --stream-out-mmap=3 --stream-from=qr.grey --stream-loop >phone.log 2>&1 &
PHONE=$!
"$BIN/posctl" scan --json --source camera --timeout 40 >scan-camera.json 2>scan-camera.err
rc=$?
read_text=$(python3 -c 'import json; print(json.load(open("scan-camera.json"))["text"])' 2>/dev/null)
read_src=$(python3 -c 'import json; d=json.load(open("scan-camera.json")); print(d["source"], d["symbology"])' 2>/dev/null)
if [ "$rc" = 0 ] && [ "$read_text" = "$QR" ] && echo "$read_src" | grep -q '^camera:.* qr$'; then
    pass "scan: posctl scan --source camera read $(mask "$QR") from the QR code looped through vivid ($read_src)"
else
    fail "scan: camera scan rc=$rc, source '$read_src', text matches: $([ "$read_text" = "$QR" ] && echo yes || echo no); $(cat scan-camera.err; tail -3 phone.log)"
fi
# The technician's look through the camera, with the phone still held up.
if "$BIN/posctl" scanner snapshot "$OUT/snapshot.png" >snapshot.out 2>&1 \
    && "$BIN/posctl" decode --json "$OUT/snapshot.png" >snapshot.json 2>&1 \
    && grep -q "\"text\":\"$QR\"" snapshot.json; then
    pass "snapshot: posctl scanner snapshot saved the camera's frame, and the QR code decodes from it"
else
    fail "snapshot: $(cat snapshot.out; python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d.get("codes") or []), "codes", d.get("error"))' snapshot.json 2>&1)"
fi
kill "$PHONE" 2>/dev/null; wait "$PHONE" 2>/dev/null
PHONE=

# A driver that fails mid-stream (vb2_queue_error: every later DQBUF says EIO, as a USB
# camera whose firmware hangs): the daemon must restart the stream on its own.
reopens() { grep -c "reopen=true" scannerd.log; }
before=$(reopens)
v4l2-ctl -d /dev/video0 -c inject_fatal_streaming_error=1
if wait_until 20 sh -c "[ \$(grep -c 'reopen=true' scannerd.log) -gt $before ]" && wait_until 20 streaming \
    && grep -q "Input/output error" scannerd.log; then
    pass "camera: a fatal streaming error (EIO) is recovered by a reopen, streaming at $(fps) frames/s"
else
    fail "camera: after a fatal streaming error: '$(camera_state)', $(($(reopens) - before)) reopens"
fi

# The kernel's unplug path: the driver lets go of the device, /dev/video0 disappears.
echo vivid.0 >/sys/bus/platform/drivers/vivid/unbind
if wait_until 20 camera_is '^(reopening|absent)'; then
    pass "camera: unbound vivid seen as '$(camera_state | cut -c1-60)'"
else
    fail "camera: still '$(camera_state)' 20 s after vivid was unbound"
fi
# What the technician sees on the till while the camera is gone.
if wait_until 15 verdict_is no_frames; then
    pass "camera: verdict no_frames while unplugged"
else
    fail "camera: verdict '$(verdict)' 15 s after vivid was unbound, expected no_frames"
fi
echo vivid.0 >/sys/bus/platform/drivers/vivid/bind
if wait_until 30 streaming; then
    pass "camera: streaming again after vivid was bound back, $(fps) frames/s"
else
    fail "camera: '$(camera_state)' 30 s after vivid was bound back"
fi
if wait_until 15 verdict_is ok; then
    pass "camera: verdict ok again"
else
    fail "camera: verdict '$(verdict)' 15 s after vivid came back, expected ok"
fi
if grep -q "state=Reopening" scannerd.log && grep -q "state=Absent" scannerd.log; then
    pass "camera: scannerd logged the unplug as Reopening, then Absent"
else
    fail "camera: no state=Reopening / state=Absent in scannerd.log"
fi

if grep -Eq "$CODE|$CODE2|$QR" scannerd.log; then
    fail "scannerd: logged a whole payment code"
else
    pass "scannerd: no payment code in its log whole"
fi

# --- 5. a clean stop ------------------------------------------------------------------------
kill -TERM "$SCANNERD"
wait "$SCANNERD"
rc=$?
SCANNERD=
if [ "$rc" = 0 ]; then
    pass "scannerd: exits 0 on SIGTERM"
else
    fail "scannerd: exit status $rc on SIGTERM: $(tail -3 scannerd.log)"
fi

# --- 6. network faults on the real kernel: a namespace, a veth pair, netem ------------------
# The terminal is the root namespace (smartpos-netd, posctl); the acquirer is a network
# namespace holding a small HTTPS endpoint; a veth pair is the cable between them. netd is
# asked to probe on demand (posctl net probe), its window is one phase's probes, so each
# figure below is that phase's alone.
NET=$OUT/net
mkdir -p "$NET"
ACQ=10.99.0.2
DELAY_MS=200
# netem's loss is on what the terminal sends only; at 80% two probes of four still got through
# their timeouts in a run, at 90% that is rare enough for "at least one of four fails".
LOSS=90
WINDOW=4
NET_CHECKS="namespace baseline delay loss far-end-down far-end-up link-down link-up"
# net ARGS...: posctl net ARGS --json into net.json.
net() { "$BIN/posctl" net "$@" --json >"$NET/net.json" 2>"$NET/net.err"; }
# The last Status document is read with jq (python would take seconds per start under TCG):
# `ep` the endpoint, `lk` veth0, `pa` the Alipay path, `gw` the gateway.
JQ_DEFS='def ep: .endpoints[] | select(.name == "alipay");
def lk: .links[] | select(.name == "veth0");
def pa: .paths[] | select(.name == "alipay");
def gw: .gateway // {};'
# nj FILTER: its output, raw; is FILTER: whether it is true (false when it yields nothing).
nj() { jq -r "$JQ_DEFS $1" "$NET/net.json" 2>/dev/null; }
is() { jq -e "$JQ_DEFS $1" "$NET/net.json" >/dev/null 2>&1; }
# probe_n PHASE N: N probes of the endpoint on demand, each answer kept in PHASE/; the failed
# ones counted in NFAIL.
probe_n() {
    mkdir -p "$NET/$1"
    NFAIL=0
    i=0
    while [ "$i" -lt "$2" ]; do
        i=$((i + 1))
        net probe alipay || return 1
        cp "$NET/net.json" "$NET/$1/$i.json"
    done
    NFAIL=$(jq -s "$JQ_DEFS [.[] | ep | select(.last_ok != true)] | length" "$NET/$1"/*.json)
}
status_is() { net status && is "$1"; }
# What netd shows, for a FAIL line.
shows() {
    nj '"veth0 \(lk.operstate) carrier \(lk.carrier), carrying \(.carrying.interface); endpoint p50 \(ep.p50_ms) loss \(ep.loss) last \(ep.last_error); path \(pa.code): \(pa.reason_en)"' ||
        cat "$NET/net.err"
}

NET_SKIP=
: >"$NET/modprobe.err"
for m in veth sch_netem; do
    modprobe "$m" 2>>"$NET/modprobe.err" || NET_SKIP="$NET_SKIP $m"
done
if [ -n "$NET_SKIP" ]; then
    # Without veth there is no cable to pull; without netem no delay or loss to add.
    why="kernel $(uname -r) has no module$NET_SKIP: $(tr '\n' ' ' <"$NET/modprobe.err")"
    case $NET_SKIP in *veth*) skipped=$NET_CHECKS ;; *) skipped="delay loss" ;; esac
    for c in $skipped; do skip "net $c: $why"; done
fi

case $NET_SKIP in *veth*) ;; *)
    # The cable, and a default route through it as a DHCP client would set (the VM has no
    # other network: qemu runs with -net none).
    if ! { ip netns add acquirer && ip link add veth0 type veth peer name veth1 netns acquirer &&
        ip addr add 10.99.0.1/24 dev veth0 && ip link set veth0 up &&
        ip -n acquirer addr add "$ACQ/24" dev veth1 && ip -n acquirer link set veth1 up &&
        ip route add default via "$ACQ"; } >"$NET/ip.log" 2>&1; then
        fail "net namespace: cannot join a namespace with a veth pair: $(tr '\n' ' ' <"$NET/ip.log")"
        for c in $NET_CHECKS; do [ "$c" = namespace ] || skip "net $c: the namespace could not be set up"; done
        NET_SKIP=setup
    fi
    ;;
esac

case $NET_SKIP in *veth* | setup) ;; *)
    # A throwaway CA and a certificate for the endpoint's address, pinned in netd's config.
    printf 'subjectAltName=IP:%s\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' "$ACQ" >"$NET/server.ext"
    {
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
            -subj "/CN=smartpos system-test CA" -keyout "$NET/ca.key" -out "$NET/ca.pem" &&
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$ACQ" \
                -keyout "$NET/server.key" -out "$NET/server.csr" &&
            openssl x509 -req -in "$NET/server.csr" -CA "$NET/ca.pem" -CAkey "$NET/ca.key" \
                -CAcreateserial -days 365 -extfile "$NET/server.ext" -out "$NET/server.pem"
    } >"$NET/openssl.log" 2>&1 || fail "net: openssl could not make the endpoint's certificate: $(tail -3 "$NET/openssl.log")"
    ip netns exec acquirer python3 "$ROOT/tests/system/https-endpoint.py" "$ACQ" 8443 \
        "$NET/server.pem" "$NET/server.key" "$NET/endpoint-ready" >"$NET/endpoint.log" 2>&1 &
    ENDPOINT=$!
    wait_until 30 test -s "$NET/endpoint-ready" || fail "net: the HTTPS endpoint did not start: $(tail -3 "$NET/endpoint.log")"
    # Unprivileged ping sockets for root's group, as a terminal image allows netd's group,
    # so that netd can time the gateway (the namespace's end of the veth pair).
    echo "0 0" >/proc/sys/net/ipv4/ping_group_range
    cat >"$NET/netd.toml" <<EOF
# No merchant configuration: the one path is the endpoint below, standing in for Alipay.
merchant_config = "$NET/no-merchant.toml"
resolv_conf = "$NET/resolv.conf"

[schedule]
# The test probes on demand; the schedule only takes its first round.
endpoint_interval_s = 3600
gateway_interval_s = 3600
resolver_interval_s = 3600
link_poll_ms = 200
timeout_ms = 2000

[limits]
window = $WINDOW
probe_min_interval_ms = 0

[[endpoint]]
name = "alipay"
kind = "alipay"
url = "https://$ACQ:8443"
ca_file = "$NET/ca.pem"
EOF
    : >"$NET/resolv.conf"
    "$BIN/smartpos-netd" --config "$NET/netd.toml" >netd.log 2>&1 &
    NETD=$!

    if wait_until 30 status_is 'lk.operstate == "up" and lk.carrier == true and (lk.ipv4 | any(. == "10.99.0.1")) and .carrying.interface == "veth0"'; then
        pass "net namespace: 'acquirer' joined by a veth pair; netd sees veth0 up with 10.99.0.1 and the default route via $ACQ (kernel $(uname -r), modules:$(for m in veth sch_netem; do [ -d "/sys/module/$m" ] && printf ' %s' "$m"; done))"
    else
        fail "net namespace: netd does not show veth0 carrying the default route: $(shows; tail -3 netd.log)"
    fi

    # The terminal's uplink as it should be.
    if probe_n baseline "$WINDOW" && [ "$NFAIL" = 0 ] && is 'ep.loss == 0 and pa.code == "ok"'; then
        BASE=$(nj 'ep.p50_ms | round')
        pass "net baseline: netd probes the HTTPS endpoint in the namespace: p50 $BASE ms, loss 0% of $WINDOW probes, path ok"
    else
        fail "net baseline: $NFAIL of $WINDOW probes failed: $(shows)"
        BASE="?"
    fi

    # A slow uplink: every packet the terminal sends waits DELAY_MS in netem. A probe is at
    # least three round trips (TCP connect, the TLS 1.3 handshake, the HEAD and its answer).
    case $NET_SKIP in *sch_netem*) ;; *)
        tc qdisc add dev veth0 root netem delay "${DELAY_MS}ms"
        if probe_n delay "$WINDOW" && [ "$NFAIL" = 0 ] &&
            is "ep.p50_ms >= 3 * $DELAY_MS and ep.last.connect_ms >= $DELAY_MS and pa.code == \"ok\"" &&
            net probe gateway && is "gw.last.total_ms >= $DELAY_MS"; then
            pass "net delay: netem delay ${DELAY_MS}ms on veth0: netd's p50 $BASE -> $(nj '"\(ep.p50_ms | round) ms (TCP connect \(ep.last.connect_ms | round) ms), gateway ping \(gw.last.total_ms | round) ms"')"
        else
            fail "net delay: netem delay ${DELAY_MS}ms, $NFAIL failed probes: $(shows); gateway $(nj '"\(gw.last) \(gw.note)"')"
        fi

        # A lossy uplink: netem drops LOSS% of what the terminal sends. TCP retransmits, so a
        # probe fails only when the losses outlast its 2 s timeouts, as a sale's would.
        tc qdisc change dev veth0 root netem loss "${LOSS}%"
        probe_n loss "$WINDOW"
        ok=$?
        dropped=$(tc -s qdisc show dev veth0 | sed -n 's/.*(dropped \([0-9]*\),.*/\1/p')
        # netd's loss is failed / probes in the window, the same division as here.
        if [ "$ok" = 0 ] && [ "$NFAIL" -gt 0 ] && is "ep.loss == $NFAIL / $WINDOW and ep.probes == $WINDOW"; then
            pass "net loss: netem loss ${LOSS}% on veth0 ($dropped packets dropped): $NFAIL of $WINDOW probes failed, netd's loss 0% -> $(nj '"\(ep.loss * 100 | round)%, last error \(ep.last_error.code)"')"
        else
            fail "net loss: netem loss ${LOSS}% ($dropped packets dropped), $NFAIL of $WINDOW probes failed: $(shows)"
        fi
        tc qdisc del dev veth0 root
        ;;
    esac

    # The cable pulled at the far end: veth0 loses its carrier; the kernel keeps the routes
    # (marked linkdown) and drops what is sent, so the connection attempt runs into netd's 2 s
    # timeout (the kernel would give up resolving the address after 3 s, "no route to host").
    ip -n acquirer link set veth1 down
    if wait_until 10 status_is 'lk.carrier == false and .carrying == null' &&
        net probe alipay &&
        is 'lk.operstate == "down" and pa.code == "net.no_route" and .online == false and ep.last_ok == false and ep.last_error.code == "net.connect_timeout"'; then
        pass "net far-end-down: the far end of the veth pair down: netd sees veth0 down without carrier, path net.no_route (\"$(nj 'pa.reason_en')\"), the probe fails net.connect_timeout"
    else
        fail "net far-end-down: $(shows)"
    fi
    ip -n acquirer link set veth1 up
    if wait_until 10 status_is 'lk.carrier == true and .carrying.interface == "veth0"' &&
        net probe alipay && is 'ep.last_ok == true and pa.code == "ok" and .online == true'; then
        pass "net far-end-up: the far end up again: netd sees veth0 up, the probe answers in $(nj 'ep.last.total_ms | round') ms, path ok, online"
    else
        fail "net far-end-up: $(shows)"
    fi

    # The terminal's own link taken down: the kernel drops its routes with it, and a
    # connection attempt fails at once (no route), before anything is sent.
    ip link set veth0 down
    if wait_until 10 status_is 'lk.operstate == "down" and .carrying == null and .routes == []' &&
        net probe alipay &&
        is 'pa.code == "net.no_route" and ep.last_ok == false and ep.last_error.code == "net.refused" and (ep.last_error.detail | contains("unreachable"))'; then
        pass "net link-down: veth0 set down: netd sees it down with no default route, path net.no_route, the probe fails net.refused ($(nj 'ep.last_error.detail'))"
    else
        fail "net link-down: $(shows)"
    fi
    # Up again, and the default route back as a DHCP client would put it.
    ip link set veth0 up && ip route add default via "$ACQ"
    if wait_until 10 status_is '.carrying.interface == "veth0"' &&
        net probe alipay && is 'ep.last_ok == true and pa.code == "ok" and .online == true'; then
        pass "net link-up: veth0 up with its default route: netd sees the route again, the probe answers in $(nj 'ep.last.total_ms | round') ms, path ok"
    else
        fail "net link-up: $(shows)"
    fi

    kill -TERM "$NETD"
    wait "$NETD"
    rc=$?
    NETD=
    if [ "$rc" = 0 ]; then
        pass "netd: exits 0 on SIGTERM"
    else
        fail "netd: exit status $rc on SIGTERM: $(tail -3 netd.log)"
    fi
    ;;
esac
exit "$failed"
