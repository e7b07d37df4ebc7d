#!/bin/sh
# Install smartpos into a staging tree, the way a distribution package would.
#
#   tools/install-files.sh DESTDIR PREFIX [TARGET_DIR|-]
#   tools/install-files.sh --list PREFIX          # print "mode source destination" lines
#   tools/install-files.sh --binaries             # print the names of the shipped binaries
#
# DESTDIR     staging root ("" or / for a live install); created if missing.
# PREFIX      usually /usr. Units name their binaries as /usr/bin/...; with another
#             prefix, ExecStart= is rewritten to PREFIX/bin.
# TARGET_DIR  where cargo put the binaries (e.g. target/release). "-" or absent:
#             data files only (the Yocto recipe, whose cargo class installs binaries).
#
# DAEMONS     which daemons' files to install (unit, sysusers, tmpfiles, bus policy,
#             sysctl, polkit), e.g. DAEMONS="scannerd paymentd". Default: the daemons whose
#             binary is in TARGET_DIR; with "-" (or --list), every daemon that has a unit.
#             A daemon's sysusers/tmpfiles files name its own account, so they must not be
#             installed without it (systemd-tmpfiles fails on an unknown user).
#
# Directories can be overridden from the environment, for layouts that are not
# merged-/usr (Yocto without usrmerge keeps units and udev rules under /lib):
#   BINDIR UNITDIR SYSUSERSDIR TMPFILESDIR UDEVRULESDIR SYSCTLDIR DBUSPOLICYDIR
#   DBUSIFACEDIR POLKITRULESDIR DOCDIR
#
# This is the one install list: the Makefile's `install` target and the Yocto recipe
# both call it, and tools/check-packaging.sh runs it into a temporary root.
set -eu

usage() {
    echo "usage: $0 DESTDIR PREFIX [TARGET_DIR|-]" >&2
    echo "       $0 --list PREFIX" >&2
    exit 64
}

# Binaries we ship when the build produced them. A daemon that is not built yet is
# reported, not an error: the stack grows one daemon at a time.
BINARIES="smartpos-scannerd smartpos-paymentd smartpos-netd smartpos-otad posctl"

LIST=0
if [ "${1:-}" = "--binaries" ]; then
    echo "$BINARIES"
    exit 0
elif [ "${1:-}" = "--list" ]; then
    LIST=1
    [ $# -eq 2 ] || usage
    DESTDIR=""
    PREFIX=$2
    TARGET_DIR=-
else
    if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
    DESTDIR=$1
    PREFIX=$2
    TARGET_DIR=${3:--}
fi
case "$PREFIX" in
    /*) ;;
    *) echo "PREFIX must be absolute, got '$PREFIX'" >&2; exit 64 ;;
esac
PREFIX=${PREFIX%/}
[ -n "$PREFIX" ] || PREFIX=/usr
DESTDIR=${DESTDIR%/}

SRC=$(cd "$(dirname "$0")/.." && pwd)

BINDIR=${BINDIR:-$PREFIX/bin}
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
SYSUSERSDIR=${SYSUSERSDIR:-$PREFIX/lib/sysusers.d}
TMPFILESDIR=${TMPFILESDIR:-$PREFIX/lib/tmpfiles.d}
UDEVRULESDIR=${UDEVRULESDIR:-$PREFIX/lib/udev/rules.d}
SYSCTLDIR=${SYSCTLDIR:-$PREFIX/lib/sysctl.d}
# Not /etc/dbus-1/system.d: that is the administrator's (dbus-daemon(1), dbus >= 1.10).
DBUSPOLICYDIR=${DBUSPOLICYDIR:-$PREFIX/share/dbus-1/system.d}
DBUSIFACEDIR=${DBUSIFACEDIR:-$PREFIX/share/dbus-1/interfaces}
POLKITRULESDIR=${POLKITRULESDIR:-$PREFIX/share/polkit-1/rules.d}
DOCDIR=${DOCDIR:-$PREFIX/share/doc/smartpos}
LOGINDCONFDIR=${LOGINDCONFDIR:-$PREFIX/lib/systemd/logind.conf.d}

if [ -z "${DAEMONS+x}" ]; then
    DAEMONS=
    for f in "$SRC"/systemd-units/smartpos-*.service; do
        d=${f##*/smartpos-}
        d=${d%.service}
        if [ "$TARGET_DIR" = "-" ] || [ -x "$TARGET_DIR/smartpos-$d" ]; then
            DAEMONS="$DAEMONS $d"
        fi
    done
fi

# manifest: one "mode source destination" line per file, sources relative to $SRC
# (binaries: absolute). Globs that match nothing are skipped.
# printf, not echo: unit names carry systemd's \x2d escapes, which some shells' echo eats.
line() { printf '%s\n' "$*"; }
manifest() {
    if [ "$TARGET_DIR" != "-" ]; then
        for b in $BINARIES; do
            if [ -x "$TARGET_DIR/$b" ]; then
                line "0755 $(cd "$TARGET_DIR" && pwd)/$b $BINDIR/$b"
            else
                echo "install-files: $TARGET_DIR/$b not built, skipped" >&2
            fi
        done
    fi
    # Files every image gets: shared accounts and directories, the data partition's
    # mounts, no logins on a virtual console.
    line "0644 packaging/sysusers.d/smartpos-common.conf $SYSUSERSDIR/smartpos-common.conf"
    line "0644 packaging/tmpfiles.d/smartpos-common.conf $TMPFILESDIR/smartpos-common.conf"
    line "0644 packaging/logind.conf.d/50-smartpos-no-vt.conf $LOGINDCONFDIR/50-smartpos-no-vt.conf"
    line "0644 packaging/getty/50-smartpos-no-console-login.conf $UNITDIR/getty@.service.d/50-smartpos-no-console-login.conf"
    for f in "$SRC"/packaging/data/*.mount "$SRC"/packaging/data/*.service; do
        [ -e "$f" ] && line "0644 packaging/data/${f##*/} $UNITDIR/${f##*/}"
    done
    # One daemon's files: its unit, account, directories, bus policy, and extras.
    for d in $DAEMONS; do
        unit=systemd-units/smartpos-$d.service
        line "0644 $unit $UNITDIR/smartpos-$d.service"
        for kind in sysusers.d:$SYSUSERSDIR tmpfiles.d:$TMPFILESDIR; do
            f=packaging/${kind%%:*}/smartpos-$d.conf
            [ -e "$SRC/$f" ] && line "0644 $f ${kind#*:}/smartpos-$d.conf"
        done
        [ -e "$SRC/packaging/sysctl.d/50-smartpos-$d.conf" ] &&
            line "0644 packaging/sysctl.d/50-smartpos-$d.conf $SYSCTLDIR/50-smartpos-$d.conf"
        [ -e "$SRC/packaging/polkit/50-smartpos-$d.rules" ] &&
            line "0644 packaging/polkit/50-smartpos-$d.rules $POLKITRULESDIR/50-smartpos-$d.rules"
        [ -e "$SRC/packaging/data/smartpos-$d" ] && for f in "$SRC/packaging/data/smartpos-$d"/*; do
            line "0644 packaging/data/smartpos-$d/${f##*/} $UNITDIR/${f##*/}"
        done
        # The device rules give scanners to the scanner daemon's group.
        [ "$d" = scannerd ] &&
            line "0644 packaging/udev/70-smartpos-devices.rules $UDEVRULESDIR/70-smartpos-devices.rules"
        name=$(sed -n 's/^BusName=//p' "$SRC/$unit")
        [ -n "$name" ] && [ -e "$SRC/dbus/$name.conf" ] && line "0644 dbus/$name.conf $DBUSPOLICYDIR/$name.conf"
    done
    # The interface XML is the contract for vendor apps; it lives with the bus crate.
    for f in "$SRC"/crates/bus/xml/*.xml; do
        [ -e "$f" ] && line "0644 crates/bus/xml/${f##*/} $DBUSIFACEDIR/${f##*/}"
    done
    [ -e "$SRC/docs/PACKAGING.md" ] && line "0644 docs/PACKAGING.md $DOCDIR/PACKAGING.md"
    return 0
}

for d in $DAEMONS; do
    [ -e "$SRC/systemd-units/smartpos-$d.service" ] ||
        { echo "install-files: no unit for daemon '$d' (systemd-units/smartpos-$d.service)" >&2; exit 64; }
done

if [ "$LIST" = 1 ]; then
    manifest
    exit 0
fi

# Mount points the read-only root must already have: the data partition and its binds
# (packaging/data/). systemd cannot create them on a read-only root.
for dir in /data /etc/smartpos /var/log/journal; do
    install -d -m 0755 "$DESTDIR$dir"
done
case " $DAEMONS " in *" paymentd "*) install -d -m 0700 "$DESTDIR/var/lib/smartpos-payment" ;; esac

manifest | while read -r mode src dest; do
    case "$src" in
        /*) from=$src ;;
        *) from=$SRC/$src ;;
    esac
    install -d -m 0755 "$DESTDIR$(dirname "$dest")"
    case "$src" in
        systemd-units/*.service)
            # Units name /usr/bin; follow the prefix the binaries really went to.
            sed "s|^ExecStart=/usr/bin/|ExecStart=$BINDIR/|" "$from" >"$DESTDIR$dest.tmp"
            chmod "$mode" "$DESTDIR$dest.tmp"
            mv -f "$DESTDIR$dest.tmp" "$DESTDIR$dest"
            ;;
        *)
            install -m "$mode" "$from" "$DESTDIR$dest"
            ;;
    esac
done
