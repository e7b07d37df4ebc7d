#!/usr/bin/env bash
# The system test: the real smartpos-scannerd and posctl against the real kernel drivers vivid
# (a V4L2 camera) and uinput (a keyboard-wedge scanner), in a qemu VM.
#
#   tools/system-test.sh        # root; about 50 s once the kernel is cached (see tests/system/README.md)
#
# A Debian kernel boots under qemu (TCG: no usable KVM on the dev/CI machines) with a busybox
# initramfs; the guest mounts this machine's root read-only over 9p and runs
# tests/system/guest.sh in a chroot of it, so the host-built binaries in target/debug run
# unchanged. Everything generated goes to target/system-test/. Needs the Debian packages
# qemu-system-x86, busybox-static, kmod, dbus-daemon, python3, v4l-utils and qrencode (installed if missing).
# KEEP=1 keeps the run directory; NO_BUILD=1 skips the cargo build.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=$(realpath -m "${CARGO_TARGET_DIR:-$ROOT/target}")
OUTDIR=$TARGET/system-test
QEMU_TIMEOUT=${QEMU_TIMEOUT:-180}
T0=$(date +%s)
say() { echo "system-test: $*"; }

# The guest sees the host's / read-only, but has /tmp and /run of its own: a checkout there
# (CI may clone into /tmp) is shared into the guest at the same path.
REPO_SHARE=
case $ROOT/ in
    /tmp/* | /run/*) REPO_SHARE=$ROOT ;;
esac
case $TARGET/ in
    "$ROOT"/*) ;;
    /tmp/* | /run/* | /dev/* | /proc/* | /sys/*)
        say "the guest cannot see $TARGET (its /tmp and /run are its own): use another CARGO_TARGET_DIR"
        exit 1 ;;
esac
if [ "$(id -u)" != 0 ]; then
    say "needs root (apt-get, and qemu's 9p export of /)"
    exit 77
fi
missing=()
for t in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static depmod:kmod dbus-daemon:dbus-daemon \
    python3:python3 v4l2-ctl:v4l-utils qrencode:qrencode; do
    command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"; } >/dev/null 2>&1 || { say "cannot install ${missing[*]} with apt-get"; exit 1; }
fi

if [ "${NO_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build -q -p smartpos-scannerd -p posctl --bins) || { say "cargo build failed"; exit 1; }
fi

# --- kernel, modules and initramfs, cached per kernel version ------------------------------
# The kernel's ABI name changes with security updates and old ones leave the mirror: ask apt.
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
if [ -z "$KPKG" ]; then
    apt-get update -qq >/dev/null 2>&1
    KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
fi
[ -n "$KPKG" ] || { say "apt-cache knows no linux-image-amd64 (is Debian's archive in sources.list?)"; exit 1; }
KV=${KPKG#linux-image-}
KDIR=$OUTDIR/kernel-$KV
# Loaded by /init: what it takes to mount the host's root over virtio-9p.
BOOT_MODULES="virtio_pci 9pnet_virtio 9p"
# Loaded by the test with modprobe, so that it can also remove and reload them.
TEST_MODULES="vivid uinput evdev"
if [ ! -f "$KDIR/initramfs/boot.order" ] || [ ! -f "$KDIR/vmlinux" ]; then
    say "preparing kernel $KV in $KDIR"
    rm -rf "$KDIR" && mkdir -p "$KDIR/kroot" "$KDIR/initramfs"
    (
        set -e
        cd "$KDIR"
        apt-get download "$KPKG" >/dev/null 2>&1
        M=./lib/modules/$KV
        dpkg-deb --fsys-tarfile "$KPKG"_*.deb | tar -x -C kroot "./boot/vmlinuz-$KV" "$M/modules.order" \
            "$M/modules.builtin" "$M/modules.builtin.modinfo" "$M/kernel/drivers/media" "$M/kernel/drivers/virtio" \
            "$M/kernel/drivers/input" "$M/kernel/net/9p" "$M/kernel/fs/9p" "$M/kernel/fs/netfs" "$M/kernel/fs/fscache"
        rm -f "$KPKG"_*.deb
        depmod -b kroot "$KV"
        # PVH direct boot (about half the boot time of the bzImage under TCG) wants the
        # uncompressed image; xz complains about the bytes after its stream, the image is whole.
        off=$(grep -abo $'\xfd7zXZ' "kroot/boot/vmlinuz-$KV" | head -1 | cut -d: -f1)
        tail -c +$((off + 1)) "kroot/boot/vmlinuz-$KV" | xz -dc >vmlinux 2>/dev/null || true
        [ -s vmlinux ]
        cd initramfs
        mkdir -p bin proc sys dev newroot "lib/modules/$KV"
        cp /bin/busybox bin/
        # busybox lists itself; a self-symlink makes /init fail with ELOOP.
        for a in $(busybox --list); do [ "$a" = busybox ] || ln -sf busybox "bin/$a"; done
        for f in modules.order modules.builtin modules.builtin.modinfo; do cp "../kroot/$M/$f" "lib/modules/$KV/"; done
        : >boot.order
        for m in $BOOT_MODULES $TEST_MODULES; do
            for f in $(modprobe -d ../kroot -S "$KV" --show-depends "$m" | awk '/^insmod/ { print $2 }'); do
                rel=${f#../kroot/lib/modules/"$KV"/}
                [ -f "lib/modules/$KV/$rel" ] && continue
                mkdir -p "lib/modules/$KV/$(dirname "$rel")"
                cp "$f" "lib/modules/$KV/$rel"
                case " $BOOT_MODULES " in *" $m "*) echo "$rel" >>boot.order ;; esac
            done
        done
        depmod -b . "$KV"
    ) || { say "cannot prepare kernel $KV"; rm -rf "$KDIR"; exit 1; }
    rm -rf "$KDIR/kroot"
fi
# /init is written and the archive packed on every run (1 s), so a change here is never
# hidden behind the cached kernel.
(
    set -e
    cd "$KDIR/initramfs"
    cat >init <<'EOF'
#!/bin/sh
# PID 1: mount the host's root read-only, the run directory read-write at its host path, and
# run the test in a chroot; its exit status goes to $WORK/rc, then power off.
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for a in $(cat /proc/cmdline); do case $a in harness.test=*) TEST=${a#*=};; harness.work=*) WORK=${a#*=};; harness.repo=*) REPO=${a#*=};; esac; done
KV=$(uname -r)
while read -r m; do insmod "/lib/modules/$KV/$m"; done < /boot.order
R=/newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot $R
mount -t tmpfs tmp $R/tmp; mount -t tmpfs run $R/run; mount --bind /dev $R/dev
mount -t proc proc $R/proc; mount -t sysfs sys $R/sys
if [ -n "$REPO" ]; then
    mkdir -p $R$REPO
    mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose repo $R$REPO
fi
# The guest kernel's modules, for the host's modprobe: `modprobe -d /run/kernel`.
mkdir -p $R/run/kernel/lib/modules; cp -a /lib/modules/$KV $R/run/kernel/lib/modules/
mkdir -p $R$WORK 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 work $R$WORK
chroot $R /bin/sh -c "cd $WORK && exec /bin/sh $TEST > $WORK/guest.log 2>&1"; echo $? > $R$WORK/rc; sync
poweroff -f
EOF
    chmod 0755 init
    find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >../initramfs.cpio.gz
) || { say "cannot pack the initramfs"; exit 1; }

# --- the run -------------------------------------------------------------------------------
WORK=$OUTDIR/run
rm -rf "$WORK" && mkdir -p "$WORK"
echo "BIN=$TARGET/debug" >"$WORK/env"
QEMU_PID=
cleanup() {
    [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null
    if [ "${KEEP:-0}" != 1 ] && [ "${FAILED:-1}" = 0 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Only an accelerator that really works: /dev/kvm can be a nested software hypervisor (kvm_pvm)
# that a stock kernel cannot boot under, so KVM only with vmx/svm and kvm_intel/kvm_amd loaded.
ACCEL=tcg
if [ -w /dev/kvm ] && grep -Eqw 'vmx|svm' /proc/cpuinfo \
    && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
    ACCEL=kvm
fi
ACCEL=${FORCE_ACCEL:-$ACCEL}
say "booting $KV under $ACCEL (hard limit ${QEMU_TIMEOUT} s)"
timeout -k 5 "$QEMU_TIMEOUT" qemu-system-x86_64 -accel "$ACCEL" -m 1024 -smp 1 -nographic -no-reboot -net none \
    -kernel "$KDIR/vmlinux" -initrd "$KDIR/initramfs.cpio.gz" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$WORK,mount_tag=work,security_model=none,multidevs=remap" \
    ${REPO_SHARE:+-virtfs "local,path=$REPO_SHARE,mount_tag=repo,security_model=none,readonly=on,multidevs=remap"} \
    -append "console=ttyS0 quiet panic=-1 harness.work=$WORK harness.test=${GUEST:-$ROOT/tests/system/guest.sh}${REPO_SHARE:+ harness.repo=$REPO_SHARE}" \
    </dev/null >"$WORK/console.log" 2>&1 &
QEMU_PID=$!
wait "$QEMU_PID"
qrc=$?
QEMU_PID=

PASSED=$(grep -c '^PASS' "$WORK/results" 2>/dev/null)
FAILED=$(grep -c '^FAIL' "$WORK/results" 2>/dev/null)
grep -E '^(PASS|FAIL)' "$WORK/results" 2>/dev/null | sed 's/^/  /'
grc=$(cat "$WORK/rc" 2>/dev/null)
if [ -z "$grc" ]; then
    FAILED=$((FAILED + 1))
    if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
        echo "  FAIL vm: killed after ${QEMU_TIMEOUT} s"
    else
        echo "  FAIL vm: the guest did not finish (qemu exit $qrc)"
    fi
elif [ "$grc" != "$FAILED" ]; then
    FAILED=$((FAILED + 1))
    echo "  FAIL vm: the guest script exited $grc with $FAILED failures recorded"
fi
if [ "$FAILED" != 0 ]; then
    say "logs in $WORK (console.log, guest.log, scannerd.log); the guest's last words:"
    tail -15 "$WORK/guest.log" 2>/dev/null || tail -15 "$WORK/console.log"
fi
say "took $(($(date +%s) - T0)) s"
echo "system-test: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
