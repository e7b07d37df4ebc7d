#!/usr/bin/env bash
# Our layer against real Yocto metadata: BitBake 2.18, oe-core wrynose and meta-rauc wrynose
# parse every recipe (`bitbake -p`) and resolve the task graph of the image and the bundle
# (`bitbake -g smartpos-image smartpos-bundle`). Zero errors and zero warnings, or it fails.
#
#   tools/yocto-check.sh             # root (installs packages, makes a build user); ~3 min
#   YOCTO_SNAPSHOTS=DIR tools/yocto-check.sh   # default ../shared/yocto (or ../../ from a worktree)
#   YOCTO_WORK=DIR                            # default /var/tmp/smartpos-yocto
#
# Nothing is fetched or built: no machine here can reach the source mirrors. What this does
# and does not prove is in docs/PACKAGING.md ("Checked against real Yocto metadata").
#
# The snapshots (bitbake-2.18.tar.zst, openembedded-core-wrynose.tar.zst,
# meta-rauc-wrynose.tar.zst) are unpacked OUTSIDE the checkout, under $YOCTO_WORK
# (default /var/tmp/smartpos-yocto), once per snapshot file (a stamp holds its checksum). The
# build directory there is reused, so BitBake's parse cache makes a second run faster; our
# layer is copied in fresh on every run, so the cache never hides a change to it.
# BitBake refuses to run as root: it runs as the user $YOCTO_USER (created if missing).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The snapshots sit next to the checkout (../shared/yocto); a git worktree is one level
# deeper (wt/NAME), so look there too.
SNAP=${YOCTO_SNAPSHOTS:-}
if [ -z "$SNAP" ]; then
    for d in "$ROOT/../shared/yocto" "$ROOT/../../shared/yocto"; do
        [ -f "$d/bitbake-2.18.tar.zst" ] && { SNAP=$(cd "$d" && pwd); break; }
    done
    SNAP=${SNAP:-$ROOT/../shared/yocto}
fi
WORKDIR=${YOCTO_WORK:-/var/tmp/smartpos-yocto}
BBUSER=${YOCTO_USER:-smartpos-bitbake}
T0=$(date +%s)
say() { echo "yocto-check: $*"; }

# snapshot file:the directory it unpacks into
SNAPSHOTS="bitbake-2.18:bitbake openembedded-core-wrynose:openembedded-core meta-rauc-wrynose:meta-rauc"
for f in $SNAPSHOTS; do
    f=${f%%:*}
    [ -f "$SNAP/$f.tar.zst" ] || { say "no $SNAP/$f.tar.zst (set YOCTO_SNAPSHOTS)"; exit 1; }
done
if [ "$(id -u)" != 0 ]; then
    say "needs root (apt-get, useradd); bitbake itself runs as $BBUSER"
    exit 77
fi

# --- host tools, locale, user ----------------------------------------------------------------
missing=()
for t in chrpath:chrpath cpio:cpio diffstat:diffstat gawk:gawk zstd:zstd python3:python3 \
    locale-gen:locales file:file wget:wget git:git patch:patch; do
    command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"; } >/dev/null 2>&1 || { say "cannot install ${missing[*]} with apt-get"; exit 1; }
fi
if ! locale -a 2>/dev/null | grep -qix 'en_US.utf8'; then
    sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' /etc/locale.gen
    grep -q '^en_US.UTF-8 UTF-8' /etc/locale.gen || echo 'en_US.UTF-8 UTF-8' >>/etc/locale.gen
    locale-gen >/dev/null 2>&1 || { say "locale-gen en_US.UTF-8 failed"; exit 1; }
fi
if ! id "$BBUSER" >/dev/null 2>&1; then
    useradd --system --create-home --home-dir "$WORKDIR/home" --shell /bin/sh "$BBUSER" ||
        { say "cannot create user $BBUSER"; exit 1; }
fi

# --- snapshots, unpacked once ------------------------------------------------------------------
mkdir -p "$WORKDIR/src"
for f in $SNAPSHOTS; do
    dir=${f#*:}
    f=${f%%:*}
    sum=$(sha256sum "$SNAP/$f.tar.zst" | cut -d' ' -f1)
    if [ "$(cat "$WORKDIR/src/$f.stamp" 2>/dev/null)" != "$sum" ]; then
        rm -rf "${WORKDIR:?}/src/$dir" "$WORKDIR/build/tmp" "$WORKDIR/build/cache"
        tar --zstd -xf "$SNAP/$f.tar.zst" -C "$WORKDIR/src" || { say "cannot unpack $f"; exit 1; }
        echo "$sum" >"$WORKDIR/src/$f.stamp"
    fi
done

# --- build directory: our layer as it is now -------------------------------------------------
B=$WORKDIR/build
rm -rf "$B/meta-smartpos" && mkdir -p "$B/conf"
cp -a "$ROOT/yocto-layer" "$B/meta-smartpos"
# SMARTPOS_RAUC_KEY_DIR (${TOPDIR}/rauc-keys): the rauc-conf bbappend takes the keyring
# from there, and a missing one is a parse error. A throwaway self-signed CA stands in for
# the fleet's: nothing is signed or verified here.
mkdir -p "$B/rauc-keys"
if [ ! -s "$B/rauc-keys/smartpos-keyring.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=smartpos yocto-check throwaway CA" -keyout "$B/rauc-keys/development-1.key.pem" \
        -out "$B/rauc-keys/smartpos-keyring.pem" >/dev/null 2>&1 || { say "openssl failed"; exit 1; }
    cp "$B/rauc-keys/smartpos-keyring.pem" "$B/rauc-keys/development-1.cert.pem"
fi
S=$WORKDIR/src
cat >"$B/conf/bblayers.conf" <<EOF
BBPATH = "\${TOPDIR}"
BBFILES ?= ""
BBLAYERS = "$S/openembedded-core/meta $S/meta-rauc $B/meta-smartpos"
EOF
# The product's distro (conf/distro/smartpos-distro.conf in our layer) sets DISTRO_FEATURES, the
# init manager and the kernel fragment; sanity needs network and host checks this machine
# cannot pass.
cat >"$B/conf/local.conf" <<EOF
MACHINE = "qemux86-64"
DISTRO = "smartpos-distro"
INHERIT:remove = "sanity"
BB_NUMBER_THREADS = "2"
BB_NUMBER_PARSE_THREADS = "2"
CONNECTIVITY_CHECK_URIS = ""
EOF
chown -R "$BBUSER" "$WORKDIR"

# run STEP CMD: as the build user, in the build directory; the log must hold no ERROR/WARNING.
failed=0
bb() {
    local name=$1
    shift
    local log=$B/$name.log
    local t
    t=$(date +%s)
    su "$BBUSER" -s /bin/sh -c "cd '$B' && export LANG=en_US.UTF-8 LC_ALL=en_US.UTF-8 \
        PATH='$S/bitbake/bin':\$PATH BBPATH='$B' && $*" </dev/null >"$log" 2>&1
    local rc=$?
    local bad
    bad=$(grep -E '^(ERROR|WARNING|NOTE: .*(error|warning)s? (was|were) shown)' "$log" | grep -v '^NOTE: .* 0 ')
    [ -z "$bad" ] || bad=yes
    if [ $rc = 0 ] && [ -z "$bad" ]; then
        say "ok   $name ($(($(date +%s) - t)) s)"
    else
        failed=$((failed + 1))
        say "FAIL $name (exit $rc, $(($(date +%s) - t)) s); log: $log"
        grep -E '^(ERROR|WARNING)' "$log" | head -30 | sed 's/^/     /'
        grep -Eq '^(ERROR|WARNING)' "$log" || tail -20 "$log" | sed 's/^/     /'
    fi
}
bb parse "bitbake -p"
bb graph "bitbake -g smartpos-image smartpos-bundle && test -s task-depends.dot"
# The image's .wks must be found (wic is not run here, so nothing else would notice), and
# the kernel fragment must be in linux-yocto's SRC_URI under our distro.
bb env "bitbake -e smartpos-image >env-image.txt && grep -q '^WKS_FULL_PATH=\".*/smartpos-image.wks\"' env-image.txt \
    && bitbake -e linux-yocto >env-kernel.txt && grep -q '^SRC_URI=.*file://smartpos.cfg' env-kernel.txt"
if [ $failed = 0 ]; then
    # The image is what a terminal runs: its packages, as the graph resolved them.
    graph_ok() {
        python3 - "$B/task-depends.dot" <<'EOF'
import re, sys
dot = open(sys.argv[1]).read()
recipes = set(re.findall(r'^"([^".]+)\.do_', dot, re.M))
need = {"smartpos", "rauc", "smartpos-image", "smartpos-bundle", "linux-yocto", "dbus"}
bad = {"dropbear", "openssh", "avahi", "rpcbind", "bluez5", "ofono", "packagegroup-base"}
miss = sorted(need - recipes)
extra = sorted(bad & recipes)
if miss or extra:
    sys.exit(f"task graph: missing {miss}, must not have {extra}")
EOF
    }
    if out=$(graph_ok 2>&1); then
        say "ok   graph has smartpos, rauc, linux-yocto, dbus; no SSH server, avahi, rpcbind, bluez, ofono"
    else
        failed=$((failed + 1))
        say "FAIL $out"
    fi
fi
say "took $(($(date +%s) - T0)) s"
[ $failed = 0 ]
