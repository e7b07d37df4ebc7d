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

# manifest: one "mode source destination" line per file, sources relative to $SRC
# (binaries: absolute). Globs that match nothing are skipped.
manifest() {
    if [ "$TARGET_DIR" != "-" ]; then
        for b in $BINARIES; do
            if [ -x "$TARGET_DIR/$b" ]; then
                echo "0755 $(cd "$TARGET_DIR" && pwd)/$b $BINDIR/$b"
            else
                echo "install-files: $TARGET_DIR/$b not built, skipped" >&2
            fi
        done
    fi
    for f in "$SRC"/systemd-units/*.service; do
        [ -e "$f" ] && echo "0644 systemd-units/${f##*/} $UNITDIR/${f##*/}"
    done
    echo "0644 packaging/sysusers.d/smartpos.conf $SYSUSERSDIR/smartpos.conf"
    echo "0644 packaging/tmpfiles.d/smartpos.conf $TMPFILESDIR/smartpos.conf"
    echo "0644 packaging/udev/70-smartpos-devices.rules $UDEVRULESDIR/70-smartpos-devices.rules"
    echo "0644 packaging/sysctl.d/50-smartpos-netd.conf $SYSCTLDIR/50-smartpos-netd.conf"
    echo "0644 packaging/polkit/50-smartpos-otad.rules $POLKITRULESDIR/50-smartpos-otad.rules"
    for f in "$SRC"/dbus/*.conf; do
        [ -e "$f" ] && echo "0644 dbus/${f##*/} $DBUSPOLICYDIR/${f##*/}"
    done
    # The interface XML is the contract for vendor apps; it lives with the bus crate.
    for f in "$SRC"/crates/bus/xml/*.xml; do
        [ -e "$f" ] && echo "0644 crates/bus/xml/${f##*/} $DBUSIFACEDIR/${f##*/}"
    done
    [ -e "$SRC/docs/PACKAGING.md" ] && echo "0644 docs/PACKAGING.md $DOCDIR/PACKAGING.md"
    return 0
}

if [ "$LIST" = 1 ]; then
    manifest
    exit 0
fi

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
