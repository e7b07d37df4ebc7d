#!/usr/bin/env bash
# Check everything that ships besides the binaries: systemd units, sysusers/tmpfiles,
# udev rules, the D-Bus policy install, the install list and the Yocto layer.
#
#   tools/check-packaging.sh          # quiet; prints one summary line, exit 1 on failure
#   VERBOSE=1 tools/check-packaging.sh
#   LIVE=1 tools/check-packaging.sh   # also boot the units under systemd and the udev
#                                     # rules in a VM (root, ~3 min)
#
# Installs what it needs first (Debian packages if a tool is missing, oelint-adv in
# .venv/oelint). Every check runs against a throwaway root made by
# tools/install-files.sh, so what is checked is what a package would contain.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/check-packaging.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

PASSED=0
FAILED=0
SKIPPED=0
VERBOSE=${VERBOSE:-0}

# Exposure ceilings for `systemd-analyze security --offline=yes` (systemd 252 scale,
# 0.0-10.0; below 1.0 is "SAFE"). Every unit must be SAFE unless listed here with a
# reason; a ceiling only goes down. docs/PACKAGING.md lists what each score is made of.
declare -A MAX_EXPOSURE=()
SAFE_CEILING=0.9

say() { [ "$VERBOSE" = 1 ] && echo "$@"; return 0; }

# run NAME CMD...: a check passes when CMD exits 0 *and* prints nothing on stderr
# (systemd-analyze verify only warns about a misspelt setting, with exit code 0).
# run_rc NAME CMD...: for tools that report progress on stderr; the exit code decides.
run() {
    _run 1 "$@"
}
run_rc() {
    _run 0 "$@"
}
_run() {
    local strict=$1 name=$2
    shift 2
    local out=$WORK/out.$PASSED.$FAILED err=$WORK/err.$PASSED.$FAILED
    if "$@" >"$out" 2>"$err" && { [ "$strict" = 0 ] || [ ! -s "$err" ]; }; then
        PASSED=$((PASSED + 1))
        say "ok   $name"
    else
        FAILED=$((FAILED + 1))
        echo "FAIL $name"
        sed 's/^/     /' "$out" "$err" | head -40
    fi
}

skip() {
    SKIPPED=$((SKIPPED + 1))
    say "skip $1"
}

# --- tools -------------------------------------------------------------------------
need_apt=()
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
command -v systemd-sysusers >/dev/null || need_apt+=(systemd)
command -v dbus-daemon >/dev/null || need_apt+=(dbus)
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
command -v shellcheck >/dev/null || need_apt+=(shellcheck)
[ "$(id -u)" != 0 ] || command -v dbus-test-tool >/dev/null || need_apt+=(dbus-tests)
if [ ${#need_apt[@]} -gt 0 ]; then
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"; } \
        >"$WORK/apt.log" 2>&1; then
        echo "check-packaging: cannot install ${need_apt[*]}:"
        tail -5 "$WORK/apt.log"
        exit 1
    fi
fi

OELINT=$ROOT/.venv/oelint/bin/oelint-adv
OELINT_VERSION=9.11.2
if ! "$OELINT" --version 2>/dev/null | grep -qx "oelint-adv $OELINT_VERSION"; then
    if ! { python3 -m venv "$ROOT/.venv/oelint" &&
        "$ROOT/.venv/oelint/bin/pip" install -q "oelint-adv==$OELINT_VERSION"; } >"$WORK/pip.log" 2>&1; then
        echo "check-packaging: cannot install oelint-adv into .venv/oelint:"
        tail -5 "$WORK/pip.log"
        exit 1
    fi
fi

# --- the staging root ----------------------------------------------------------------
# Stub executables stand in for the daemons: verify checks that ExecStart= exists.
DEST=$WORK/root
mkdir -p "$WORK/bin"
UNITS=()
for f in systemd-units/*.service; do
    UNITS+=("$(basename "$f" .service)")
done
# The data partition's layout service makes its directories with mkdir.
mkdir -p "$DEST/usr/bin"
printf '#!/bin/sh\nexit 0\n' >"$DEST/usr/bin/mkdir"
chmod 0755 "$DEST/usr/bin/mkdir"
for b in $(tools/install-files.sh --binaries); do
    printf '#!/bin/sh\nexit 0\n' >"$WORK/bin/$b"
    chmod 0755 "$WORK/bin/$b"
done
run "install-files.sh stages every shipped file" tools/install-files.sh "$DEST" /usr "$WORK/bin"

check_manifest() {
    local missing=0 mode src dest list
    list=$(tools/install-files.sh --list /usr) || return 1
    while read -r mode src dest; do
        case "$src" in /*) continue ;; esac
        [ -f "$DEST$dest" ] || { echo "not installed: $dest"; missing=1; }
    done <<<"$list"
    for f in packaging/sysusers.d/* packaging/tmpfiles.d/* packaging/udev/* packaging/sysctl.d/* \
        packaging/polkit/* packaging/logind.conf.d/* packaging/getty/* packaging/data/*.* \
        packaging/data/*/* systemd-units/* dbus/*.conf; do
        [ -e "$f" ] || continue
        case "$list" in
            *" $f "*) ;;
            *) echo "not in the install list: $f"; missing=1 ;;
        esac
    done
    return $missing
}
run "install list covers packaging/ and systemd-units/" check_manifest

# --- systemd units -------------------------------------------------------------------
# verify resolves dependencies (dbus.service, network-online.target) inside --root:
# give it the host's stock units.
mkdir -p "$DEST/usr/lib/systemd/system"
cp -an /lib/systemd/system/. "$DEST/usr/lib/systemd/system/" 2>/dev/null
for u in "${UNITS[@]}"; do
    run "$u: systemd-analyze verify" systemd-analyze verify --man=no --root="$DEST" "$u.service"
done
for f in packaging/data/*.* packaging/data/*/*; do
    u=${f##*/}
    run "$u (data partition): systemd-analyze verify" systemd-analyze verify --man=no --root="$DEST" "$u"
done

exposure_ok() {
    local unit=$1 ceiling=$2 line score
    line=$(cd "$WORK" && systemd-analyze security --offline=yes "$ROOT/systemd-units/$unit.service" 2>&1 | tail -1)
    score=$(sed -n 's/.*exposure level for .*: \([0-9.]*\) .*/\1/p' <<<"$line")
    [ -n "$score" ] || { echo "no score in: $line"; return 1; }
    echo "$unit ${line##*: }" >>"$WORK/exposure"
    awk -v s="$score" -v c="$ceiling" 'BEGIN { exit !(s <= c) }' ||
        { echo "$unit exposure $score is above $ceiling"; return 1; }
}
for u in "${UNITS[@]}"; do
    ceiling=${MAX_EXPOSURE[$u]:-$SAFE_CEILING}
    run "$u: systemd-analyze security <= $ceiling" exposure_ok "$u" "$ceiling"
done

unit_contract() {
    local f=systemd-units/$1.service bad=0 k
    for k in '^Type=notify$' '^NotifyAccess=main$' '^WatchdogSec=' '^Restart=on-failure$' \
        '^BusName=org\.smartpos\.' '^RestartPreventExitStatus=78$' '^User=smartpos-' \
        '^ExecStart=/usr/bin/'"$1"'$' '^WantedBy=multi-user.target$' '^MemoryMax=[0-9]+[KMG]$' \
        '^TasksMax=[0-9]+$'; do
        grep -Eq "$k" "$f" || { echo "$f: no line matching $k"; bad=1; }
    done
    # A target named in After= but pulled in by nobody orders against nothing: a passive
    # target (time-sync, network-online, nss-lookup is pulled in by the resolver) needs Wants=.
    for k in time-sync.target network-online.target; do
        if grep -Eq "^After=.*\<$k\>" "$f" && ! grep -Eq "^Wants=.*\<$k\>" "$f"; then
            echo "$f: After=$k without Wants=$k (a passive target nothing else pulls in)"
            bad=1
        fi
    done
    return $bad
}
for u in "${UNITS[@]}"; do
    run "$u: notify, watchdog, restart policy, bus name" unit_contract "$u"
done

# Keep each IP allow list equal to what its unit's comment promises:
#   public   (paymentd, otad): unicast minus private, CGNAT, loopback, link-local,
#            multicast and reserved; IPv6 global unicast only
#   unicast  (netd): all unicast, LAN included; IPv6 global, ULA and link-local
declare -A IP_PROFILE=([smartpos-paymentd]=public [smartpos-otad]=public [smartpos-netd]=unicast)
allow_list_ok() {
    python3 - "$1" "$2" <<'EOF'
import ipaddress, sys
unit = open(sys.argv[1]).read().splitlines()
profile = sys.argv[2]
got = []
for l in unit:
    if l.startswith("IPAddressAllow="):
        got += [n for n in l.split("=", 1)[1].split() if n != "localhost"]
v4 = sorted(n for n in map(ipaddress.ip_network, got) if n.version == 4)
v6 = sorted(n for n in map(ipaddress.ip_network, got) if n.version == 6)
if profile == "public":
    excluded = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
                "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4"]
    want6 = ["2000::/3"]
elif profile == "unicast":
    excluded = ["0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4"]
    want6 = ["2000::/3", "fc00::/7", "fe80::/10"]
else:
    sys.exit(f"{sys.argv[1]}: has an IP allow list but no profile in check-packaging.sh")
want = [ipaddress.ip_network("0.0.0.0/0")]
for x in map(ipaddress.ip_network, excluded):
    nxt = []
    for n in want:
        if x.subnet_of(n):
            nxt += list(n.address_exclude(x))
        elif not n.subnet_of(x):
            nxt.append(n)
    want = nxt
want = sorted(ipaddress.collapse_addresses(want))
if v4 != want:
    sys.exit(f"{sys.argv[1]}: IPv4 allow list differs from the {profile} ranges: "
             f"extra {sorted(set(v4) - set(want))}, missing {sorted(set(want) - set(v4))}")
if v6 != sorted(map(ipaddress.ip_network, want6)):
    sys.exit(f"{sys.argv[1]}: IPv6 allow list should be exactly {want6}, got {v6}")
if "IPAddressDeny=any" not in unit:
    sys.exit(f"{sys.argv[1]}: IPAddressDeny=any missing: the allow list would restrict nothing")
EOF
}
for u in "${UNITS[@]}"; do
    if grep -q '^IPAddressAllow=.*/' "systemd-units/$u.service"; then
        run "$u: IP allow list is exactly the ${IP_PROFILE[$u]:-?} ranges" \
            allow_list_ok "systemd-units/$u.service" "${IP_PROFILE[$u]:-none}"
    fi
done

# --- sysusers / tmpfiles ---------------------------------------------------------------
mkdir -p "$DEST/etc"
run_rc "systemd-sysusers --root creates the accounts" systemd-sysusers --root="$DEST"

accounts_ok() {
    local bad=0 u g
    for u in "${UNITS[@]}"; do
        for k in User Group; do
            g=$(sed -n "s/^$k=//p" "systemd-units/$u.service")
            if [ "$k" = User ]; then
                grep -q "^$g:" "$DEST/etc/passwd" || { echo "$u: $k=$g not created by sysusers.d"; bad=1; }
            else
                grep -q "^$g:" "$DEST/etc/group" || { echo "$u: $k=$g not created by sysusers.d"; bad=1; }
            fi
        done
        # shellcheck disable=SC2013 # SupplementaryGroups= is a space-separated list
        for g in $(sed -n 's/^SupplementaryGroups=//p' "systemd-units/$u.service"); do
            local user
            user=$(sed -n 's/^User=//p' "systemd-units/$u.service")
            grep -Eq "^$g:[^:]*:[0-9]+:(.*,)?$user(,|$)" "$DEST/etc/group" ||
                { echo "$u: $user is not a member of $g"; bad=1; }
        done
    done
    for g in smartpos-vendor smartpos-tech; do
        grep -q "^$g:" "$DEST/etc/group" || { echo "group $g (D-Bus policy) missing"; bad=1; }
    done
    # System accounts, no login shell.
    awk -F: '$1 ~ /^smartpos-/ && ($3 >= 1000 || $7 !~ /nologin/) { print "not a system account: " $0; bad = 1 }
             END { exit bad }' "$DEST/etc/passwd" || bad=1
    return $bad
}
run "every unit's User/Group/SupplementaryGroups exists" accounts_ok

run "systemd-tmpfiles --root --create (every daemon)" systemd-tmpfiles --root="$DEST" --create \
    "$DEST"/usr/lib/tmpfiles.d/smartpos-*.conf

tmpfiles_ok() {
    local bad=0 path mode owner group got want
    while read -r path mode owner group; do
        # Numeric ids: stat would resolve names through the host's passwd, not the root's.
        want="${mode#0} $(id_in passwd "$owner") $(id_in group "$group")"
        got=$(stat -c '%a %u %g' "$DEST$path" 2>/dev/null || echo missing)
        [ "$got" = "$want" ] || { echo "$path: got '$got', want '$want' (mode uid gid)"; bad=1; }
    done < <(awk '$1 == "d" { print $2, $3, $4, $5 }' packaging/tmpfiles.d/*.conf)
    return $bad
}
id_in() {
    if [ "$2" = root ]; then echo 0; return; fi
    awk -F: -v n="$2" '$1 == n { print $3 }' "$DEST/etc/$1"
}
run "tmpfiles made the state and config directories with owner and mode" tmpfiles_ok

# An image with only some daemons (the recipe's default SMARTPOS_DAEMONS, and each daemon on
# its own): what is installed for it must set up on its own. systemd-tmpfiles fails on a
# line naming an account that no installed sysusers.d file creates.
partial_root_ok() {
    local r=$WORK/partial-${1// /-}
    DAEMONS=$1 tools/install-files.sh "$r" /usr - || return 1
    mkdir -p "$r/etc"
    local f
    for f in "$r"/usr/lib/systemd/system/smartpos-*.service; do
        [ -e "systemd-units/${f##*/}" ] || continue
        case " $1 " in *" $(basename "$f" .service | sed 's/^smartpos-//') "*) ;;
            *) echo "$f installed, but its daemon is not in DAEMONS=\"$1\""; return 1 ;; esac
    done
    systemd-sysusers --root="$r" >/dev/null || return 1
    systemd-tmpfiles --root="$r" --create "$r"/usr/lib/tmpfiles.d/smartpos-*.conf || return 1
}
DEFAULT_DAEMONS=$(sed -n 's/^SMARTPOS_DAEMONS ?= "\(.*\)"$/\1/p' yocto-layer/recipes-smartpos/smartpos/smartpos_git.bb)
[ -n "$DEFAULT_DAEMONS" ] || { echo "FAIL no SMARTPOS_DAEMONS ?= in smartpos_git.bb"; FAILED=$((FAILED + 1)); }
run_rc "sysusers + tmpfiles --root on an image with the default daemons ($DEFAULT_DAEMONS)" \
    partial_root_ok "$DEFAULT_DAEMONS"
for u in "${UNITS[@]}"; do
    run_rc "sysusers + tmpfiles --root on an image with ${u#smartpos-} alone" partial_root_ok "${u#smartpos-}"
done

# --- udev ------------------------------------------------------------------------------
run "udev rules parse; groups exist" tools/lint-udev-rules.py \
    --sysusers packaging/sysusers.d/smartpos-common.conf --sysusers packaging/sysusers.d/smartpos-scannerd.conf \
    packaging/udev/*.rules
if command -v udevadm >/dev/null && udevadm verify --help >/dev/null 2>&1; then
    run "udevadm verify" udevadm verify --resolve-names=never packaging/udev/*.rules
else
    skip "udevadm verify (needs systemd >= 254)"
fi

# --- D-Bus policy (written by the bus owner; checked here against the units) ----------
policy_ok() {
    local unit=$1 name user f
    name=$(sed -n 's/^BusName=//p' "systemd-units/$unit.service")
    user=$(sed -n 's/^User=//p' "systemd-units/$unit.service")
    f=dbus/$name.conf
    python3 - "$f" "$name" "$user" <<'EOF'
import sys, xml.etree.ElementTree as ET
f, name, user = sys.argv[1:]
root = ET.parse(f).getroot()
if root.tag != "busconfig":
    sys.exit(f"{f}: root element is <{root.tag}>, not <busconfig>")
owners = [p.get("user") for p in root.iter("policy") for a in p.iter("allow") if a.get("own") == name]
if user not in owners:
    sys.exit(f"{f}: user {user} (User= of the unit) may not own {name}; owners: {owners}")
EOF
    # Every user and group the policy names must exist on the target.
    python3 - "$f" "$DEST/etc/passwd" "$DEST/etc/group" <<'EOF'
import sys, xml.etree.ElementTree as ET
f, passwd, group = sys.argv[1:]
users = {l.split(":")[0] for l in open(passwd)} | {"root"}
groups = {l.split(":")[0] for l in open(group)} | {"root"}
policies = list(ET.parse(f).getroot().iter("policy"))
bad = [f"user {p.get('user')}" for p in policies if p.get("user") not in (None, "*") and p.get("user") not in users]
bad += [f"group {p.get('group')}" for p in policies if p.get("group") not in (None, "*") and p.get("group") not in groups]
if bad:
    sys.exit(f"{f}: names accounts that packaging/sysusers.d does not create: {', '.join(bad)}")
EOF
}
dbus_loads() {
    # A private dbus-daemon refuses to start on a malformed policy file.
    cat >"$WORK/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$WORK/bus.socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><deny own="*"/><deny send_type="method_call"/></policy>
  <includedir>$DEST/usr/share/dbus-1/system.d</includedir>
</busconfig>
EOF
    local pid
    dbus-daemon --config-file="$WORK/bus.conf" --fork --print-pid >"$WORK/bus.pid" 2>"$WORK/bus.err" || {
        cat "$WORK/bus.err"
        return 1
    }
    pid=$(cat "$WORK/bus.pid")
    kill "$pid"
    # Unknown users in a policy are normal here (they exist only on the target).
    grep -v 'Unknown \(username\|group\)' "$WORK/bus.err" >&2 || true
}
have_policy=0
for u in "${UNITS[@]}"; do
    name=$(sed -n 's/^BusName=//p' "systemd-units/$u.service")
    if [ -f "dbus/$name.conf" ]; then
        have_policy=1
        run "$u: dbus/$name.conf lets User= own $name; its accounts exist" policy_ok "$u"
    else
        skip "$u: dbus/$name.conf not written yet"
    fi
done
if [ $have_policy = 1 ]; then
    run "dbus-daemon loads the installed policies" dbus_loads
fi

# --- Yocto layer -----------------------------------------------------------------------
SRCREV=$(sed -n 's/^SRCREV = "\([0-9a-f]*\)"/\1/p' yocto-layer/recipes-smartpos/smartpos/smartpos_git.bb)
if git cat-file -e "$SRCREV^{commit}" 2>/dev/null ||
    [ "$(git rev-parse --is-shallow-repository 2>/dev/null)" != true ]; then
    run "smartpos-crates.inc matches Cargo.lock at the recipe's SRCREV" python3 tools/gen-crates-inc.py --check
else
    skip "smartpos-crates.inc (SRCREV ${SRCREV:0:12} is not in this shallow clone)"
fi

mapfile -t RECIPES < <(find yocto-layer -name '*.bb' -o -name '*.bbappend' | sort)
# .oelint.cfg in the repository root holds release, suppressions and constants.
run "oelint-adv on yocto-layer (${#RECIPES[@]} recipes)" "$OELINT" --quiet -- "${RECIPES[@]}"

srcrev_ok() {
    local rev
    rev=$(sed -n 's/^SRCREV = "\([0-9a-f]*\)"/\1/p' yocto-layer/recipes-smartpos/smartpos/smartpos_git.bb)
    [ -n "$rev" ] || { echo "no SRCREV in smartpos_git.bb"; return 1; }
    # A shallow CI clone may not have it; only a full clone can say it is wrong.
    if [ "$(git rev-parse --is-shallow-repository 2>/dev/null)" = true ]; then return 0; fi
    git cat-file -e "$rev^{commit}" 2>/dev/null || { echo "SRCREV $rev is not a commit of this repository"; return 1; }
}
run "recipe SRCREV is a commit of this repository" srcrev_ok

# The image, the bundle, RAUC's configuration, the .wks and the units must agree.
image_ok() {
    python3 - <<'PYEOF'
import configparser, re, sys
L = "yocto-layer/"
def var(path, name, flag=None):
    text = open(L + path).read()
    key = re.escape(name) + (r"\[" + re.escape(flag) + r"\]" if flag else "")
    m = re.search(r"^" + key + r'\s*\??=\s*"([^"]*)"', text, re.M)
    return m.group(1) if m else None
bad = []
img, bundle = "recipes-core/images/smartpos-image.bb", "dynamic-layers/rauc/recipes-core/bundles/smartpos-bundle_1.0.bb"
conf = configparser.ConfigParser()
conf.read(L + "dynamic-layers/rauc/recipes-core/rauc/files/system.conf")
slot_fstype = var(bundle, "RAUC_SLOT_rootfs", "fstype")
fstypes = (var(img, "IMAGE_FSTYPES") or "").split()
if slot_fstype not in fstypes:
    bad.append(f"bundle slot fstype {slot_fstype} not in the image's IMAGE_FSTYPES {fstypes}")
slots = [s for s in conf.sections() if s.startswith("slot.rootfs.")]
if len(slots) != 2:
    bad.append(f"system.conf: want 2 rootfs slots (A/B), got {slots}")
for s in slots:
    if conf[s].get("type") != slot_fstype:
        bad.append(f"system.conf [{s}] type={conf[s].get('type')}, the bundle carries {slot_fstype}")
if conf["system"].get("compatible") != var(bundle, "RAUC_BUNDLE_COMPATIBLE"):
    bad.append("system.conf compatible= differs from the bundle's RAUC_BUNDLE_COMPATIBLE")
if not conf["system"].get("data-directory", "").startswith("/data/"):
    bad.append("system.conf: RAUC's data-directory must be on the data partition (/data)")
if "plain" in conf["system"].get("bundle-formats", "plain").replace("-plain", ""):
    bad.append("system.conf: bundle-formats must refuse plain bundles (-plain)")
wks = open(L + "recipes-core/images/" + var(img, "WKS_FILE")).read()
names = re.findall(r"--part-name[= ](\S+)", wks)
for s in slots:
    dev = conf[s]["device"]
    if not dev.startswith("/dev/disk/by-partlabel/") or dev.rsplit("/", 1)[1] not in names:
        bad.append(f"system.conf [{s}] device={dev} is not a partition of the .wks ({names})")
data = open("packaging/data/data.mount").read()
label = re.search(r"^What=/dev/disk/by-label/(\S+)", data, re.M).group(1)
if not re.search(r"--label " + re.escape(label) + r"\b", wks):
    bad.append(f"data.mount mounts label {label}, which the .wks does not make")
if not re.search(r'^IMAGE_FEATURES\s*\+?=\s*"[^"]*read-only-rootfs', open(L + img).read(), re.M):
    bad.append("the image is not read-only-rootfs")
inst = var(img, "IMAGE_INSTALL") or ""
for p in ("smartpos", "smartpos-posctl", "rauc"):
    if p not in inst.split():
        bad.append(f"{p} is not in the image's IMAGE_INSTALL")
body = open(L + img).read()
for p in ("packagegroup-base-extended", "ssh-server", "dropbear", "openssh", "CORE_IMAGE_BASE_INSTALL"):
    if re.search(r"^[^#]*" + re.escape(p), body, re.M):
        bad.append(f"the image names {p}: not a minimal image")
if not re.search(r'^IMAGE_INSTALL\s*=', body, re.M):
    bad.append("IMAGE_INSTALL must be set (=), or core-image adds packagegroup-base-extended")
sys.exit("\n".join(bad) or None)
PYEOF
}
run "image, bundle, RAUC system.conf, .wks and data.mount agree; image minimal, read-only" image_ok

# Unit hardening whose kernel or distro prerequisites nothing else enforces.
prereqs_ok() {
    python3 - <<'PYEOF'
import glob, re, sys
L = "yocto-layer/"
frag = set(re.findall(r"^(CONFIG_\w+)=[ym]", open(L + "recipes-kernel/linux/files/smartpos.cfg").read(), re.M))
inc = open(L + "conf/distro/include/smartpos.inc").read()
feats = set(" ".join(re.findall(r'^DISTRO_FEATURES:append\s*=\s*"([^"]*)"', inc, re.M)).split())
def req(path):
    m = re.search(r'^REQUIRED_DISTRO_FEATURES\s*=\s*"([^"]*)"', open(L + path).read(), re.M)
    return set(m.group(1).split()) if m else set()
recipe, image = req("recipes-smartpos/smartpos/smartpos_git.bb"), req("recipes-core/images/smartpos-image.bb")
bad = []
units = "".join(open(f).read() for f in glob.glob("systemd-units/*.service"))
needs = [("SystemCallFilter=", ["CONFIG_SECCOMP", "CONFIG_SECCOMP_FILTER"], "seccomp"),
         ("IPAddressDeny=", ["CONFIG_CGROUP_BPF", "CONFIG_BPF_SYSCALL"], None),
         ("PrivateUsers=yes", ["CONFIG_USER_NS"], None),
         ("MemoryMax=", ["CONFIG_MEMCG"], None),
         ("TasksMax=", ["CONFIG_CGROUP_PIDS"], None),
         ("DeviceAllow=char-video4linux", ["CONFIG_VIDEO_DEV", "CONFIG_USB_VIDEO_CLASS"], None),
         ("DeviceAllow=char-input", ["CONFIG_INPUT_EVDEV", "CONFIG_USB_HID"], None),
         ("Type=notify", [], "systemd")]
for setting, configs, feature in needs:
    if setting not in units:
        continue
    for c in configs:
        if c not in frag:
            bad.append(f"units use {setting} but the kernel fragment lacks {c}")
    if feature and not (feature in feats and feature in recipe):
        bad.append(f"units use {setting}: distro feature {feature} must be set by smartpos.inc and required by the recipe")
for c in ["CONFIG_SQUASHFS", "CONFIG_BLK_DEV_LOOP", "CONFIG_DM_VERITY", "CONFIG_EXT4_FS"]:
    if c not in frag:
        bad.append(f"RAUC verity bundles / ext4 slots need {c} in the kernel fragment")
for f in ("systemd", "usrmerge", "seccomp", "rauc"):
    if f not in feats:
        bad.append(f"smartpos.inc does not set distro feature {f}")
    if f not in image:
        bad.append(f"the image's REQUIRED_DISTRO_FEATURES lacks {f}")
if "smartpos.cfg" not in open(L + "recipes-kernel/linux/linux-yocto_%.bbappend").read():
    bad.append("linux-yocto_%.bbappend does not add smartpos.cfg")
sys.exit("\n".join(bad) or None)
PYEOF
}
run "kernel fragment and distro features cover what the units use (seccomp, cgroup BPF, userns, …)" prereqs_ok

# RAUC's bus policy (our replacement of de.pengutronix.rauc.conf): under a private system
# bus with the stock default policy, an ordinary user cannot call Install, root and the
# update daemon's account can, and anyone may read the installer's properties.
RAUC_POLICY=yocto-layer/dynamic-layers/rauc/recipes-core/rauc/files/de.pengutronix.rauc.conf
rauc_policy_ok() {
    local d=$WORK/rauc-bus bus pid owner rc=0 who out
    mkdir -p "$d/system.d"
    chmod 0755 "$WORK" "$d"
    cp "$RAUC_POLICY" "$d/system.d/"
    # The stock system bus (Debian's /usr/share/dbus-1/system.conf) with only this policy.
    sed -e "s|<listen>.*</listen>|<listen>unix:path=$d/socket</listen>|" \
        -e 's|<includedir>.*</includedir>||; s|<include [^>]*>.*</include>||; s|<pidfile>.*</pidfile>||' \
        -e 's|<user>.*</user>||' -e "s|</busconfig>|<includedir>$d/system.d</includedir></busconfig>|" \
        /usr/share/dbus-1/system.conf >"$d/bus.conf"
    pid=$(dbus-daemon --config-file="$d/bus.conf" --fork --print-pid --nopidfile 2>"$d/err") ||
        { cat "$d/err"; return 1; }
    bus=unix:path=$d/socket
    DBUS_SYSTEM_BUS_ADDRESS=$bus dbus-test-tool echo --system --name=de.pengutronix.rauc >/dev/null 2>&1 &
    owner=$!
    sleep 0.5
    # call USER METHOD: prints "allowed" or the D-Bus error name.
    call() {
        out=$(setpriv --reuid="$1" --regid="$(id -g "$1")" --clear-groups env DBUS_SYSTEM_BUS_ADDRESS="$bus" \
            dbus-send --system --print-reply --reply-timeout=2000 --dest=de.pengutronix.rauc / "$2" "${@:3}" 2>&1)
        if grep -q '^Error' <<<"$out"; then sed -n 's/^Error \([^:]*\).*/\1/p' <<<"$out"; else echo allowed; fi
    }
    for who in nobody smartpos-update root; do
        for m in de.pengutronix.rauc.Installer.Install de.pengutronix.rauc.Installer.InstallBundle \
            de.pengutronix.rauc.Installer.Mark org.freedesktop.DBus.Properties.Get; do
            got=$(call "$who" "$m" string:x)
            want=allowed
            [ "$who" = nobody ] && [ "${m##*.}" != Get ] && want=org.freedesktop.DBus.Error.AccessDenied
            [ "$got" = "$want" ] || { echo "$who calling $m: $got, want $want"; rc=1; }
        done
    done
    kill "$owner" "$pid" 2>/dev/null
    return $rc
}
if [ "$(id -u)" = 0 ] && command -v dbus-test-tool >/dev/null && id smartpos-update >/dev/null 2>&1; then
    run "RAUC bus policy: only root and smartpos-update may install; anyone may read" rauc_policy_ok
elif [ "$(id -u)" = 0 ] && command -v dbus-test-tool >/dev/null; then
    # The policy names smartpos-update; dbus-daemon ignores rules for users it cannot resolve.
    useradd --system --no-create-home --shell /usr/sbin/nologin smartpos-update 2>/dev/null
    run "RAUC bus policy: only root and smartpos-update may install; anyone may read" rauc_policy_ok
else
    skip "RAUC bus policy (needs root and dbus-test-tool from dbus-tests)"
fi

# --- our own scripts ---------------------------------------------------------------------
run "shellcheck on the packaging scripts" shellcheck -x tools/check-packaging.sh tools/install-files.sh \
    tools/live-test-units.sh tools/vm-test-udev.sh tools/yocto-check.sh tools/system-test.sh \
    tests/system/stack.sh tests/system/provision.sh tools/check-citations.sh tools/fetch-qr-data.sh

# --- under a real systemd, and real devices (opt-in: root, about three minutes) ------------
if [ "${LIVE:-0}" = 1 ]; then
    # The daemons already built run in their units too (REAL=; absent ones are skipped).
    run_rc "units under a real systemd (tools/live-test-units.sh)" \
        env REAL="${REAL:-$ROOT/target/debug}" tools/live-test-units.sh
    run_rc "udev rules on real devices in a VM (tools/vm-test-udev.sh)" tools/vm-test-udev.sh
else
    skip "units under a real systemd (LIVE=1 runs tools/live-test-units.sh)"
    skip "udev rules on real devices (LIVE=1 runs tools/vm-test-udev.sh)"
fi

if [ "$VERBOSE" = 1 ] && [ -f "$WORK/exposure" ]; then
    sed 's/^/     /' "$WORK/exposure"
fi
echo "check-packaging: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" = 0 ]
