# The whole stack as a terminal boots it: run by smartpos-system-test.service inside the VM,
# with systemd as PID 1, the smartpos files exactly as tools/install-files.sh installs them
# (the same list as `make install`), the real system bus, udev and the journal, and the data
# partition on a virtio disk. tools/system-test.sh boots the VM twice:
#
#   phase 1 (slot A)  units up with READY, boot order, hardening scores, a camera sale and a
#                     HID sale against the acquirer emulator, a wedged paymentd killed by
#                     the watchdog, what an ordinary user cannot do, no code in the journal
#   phase 2 (slot B)  a fresh root filesystem (a simulated A/B switch) with the same data
#                     partition: the sales of phase 1 are still in the journal
#
# Writes `PASS …`/`FAIL …` lines to $WORK/results-stack-N; the exit status is the number of
# failures. Payment codes never appear whole in what this script prints.

# Most helpers are called through wait_until, which shellcheck cannot follow.
# shellcheck shell=sh disable=SC2317
set -u
PHASE=$(sed -n 's/.*smartpos.test-phase=\([0-9]*\).*/\1/p' /proc/cmdline)
WORK=$(sed -n 's/.*harness.work=\([^ ]*\).*/\1/p' /proc/cmdline)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$WORK" || exit 1
RESULTS=$WORK/results-stack-$PHASE
: >"$RESULTS"
failed=0
# The log (stack-N.log) has each verdict with the seconds since the kernel started.
up() { cut -d' ' -f1 /proc/uptime; }
pass() { echo "PASS [boot $PHASE] $*" >>"$RESULTS"; echo "[$(up)] PASS $*"; }
fail() { echo "FAIL [boot $PHASE] $*" >>"$RESULTS"; echo "[$(up)] FAIL $*"; failed=$((failed + 1)); }
# shellcheck disable=SC2001 # a POSIX sh has no ${var//…}
mask() { echo "$1" | sed 's/^\(..\).*\(....\)$/\1…\2/'; }
wait_until() {
    t=$1; shift
    end=$(($(date +%s) + t))
    while ! "$@"; do
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.3
    done
}
# as USER CMD...: as that account, with its groups, without a login shell.
as() { u=$1; shift; setpriv --reuid="$u" --regid="$u" --init-groups -- "$@"; }
# json FIELD: the first string or number FIELD in posctl's --json output on stdin (top-level
# fields come first); grep and sed, as a python3 start costs seconds under TCG.
json() { grep -o "\"$1\": *\(\"[^\"]*\"\|[-0-9.]*\)" | head -1 | sed 's/^[^:]*: *//; s/^"//; s/"$//'; }
tx_field() { # TX FIELD (as the cashier)
    as cashier posctl --json tx show "$1" 2>/dev/null | json "$2"
}
# props PROPERTIES UNIT...: one systemctl call for many units; "N property=value" lines, N the
# unit's position (each process start costs seconds under TCG).
props() { p=$1; shift; systemctl show -p "$p" "$@" | awk -v RS= '{ for (i = 1; i <= NF; i++) print NR, $i }'; }
prop_of() { sed -n "s/^$1 $2=//p"; } # N PROPERTY, on props' output
tx_state_is() { [ "$(tx_field "$1" state)" = "$2" ]; }
UNITS="smartpos-scannerd smartpos-paymentd"
# Codes this run pays with; none may reach the journal whole.
QR_CODE=286014455667788990
HID_CODE=134500001111222233
WEDGE_CODE=281011234567890123
SNOOP_CODE=286017777888899990
CODES="$QR_CODE|$HID_CODE|$WEDGE_CODE|$SNOOP_CODE"

# The boot finished (every start job done): what a terminal looks like once it is up.
echo "[$(up)] stack.sh started"
timeout 180 systemctl is-system-running --wait >/dev/null 2>&1
echo "[$(up)] system state after boot: $(systemctl is-system-running)"
systemd-analyze time --no-pager >"analyze-time-$PHASE.txt" 2>&1
if [ "$PHASE" = 2 ]; then
    # critical-chain reads the properties of every unit PID 1 has loaded (about 180 here, one
    # GetAll each): more than a minute under TCG on a loaded machine. So it runs once, on
    # slot B's boot, alongside that boot's few checks (docs/PACKAGING.md, "Boot order").
    CHAIN_T0=$(up)
    timeout 300 systemd-analyze critical-chain --no-pager smartpos-paymentd.service >"critical-chain-$PHASE.txt" 2>&1 &
    CHAIN=$!
fi

# --- every smartpos unit up, READY sent ------------------------------------------------------
units_up() {
    # shellcheck disable=SC2086 # a list of units
    [ "$(systemctl show -P ActiveState $UNITS | grep . | sort -u)" = active ]
}
if wait_until 60 units_up; then
    for u in $UNITS; do
        s=$(systemctl show -p Type,SubState,StatusText,MainPID,NRestarts "$u")
        # A Type=notify unit is "active" only once the daemon sent READY=1.
        if echo "$s" | grep -qx Type=notify && echo "$s" | grep -qx SubState=running; then
            s=$(echo "$s" | tr '\n' ' ')
            pass "$u: active (running), READY=1 received (Type=notify; $s)"
        else
            fail "$u: not a running notify service: $s"
        fi
    done
else
    for u in $UNITS; do systemctl status --no-pager -l "$u" 2>&1 | tail -15; done
    # shellcheck disable=SC2086 # a list of units
    fail "units: not all of $UNITS active after 60 s: $(systemctl is-active $UNITS | tr '\n' ' ')"
fi
failed_units=$(systemctl list-units --failed --plain --no-legend 'smartpos*' '*.mount' | awk '{ print $1 }' | tr '\n' ' ')
if [ -z "$failed_units" ]; then
    pass "units: no smartpos unit or mount failed"
else
    fail "units: failed: $failed_units"
fi

# --- the data partition, the read-only root -----------------------------------------------------
src() { findmnt -n -o SOURCE --target "$1"; }
ok=1
for p in /data /etc/smartpos /var/lib/smartpos-payment /var/log/journal; do
    case "$(src "$p")" in /dev/vda*) ;; *) ok=0; echo "$p is on $(src "$p")" ;; esac
done
if [ $ok = 1 ]; then
    pass "data partition: /data, /etc/smartpos, /var/lib/smartpos-payment, /var/log/journal on /dev/vda ($(findmnt -n -o FSTYPE,OPTIONS /data))"
else
    fail "data partition: not everything on /dev/vda: $(findmnt -n -o TARGET,SOURCE /data /etc/smartpos /var/lib/smartpos-payment /var/log/journal | tr '\n' ';')"
fi
if findmnt -n -o OPTIONS / | grep -Eq '(^|,)ro(,|$)' && ! touch /usr/lib/smartpos-write-test 2>/dev/null; then
    pass "root filesystem: read-only ($(findmnt -n -o FSTYPE,OPTIONS / | cut -c1-40))"
else
    fail "root filesystem: writable"
fi
# Ordering: the mounts came up before the daemon that keeps its journal there.
P=$(props ActiveEnterTimestampMonotonic,ExecMainStartTimestampMonotonic,RequiresMountsFor \
    'var-lib-smartpos\x2dpayment.mount' etc-smartpos.mount smartpos-paymentd.service smartpos-scannerd.service)
mount_before() { # MOUNT UNIT, as positions in $P
    m=$(echo "$P" | prop_of "$1" ActiveEnterTimestampMonotonic)
    d=$(echo "$P" | prop_of "$2" ExecMainStartTimestampMonotonic)
    [ -n "$m" ] && [ -n "$d" ] && [ "$m" != 0 ] && [ "$d" != 0 ] && [ "$m" -lt "$d" ]
}
if mount_before 1 3 && mount_before 2 3 && mount_before 2 4 &&
    echo "$P" | grep -q '^3 .*/var/lib/smartpos-payment'; then
    pass "boot order: data.mount and its binds were up before the daemons started (RequiresMountsFor from StateDirectory=)"
else
    fail "boot order: a data mount came up after a daemon: $(systemctl show -P RequiresMountsFor,After smartpos-paymentd.service | tr '\n' ' ')"
fi
# The boot order from the units' own timestamps (seconds since the kernel started:
# activating -> active), for docs/PACKAGING.md.
BOOT_UNITS='systemd-udevd.service dev-disk-by\x2dlabel-smartpos\x2ddata.device
    systemd-fsck@dev-disk-by\x2dlabel-smartpos\x2ddata.service data.mount smartpos-data-layout.service
    etc-smartpos.mount var-lib-smartpos\x2dpayment.mount var-log-journal.mount systemd-journal-flush.service
    systemd-tmpfiles-setup.service local-fs.target dbus.service smartpos-test-provision.service
    smartpos-test-camera.service smartpos-paymentd.service smartpos-scannerd.service multi-user.target'
# shellcheck disable=SC2086 # a list of units
props InactiveExitTimestampMonotonic,ActiveEnterTimestampMonotonic $BOOT_UNITS | BOOT_UNITS=$BOOT_UNITS awk '
    BEGIN { n = split(ENVIRON["BOOT_UNITS"], u) }
    { split($2, kv, "="); t[$1, kv[1]] = kv[2] }
    END { for (i = 1; i <= n; i++)
        printf "%8.1f s -> %8.1f s  %s\n", t[i, "InactiveExitTimestampMonotonic"] / 1e6,
            t[i, "ActiveEnterTimestampMonotonic"] / 1e6, u[i] }' | sort -n >"boot-order-$PHASE.txt"
lsblk -o NAME,LABEL,FSTYPE,SIZE,MOUNTPOINTS /dev/vda >"lsblk-$PHASE.txt" 2>&1

if [ "$PHASE" = 2 ]; then
    # --- after the slot switch ----------------------------------------------------------------
    slot=$(cat /usr/lib/smartpos-test-slot 2>/dev/null)
    before=$(cat sales-boot1.txt 2>/dev/null)
    after=$(as cashier posctl --json tx list 2>/dev/null | python3 -c '
import json, sys
for t in sorted(json.load(sys.stdin), key=lambda t: t["id"]):
    print(t["id"], t["order_ref"], t["state"])' 2>/dev/null)
    if [ "$slot" = B ] && [ -n "$before" ] && [ "$before" = "$after" ]; then
        pass "slot switch: booted slot $slot; the $(echo "$before" | wc -l) sales journaled on slot A are there, same states"
    else
        fail "slot switch: slot '$slot'; before: $(echo "$before" | tr '\n' ';') after: $(echo "$after" | tr '\n' ';')"
    fi
    boots=$(journalctl --list-boots --no-pager 2>/dev/null | grep -c .)
    if [ "$boots" -ge 2 ] && journalctl -b -1 -u smartpos-paymentd.service --no-pager -q | grep -q .; then
        pass "journal: persistent on the data partition, $boots boots, slot A's paymentd log readable"
    else
        fail "journal: $boots boots in /var/log/journal"
    fi
    if journalctl --no-pager -o cat 2>/dev/null | grep -Eq "$CODES"; then
        fail "journal: a whole payment code is in the system journal, from: $(journalctl --no-pager -o short | grep -E "$CODES" | awk '{ print $5 }' | sort -u | tr '\n' ' ')"
    else
        pass "journal: no whole payment code in the system journal (both boots)"
    fi
    wait "$CHAIN"
    rc=$?
    if [ "$rc" = 0 ] && grep -q '^smartpos-paymentd.service ' "critical-chain-$PHASE.txt" &&
        grep -q '@' "critical-chain-$PHASE.txt"; then
        pass "critical-chain: systemd-analyze critical-chain smartpos-paymentd.service finished in $(awk -v a="$CHAIN_T0" -v b="$(up)" 'BEGIN { printf "%.0f", b - a }') s, $(grep -c '@' "critical-chain-$PHASE.txt") units on the chain, the data partition $(grep -q 'data.mount @' "critical-chain-$PHASE.txt" && echo on it || echo not on it)"
    else
        fail "critical-chain: exit $rc: $(head -c 300 "critical-chain-$PHASE.txt")"
    fi
    exit "$failed"
fi

# --- hardening as booted --------------------------------------------------------------------------
for u in $UNITS; do
    online=$(systemd-analyze security --no-pager "$u.service" 2>&1 | tail -1 | sed -n 's/.*: \([0-9.]*\) .*/\1/p')
    offline=$(cd /tmp && systemd-analyze security --offline=yes "/usr/lib/systemd/system/$u.service" 2>&1 | tail -1 |
        sed -n 's/.*: \([0-9.]*\) .*/\1/p')
    echo "$u online=$online offline=$offline" >>security.txt
    if [ -n "$online" ] && [ "$online" = "$offline" ]; then
        pass "security: $u exposure $online on the booted system, the same as offline"
    else
        fail "security: $u exposure on the booted system '$online', offline '$offline'"
        systemd-analyze security --no-pager "$u.service" >"security-$u.txt" 2>&1
    fi
done

# --- scanners kept away from the console ------------------------------------------------------------
G=$(systemctl show -p ConditionResult,ActiveState getty@tty1.service)
if echo "$G" | grep -qx ConditionResult=no && echo "$G" | grep -qx ActiveState=inactive; then
    pass "console: no getty on tty1 (enabled by the base system, stopped by the smartpos drop-in)"
else
    fail "console: getty@tty1 is $(systemctl show -P ActiveState,ConditionResult getty@tty1.service | tr '\n' ' ')"
fi
# plug TAG VENDOR CODE: a uinput keyboard-wedge device; its node in $NODE.
plug() {
    python3 "$ROOT/tests/system/wedge-scanner.py" "smartpos system-test $1" "$2" 0x5301 "$3" "$WORK/$1" \
        >"$1.log" 2>&1 &
    eval "PID_$1=\$!"
    wait_until 30 test -s "$1-node" || fail "hid: uinput device $1 did not appear: $(cat "$1.log")"
    NODE=$(cat "$1-node" 2>/dev/null)
}
prop() { udevadm info -q property "/dev/input/$1" | sed -n "s/^$2=//p"; }
plug keyboard 0x046d 0
udevadm settle -t 10
KBD=$NODE
plug hid 0x1eab "$HID_CODE"
udevadm settle -t 10
if [ "$(prop "$NODE" ID_INPUT_KEYBOARD)" != 1 ] && [ "$(prop "$NODE" SMARTPOS_SCANNER)" = 1 ] &&
    [ "$(stat -c '%G %a' "/dev/input/$NODE")" = "smartpos-scanner 640" ] &&
    [ "$(readlink -f "/dev/smartpos/scanner-$NODE")" = "/dev/input/$NODE" ] &&
    [ "$(prop "$KBD" ID_INPUT_KEYBOARD)" = 1 ]; then
    pass "udev: the scanner $NODE is not a keyboard (ID_INPUT_KEYBOARD unset), smartpos-scanner 0640, /dev/smartpos/scanner-$NODE; a real keyboard ($KBD) still is one"
else
    fail "udev: scanner $NODE: $(udevadm info -q property "/dev/input/$NODE" | grep -E 'ID_INPUT|SMARTPOS' | tr '\n' ' ') $(stat -c '%G %a' "/dev/input/$NODE"); keyboard $KBD ID_INPUT_KEYBOARD=$(prop "$KBD" ID_INPUT_KEYBOARD)"
fi
touch keyboard-go keyboard-stop

# --- a sale paid with the QR code the camera sees ---------------------------------------------------
qrencode -t ASCII -m 0 "$QR_CODE" | python3 "$ROOT/tests/system/qr-frame.py" 640 480 10 >qr.grey
v4l2-ctl -d /dev/video1 --set-fmt-video-out=width=640,height=480,pixelformat=GREY \
    --stream-out-mmap=3 --stream-from=qr.grey --stream-loop >phone.log 2>&1 &
PHONE=$!
as cashier posctl --json sale 12.34 --order-ref system-camera --timeout 60 >sale-camera.json 2>sale-camera.err
rc=$?
kill "$PHONE" 2>/dev/null; wait "$PHONE" 2>/dev/null
state="$(json state <sale-camera.json) $(json scheme <sale-camera.json) $(json code_masked <sale-camera.json)"
if [ "$rc" = 0 ] && echo "$state" | grep -q '^succeeded alipay'; then
    pass "camera sale: a cashier's posctl sale 12.34 paid with the QR code looped through vivid ($state)"
else
    fail "camera sale: rc=$rc '$state' $(head -c 300 sale-camera.err)"
fi

# --- a sale paid with a code typed by the HID scanner ----------------------------------------------
scanning() { as tech posctl --json scanner status 2>/dev/null | grep -q '"state": "scanning"'; }
as cashier posctl --json sale 5.00 --order-ref system-hid --timeout 60 >sale-hid.json 2>sale-hid.err &
SALE=$!
if wait_until 30 scanning; then touch hid-go; else fail "hid sale: the scanner was never armed"; fi
wait "$SALE"
rc=$?
state="$(json state <sale-hid.json) $(json scheme <sale-hid.json) $(json code_masked <sale-hid.json)"
if [ "$rc" = 0 ] && echo "$state" | grep -q '^succeeded wechat'; then
    pass "hid sale: paid with the code the uinput scanner typed ($state)"
else
    fail "hid sale: rc=$rc '$state' $(head -c 300 sale-hid.err)"
fi
touch hid-stop

# --- an ordinary user ---------------------------------------------------------------------------------
# outsider: a local account in no smartpos group (a shell user, a compromised app).
DENIED='denied\|refused\|not allowed\|AccessDenied\|not permitted'
# (No --code: a code on a command line is readable by every local user in /proc, and
# dbus-daemon's log of a rejected call quotes the caller's command line.)
out=$(as outsider posctl sale 1.00 --timeout 5 2>&1)
rc=$?
if [ $rc != 0 ] && echo "$out" | grep -qi "$DENIED"; then
    pass "outsider: posctl sale refused ($(echo "$out" | head -1 | cut -c1-90))"
else
    fail "outsider: posctl sale was not refused: $(echo "$out" | head -2)"
fi
out=$(as outsider busctl --system call org.smartpos.Payment1 /org/smartpos/Payment1 org.smartpos.Payment1 \
    Sale 'xssa{sv}' 100 CNY outsider-1 0 2>&1)
rc=$?
if [ $rc != 0 ] && echo "$out" | grep -qi "$DENIED"; then
    pass "outsider: Sale over the bus refused ($(echo "$out" | head -1 | cut -c1-80))"
else
    fail "outsider: Sale over the bus: $(echo "$out" | head -2)"
fi
out=$(as outsider posctl tx show 1 2>&1)
rc=$?
if [ $rc != 0 ] && ! echo "$out" | grep -q 'system-camera' && echo "$out" | grep -qi "$DENIED"; then
    pass "outsider: posctl tx show 1 refused ($(echo "$out" | head -1 | cut -c1-80))"
else
    fail "outsider: read sale 1 through posctl: $(echo "$out" | head -3 | tr '\n' ' ')"
fi
props=$(as outsider busctl --system --json=short call org.smartpos.Payment1 /org/smartpos/Payment1/tx/1 \
    org.freedesktop.DBus.Properties GetAll s org.smartpos.Payment1.Transaction 2>&1)
rc=$?
if [ $rc != 0 ] && echo "$props" | grep -qi "$DENIED" && ! echo "$props" | grep -q 'system-camera\|1234'; then
    pass "outsider: Properties.GetAll on sale 1's object refused ($(echo "$props" | head -1 | cut -c1-80))"
else
    fail "outsider: Properties.GetAll on /org/smartpos/Payment1/tx/1 (rc $rc): $(echo "$props" | cut -c1-200)"
fi
out=$(as outsider posctl scan --timeout 5 2>&1)
rc=$?
if [ $rc != 0 ] && echo "$out" | grep -qi "$DENIED"; then
    pass "outsider: posctl scan refused"
else
    fail "outsider: posctl scan was not refused: $(echo "$out" | head -2)"
fi
# The outsider listens for the scanner's signals while a technician scans a code.
as outsider gdbus monitor --system --dest org.smartpos.Scanner1 >snoop.log 2>&1 &
SNOOP=$!
sleep 1
plug snoop 0x1eab "$SNOOP_CODE"
as tech posctl --json scan --timeout 30 >scan-tech.json 2>scan-tech.err &
SCAN=$!
if wait_until 30 scanning; then touch snoop-go; fi
wait "$SCAN"
rc=$?
sleep 1
kill "$SNOOP" 2>/dev/null
touch snoop-stop
if [ "$rc" = 0 ] && grep -q "$SNOOP_CODE" scan-tech.json && ! grep -q "$SNOOP_CODE" snoop.log &&
    ! grep -q CodeScanned snoop.log; then
    pass "outsider: listening on the bus, did not receive the code the technician scanned ($(grep -c . snoop.log) lines seen)"
else
    fail "outsider: technician scan rc=$rc; the outsider saw CodeScanned: $(grep -c CodeScanned snoop.log), the code: $(grep -c "$SNOOP_CODE" snoop.log)"
fi

# --- paymentd wedged mid-sale: the watchdog kills it, systemd restarts it, the sale resolves ----------
# Slot A's drop-in arms the test build's failpoint SMARTPOS_FAILPOINT=hang:waiting_for_customer:
# the thread committing "waiting for the customer" stops for good while it holds the journal,
# as a deadlock would. paymentd pings the watchdog only after a round trip through the
# journal, so its pings stop and systemd kills it. The failpoint fires once per journal, so
# the daemon systemd restarts (with the same environment) resumes the sale.
FP=$(systemctl show -P Environment smartpos-paymentd | tr ' ' '\n' | grep '^SMARTPOS_FAILPOINT=')
S=$(systemctl show -p MainPID,NRestarts smartpos-paymentd)
PID=$(echo "$S" | sed -n 's/^MainPID=//p')
restarts=$(echo "$S" | sed -n 's/^NRestarts=//p')
t0=$(date +%s)
# The customer confirms only 10 s after the code was submitted (scenario 101).
as cashier posctl --json sale 7.00 --order-ref system-watchdog --code "$WEDGE_CODE" --no-wait >sale-wd.json 2>sale-wd.err
TX=$(json id <sale-wd.json)
restarted() {
    S=$(systemctl show -p MainPID,NRestarts smartpos-paymentd)
    [ "$(echo "$S" | sed -n 's/^NRestarts=//p')" -gt "$restarts" ] && ! echo "$S" | grep -qx "MainPID=$PID"
}
if wait_until 90 restarted && journalctl -u smartpos-paymentd -b --no-pager -q | grep -qi 'watchdog timeout' &&
    journalctl -b --no-pager -q -o cat _PID="$PID" | grep -q 'failpoint hit: hanging'; then
    pass "watchdog: paymentd (pid $PID, $FP) wedged holding the journal with sale ${TX:-?} waiting for the customer; its pings stopped, systemd killed it (Watchdog timeout) and restarted it, $(($(date +%s) - t0)) s after the sale"
else
    fail "watchdog: paymentd pid $PID ($FP) not wedged, killed and restarted: $(systemctl show -P NRestarts,MainPID,ActiveState smartpos-paymentd | tr '\n' ' ') $(journalctl -b -q -o cat _PID="$PID" | grep -c failpoint) failpoint lines"
fi
# posctl --no-wait answers once the payment is submitted; had the daemon wedged before its
# answer, the cashier would find the sale by its order reference.
[ -n "$TX" ] || TX=$(as cashier posctl --json tx list 2>/dev/null |
    python3 -c 'import json,sys; print(*[t["id"] for t in json.load(sys.stdin) if t["order_ref"] == "system-watchdog"])' 2>/dev/null)
if [ -n "$TX" ] && wait_until 90 tx_state_is "$TX" succeeded; then
    pass "watchdog: the sale in flight (tx $TX, $(mask "$WEDGE_CODE")) resolved from the journal after the restart: $(tx_field "$TX" state), acquirer trade $(tx_field "$TX" acquirer_trade_no)"
else
    fail "watchdog: sale '$TX' is '$(tx_field "$TX" state)' 90 s after the restart"
fi
wait_until 30 units_up || fail "watchdog: paymentd not active again"

# --- nothing in the journal holds a whole payment code ------------------------------------------------
journalctl --flush 2>/dev/null
if journalctl -b --no-pager -o cat 2>/dev/null | grep -Eq "$CODES"; then
    fail "journal: a whole payment code is in the system journal, from: $(journalctl -b --no-pager -o short | grep -E "$CODES" | awk '{ print $5 }' | sort -u | tr '\n' ' ')"
else
    pass "journal: no whole payment code in the system journal ($(journalctl -b --no-pager -q -u 'smartpos-*' | grep -c .) lines of smartpos units)"
fi

# What the next boot (slot B) must still see.
as cashier posctl --json tx list 2>/dev/null | python3 -c '
import json, sys
for t in sorted(json.load(sys.stdin), key=lambda t: t["id"]):
    print(t["id"], t["order_ref"], t["state"])' >sales-boot1.txt 2>/dev/null
for u in $UNITS; do
    echo "$u $(cat "/sys/fs/cgroup/system.slice/$u.service/memory.peak" 2>/dev/null) $(cat "/sys/fs/cgroup/system.slice/$u.service/pids.peak" 2>/dev/null)" >>peaks.txt
done
exit "$failed"
