#!/usr/bin/env bash
# Run the smartpos units under a real systemd and check that they do what they promise.
#
#   tools/live-test-units.sh            # needs root; prints one summary line
#   VERBOSE=1 tools/live-test-units.sh
#   ONLY=smartpos-paymentd tools/live-test-units.sh
#   REAL=target/debug tools/live-test-units.sh   # then also run the daemons that are built
#
# A throwaway container (systemd-nspawn, systemd as PID 1, over a tmpfs overlay of this
# machine's own root, no network) gets the install tree from tools/install-files.sh and
# a stand-in daemon (tools/live-unit-stub.py) in place of each binary. For every unit:
#   - it starts and reaches READY through the notify socket (Type=notify, NotifyAccess=main)
#   - inside the sandbox the daemon is its own user, without capabilities, with
#     no_new_privs; it can write its state and runtime directories and nothing else
#   - it can own its bus name under the installed policy (when dbus/<name>.conf exists)
#   - network: the scanner has no INET sockets at all; paymentd/otad are refused a LAN
#     address (EPERM from the IP filter) but not a public one; netd may use netlink
#   - exit 78 (bad config) is not restarted; exit 69 (no bus) is
#   - a daemon that stops pinging is killed by the watchdog and restarted
# Nothing leaves the machine: the container has no route, so a permitted connect fails
# with ENETUNREACH and never sends a packet.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERBOSE=${VERBOSE:-0}
PASSED=0
FAILED=0
SKIPPED=0

if [ "$(id -u)" != 0 ]; then
    echo "live-test-units: needs root (systemd-nspawn, overlay mounts)"
    exit 77
fi
if ! command -v systemd-nspawn >/dev/null; then
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd-container; } \
        >/dev/null 2>&1; then
        echo "live-test-units: cannot install systemd-container"
        exit 1
    fi
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/live-units.XXXXXX")
R=$WORK/root
NSPAWN_PID=
cleanup() {
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        kill "$NSPAWN_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$NSPAWN_PID" 2>/dev/null
    fi
    umount "$R" 2>/dev/null
    umount "$WORK/t" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

ok() { PASSED=$((PASSED + 1)); [ "$VERBOSE" = 1 ] && echo "ok   $*"; return 0; }
bad() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }

# --- the container's root -------------------------------------------------------------
mkdir -p "$WORK/t" "$R" "$WORK/stubs"
mount -t tmpfs -o size=256m tmpfs "$WORK/t" || exit 1
mkdir -p "$WORK/t/upper" "$WORK/t/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$WORK/t/upper,workdir=$WORK/t/work" "$R" || exit 1
systemd-id128 new >"$R/etc/machine-id"

UNITS=()
for f in "$ROOT"/systemd-units/*.service; do
    u=$(basename "$f" .service)
    # ONLY=smartpos-paymentd limits the run to one unit (the others are still installed).
    if [ -z "${ONLY:-}" ] || [ "$ONLY" = "$u" ]; then UNITS+=("$u"); fi
    cp "$ROOT/tools/live-unit-stub.py" "$WORK/stubs/$u"
    chmod 0755 "$WORK/stubs/$u"
done
# Start from the shipped files only: drop anything a previous install left in the lower root.
rm -f "$R"/usr/lib/systemd/system/smartpos-*.service "$R"/etc/systemd/system/smartpos-*.service
"$ROOT/tools/install-files.sh" "$R" /usr "$WORK/stubs" 2>/dev/null || { echo "install-files.sh failed"; exit 1; }
# Accounts at image-build time, as Yocto's useradd class (and a package postinst) do.
systemd-sysusers --root="$R" >/dev/null 2>&1
# Boot only what the test needs; the host's own services stay down.
cat >"$R/etc/systemd/system/smartpos-live.target" <<'EOF'
[Unit]
Description=smartpos live unit test
Requires=basic.target dbus.service
After=basic.target dbus.service
AllowIsolate=yes
EOF

SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 \
    systemd-nspawn -q --register=no --keep-unit --private-network -D "$R" --boot \
    systemd.unit=smartpos-live.target >"$WORK/console" 2>&1 &
NSPAWN_PID=$!
INIT=
for _ in $(seq 100); do
    INIT=$(pgrep -P "$NSPAWN_PID" | head -1)
    [ -n "$INIT" ] && break
    sleep 0.2
done
[ -n "$INIT" ] || { echo "live-test-units: container did not start"; cat "$WORK/console"; exit 1; }
ct() { nsenter -t "$INIT" -m -u -i -n -p -C -- "$@"; }
# Up to a minute: the machine may be busy compiling.
for _ in $(seq 300); do
    state=$(ct systemctl is-system-running 2>/dev/null)
    case "$state" in running | degraded) break ;; esac
    sleep 0.2
done
case "$state" in
    running | degraded) ;;
    *) echo "live-test-units: systemd in the container is '$state'"; tail -20 "$WORK/console"; exit 1 ;;
esac

# Addresses on the container's own loopback stand in for a LAN host and a public host:
# a connect the unit allows is refused by the local stack (ECONNREFUSED), one its IP
# filter blocks fails with EPERM, and no packet can leave the container.
ct ip addr add 192.168.255.1/32 dev lo
ct ip addr add 1.1.1.1/32 dev lo
# IPAddressDeny= needs BPF cgroup filters; some kernels and nested containers lack them,
# and systemd then runs the unit unfiltered. Detect that rather than blame the unit.
ct systemd-run -q -p IPAccounting=yes -p RemainAfterExit=yes --unit=smartpos-bpf-probe /bin/true
sleep 0.5
if [ "$(ct systemctl show -P IPIngressBytes smartpos-bpf-probe.service)" = "[no data]" ]; then
    IP_FILTER=0
else
    IP_FILTER=1
fi
ct systemctl stop smartpos-bpf-probe.service 2>/dev/null

prop() { ct systemctl show -P "$2" "$1.service"; }
set_mode() { printf 'mode = "%s"\n' "$2" >"$R/etc/smartpos/$1.toml"; }
# status UNIT KEY: a probe result from the stand-in's STATUS= line.
probe() { tr ' ' '\n' <<<"$(prop "$1" StatusText)" | sed -n "s/^$2=//p"; }
expect_probe() {
    local unit=$1 key=$2 want=$3 got
    got=$(probe "$unit" "$key")
    # shellcheck disable=SC2053 # $want is a glob on purpose (E*, *44*)
    if [[ "$got" == $want ]]; then ok "$unit: $key=$got"; else bad "$unit: $key is '$got', want '$want'"; fi
}
# ip_allowed UNIT_FILE ADDRESS: does the unit's IPAddressAllow=/IPAddressDeny= let it reach ADDRESS?
ip_allowed() {
    python3 - "$1" "$2" <<'EOF'
import ipaddress, sys
lines = open(sys.argv[1]).read().splitlines()
addr = ipaddress.ip_address(sys.argv[2])
def nets(key):
    out = []
    for l in lines:
        if l.startswith(key + "="):
            for n in l.split("=", 1)[1].split():
                out += {"localhost": ["127.0.0.0/8", "::1/128"], "any": ["0.0.0.0/0", "::/0"]}.get(n, [n])
    return [ipaddress.ip_network(n) for n in out]
inside = lambda ns: any(addr.version == n.version and addr in n for n in ns)
print("yes" if inside(nets("IPAddressAllow")) or not inside(nets("IPAddressDeny")) else "no")
EOF
}
restarts_at_least() { [ "$(prop "$1" NRestarts)" -ge "$2" ]; }
wait_for() { # wait_for SECONDS CMD...: poll until CMD succeeds
    local t=$1
    shift
    for _ in $(seq $((t * 5))); do "$@" && return 0; sleep 0.2; done
    return 1
}

# --- per unit ------------------------------------------------------------------------------
for u in "${UNITS[@]}"; do
    unit_file=$ROOT/systemd-units/$u.service
    busname=$(sed -n 's/^BusName=//p' "$unit_file")
    user=$(sed -n 's/^User=//p' "$unit_file")

    set_mode "$u" ok
    if ct systemctl start "$u.service" 2>"$WORK/err"; then
        ok "$u: started and reported READY"
    else
        bad "$u: did not start: $(cat "$WORK/err")"
        ct journalctl -b -u "$u.service" --no-pager -q | tail -5 | sed 's/^/     /'
        continue
    fi
    expect_probe "$u" user "$user"
    expect_probe "$u" capeff 0000000000000000
    expect_probe "$u" nonewprivs 1
    expect_probe "$u" etc_write "E*"
    expect_probe "$u" usr_write "E*"
    expect_probe "$u" tmp_write yes
    expect_probe "$u" config_read yes
    expect_probe "$u" runtime_write yes
    grep -q '^StateDirectory=' "$unit_file" && expect_probe "$u" state_write yes
    if [ -f "$ROOT/dbus/$busname.conf" ]; then
        expect_probe "$u" bus_own yes
    else
        # Without a policy file the bus's default policy must refuse the name.
        expect_probe "$u" bus_own denied
    fi
    if grep -q '^PrivateNetwork=yes' "$unit_file"; then
        expect_probe "$u" lan "socket:EAFNOSUPPORT"
        expect_probe "$u" public "socket:EAFNOSUPPORT"
    else
        for target in lan:192.168.255.1 public:1.1.1.1 loopback:127.0.0.1; do
            probe_name=${target%%:*}
            if [ "$(ip_allowed "$unit_file" "${target#*:}")" = yes ]; then
                expect_probe "$u" "$probe_name" ECONNREFUSED
            elif [ "$IP_FILTER" = 1 ]; then
                expect_probe "$u" "$probe_name" EPERM
            else
                SKIPPED=$((SKIPPED + 1))
                [ "$VERBOSE" = 1 ] && echo "skip $u: $probe_name refused (no BPF cgroup filters here)"
            fi
        done
    fi
    expect_probe "$u" resolve yes
    expect_probe "$u" ca_bundle yes
    expect_probe "$u" journal_socket yes
    if grep -q '^RootDirectory=' "$unit_file"; then
        expect_probe "$u" var_log hidden
    fi
    if [ "$u" = smartpos-netd ]; then
        expect_probe "$u" links yes
        expect_probe "$u" routes yes
        expect_probe "$u" ping_socket yes
    fi
    if grep -q '^RestrictAddressFamilies=.*AF_NETLINK' "$unit_file"; then
        expect_probe "$u" netlink yes
    else
        expect_probe "$u" netlink EAFNOSUPPORT
    fi
    # shellcheck disable=SC2013 # SupplementaryGroups= is a space-separated list
    for g in $(sed -n 's/^SupplementaryGroups=//p' "$unit_file"); do
        gid=$(awk -F: -v n="$g" '$1 == n { print $3 }' "$R/etc/group")
        expect_probe "$u" groups "*$gid*"
    done
    ct systemctl stop "$u.service"

    # A bad config: exit 78, and no restart loop.
    set_mode "$u" config-error
    ct systemctl start "$u.service" 2>/dev/null
    sleep 3 # longer than RestartSec=2s: a restart would have happened by now
    if [ "$(prop "$u" ExecMainStatus)" = 78 ] && [ "$(prop "$u" NRestarts)" = 0 ] &&
        [ "$(prop "$u" ActiveState)" = failed ]; then
        ok "$u: exit 78 is not restarted"
        # What the daemon printed reaches the journal, from inside the sandbox.
        if ct journalctl -b -u "$u.service" --no-pager -o cat | grep -q 'is bad (stand-in)'; then
            ok "$u: stderr reaches the journal"
        else
            bad "$u: the daemon's stderr is not in the journal"
        fi
    else
        bad "$u: after exit 78: $(prop "$u" ActiveState), status $(prop "$u" ExecMainStatus), $(prop "$u" NRestarts) restarts"
    fi
    ct systemctl reset-failed "$u.service" 2>/dev/null

    # No bus: exit 69 is worth a retry.
    set_mode "$u" no-bus
    ct systemctl start "$u.service" 2>/dev/null
    # Six restarts: more than the default start limit (5 in 10 s) allows. The unit must
    # keep trying (StartLimitIntervalSec=0) while the bus is away.
    restart_sec=$(sed -n 's/^RestartSec=\([0-9]*\)s$/\1/p' "$unit_file")
    wait_for $((6 * ${restart_sec:-1} + 10)) restarts_at_least "$u" 6
    restarts=$(prop "$u" NRestarts)
    exits69=$(ct journalctl -b -u "$u.service" --no-pager -o cat | grep -c 'status=69/UNAVAILABLE')
    result=$(prop "$u" Result)
    ct systemctl stop "$u.service"
    if [ "$restarts" -ge 6 ] && [ "$exits69" -ge 6 ] && [ "$result" != start-limit-hit ]; then
        ok "$u: exit 69 is restarted, past the default start limit"
    else
        bad "$u: after exit 69: $restarts restarts, $exits69 exits with 69, result $result"
    fi
    ct systemctl reset-failed "$u.service" 2>/dev/null

    # A wedged daemon: the watchdog fires and the unit restarts it. The drop-in only
    # shortens the period so the test does not wait the unit's full WatchdogSec=.
    mkdir -p "$R/etc/systemd/system/$u.service.d"
    printf '[Service]\nWatchdogSec=2s\n' >"$R/etc/systemd/system/$u.service.d/50-live-test.conf"
    ct systemctl daemon-reload
    set_mode "$u" hang
    ct systemctl start "$u.service" 2>/dev/null
    if wait_for 20 restarts_at_least "$u" 1 &&
        ct journalctl -b -u "$u.service" --no-pager -o cat | grep -q 'Watchdog timeout'; then
        ok "$u: missed watchdog pings restart the daemon"
    else
        bad "$u: no restart after missed watchdog pings ($(prop "$u" Result), $(prop "$u" ActiveState))"
    fi
    ct systemctl stop "$u.service"
    ct systemctl reset-failed "$u.service" 2>/dev/null
    rm -rf "$R/etc/systemd/system/$u.service.d"
    ct systemctl daemon-reload
done

# The files merchant.example.toml names, made up on the spot, with the ownership the
# packaging prescribes (keys/ 0750 and keys 0640 root:smartpos-payment): the daemon must
# read them through its group from inside its sandbox.
throwaway_acquirer_keys() {
    local k=$R/etc/smartpos/keys c=$R/etc/smartpos/ca gid
    gid=$(awk -F: '$1 == "smartpos-payment" { print $3 }' "$R/etc/group")
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=live-test-ca \
        -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
    for a in alipay wechat qra; do install -m 0644 "$WORK/ca.pem" "$c/$a.pem"; done
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$k/alipay-app.pem" 2>/dev/null
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/alipay.key" 2>/dev/null
    openssl pkey -in "$WORK/alipay.key" -pubout -out "$k/alipay-public.pem" 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=10000100 \
        -keyout "$k/wechat-apiclient-key.pem" -out "$k/wechat-apiclient-cert.pem" 2>/dev/null
    head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$k/wechat-api-key"
    head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$k/qra-key"
    chown "0:$gid" "$k"/*
    chmod 0640 "$k"/*
}

# --- the real daemons, where built (REAL=target/debug) -------------------------------
# The stand-in proves the sandbox; this proves the daemon lives in it: READY, its bus
# name, watchdog pings for longer than WatchdogSec=, and a clean stop.
for u in "${UNITS[@]}"; do
    [ -n "${REAL:-}" ] || break
    if [ ! -x "$REAL/$u" ]; then
        [ "$VERBOSE" = 1 ] && echo "skip $u: no real binary in $REAL"
        continue
    fi
    unit_file=$ROOT/systemd-units/$u.service
    busname=$(sed -n 's/^BusName=//p' "$unit_file")
    watchdog=$(sed -n 's/^WatchdogSec=\([0-9]*\)s$/\1/p' "$unit_file")
    install -m 0755 "$REAL/$u" "$R/usr/bin/$u"
    rm -f "$R/etc/smartpos/$u.toml" # the stand-in's mode file is no config for the real one
    if [ "$u" = smartpos-paymentd ] && [ -f "$ROOT/crates/payment/config/merchant.example.toml" ]; then
        install -D -m 0644 "$ROOT/crates/payment/config/merchant.example.toml" "$R/etc/smartpos/merchant/merchant.toml"
        throwaway_acquirer_keys
    fi
    if ! ct systemctl start "$u.service" 2>"$WORK/err"; then
        bad "$u (real): did not start: $(cat "$WORK/err")"
        ct journalctl -b -u "$u.service" --no-pager -q -o cat | tail -8 | sed 's/^/     /'
        continue
    fi
    ok "$u (real): started and reported READY"
    owner=$(ct busctl --system status "$busname" 2>/dev/null | sed -n 's/^PID=//p')
    if [ -n "$owner" ] && [ "$owner" = "$(prop "$u" MainPID)" ]; then
        ok "$u (real): owns $busname"
    else
        bad "$u (real): $busname is owned by PID '${owner:-nobody}', main PID $(prop "$u" MainPID)"
    fi
    sleep $((${watchdog:-10} + 2))
    if [ "$(prop "$u" ActiveState)" = active ] && [ "$(prop "$u" NRestarts)" = 0 ]; then
        ok "$u (real): still running after WatchdogSec=${watchdog}s"
    else
        bad "$u (real): $(prop "$u" ActiveState)/$(prop "$u" Result) after ${watchdog}s, $(prop "$u" NRestarts) restarts"
        ct journalctl -b -u "$u.service" --no-pager -q -o cat | tail -8 | sed 's/^/     /'
    fi
    ct systemctl stop "$u.service"
    if [ "$(prop "$u" Result)" = success ]; then
        ok "$u (real): stops cleanly"
    else
        bad "$u (real): stop ended with $(prop "$u" Result), status $(prop "$u" ExecMainStatus)"
    fi
done

# --- the bus policy, end to end (REAL= with posctl and paymentd) ------------------------
# A cashier in smartpos-vendor may list sales; a passer-by may read who is running but
# not touch the payment service: the installed policy and the daemon's own check agree.
if [ -n "${REAL:-}" ] && [ -x "$REAL/posctl" ] && [ -x "$REAL/smartpos-paymentd" ] &&
    printf '%s\n' "${UNITS[@]}" | grep -qx smartpos-paymentd; then
    install -m 0755 "$REAL/posctl" "$R/usr/bin/posctl"
    mkdir -p "$R/etc/sysusers.d"
    printf 'u cashier - "live test cashier"\nm cashier smartpos-vendor\nu passerby - "live test outsider"\n' \
        >"$R/etc/sysusers.d/live-test.conf"
    systemd-sysusers --root="$R" >/dev/null 2>&1
    as() { local who=$1; shift; ct setpriv --reuid="$who" --regid="$who" --init-groups "$@"; }
    if ct systemctl start smartpos-paymentd.service 2>/dev/null; then
        if as cashier posctl tx list >"$WORK/out" 2>&1; then
            ok "posctl tx list as a cashier (smartpos-vendor)"
        else
            bad "posctl tx list as a cashier failed: $(head -3 "$WORK/out")"
        fi
        if as passerby posctl tx list >"$WORK/out" 2>&1; then
            bad "posctl tx list as an outsider succeeded: $(head -3 "$WORK/out")"
        elif grep -q 'Rejected send message' "$WORK/out"; then
            ok "posctl tx list as an outsider is refused by the bus policy"
        elif grep -q -i 'not allowed\|AccessDenied' "$WORK/out"; then
            ok "posctl tx list as an outsider is refused by the daemon"
        else
            bad "posctl tx list as an outsider failed, but not as refused: $(head -3 "$WORK/out")"
        fi
        if as passerby posctl status >"$WORK/out" 2>&1; then
            ok "posctl status as an outsider (read-only)"
        else
            bad "posctl status as an outsider failed: $(head -3 "$WORK/out")"
        fi
        ct systemctl stop smartpos-paymentd.service
    else
        bad "smartpos-paymentd (real) did not start for the policy check"
    fi
fi

ct systemctl poweroff >/dev/null 2>&1
wait_for 20 bash -c "! kill -0 $NSPAWN_PID 2>/dev/null"
echo "live-test-units: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" = 0 ]
