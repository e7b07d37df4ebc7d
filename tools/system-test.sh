#!/usr/bin/env bash
# The system test, in a qemu VM with the real kernel drivers vivid (a V4L2 camera) and uinput
# (a keyboard-wedge scanner), in two parts:
#   1. devices: the real smartpos-scannerd and posctl in a chroot (tests/system/guest.sh), and
#      smartpos-netd against network faults (a namespace across a veth pair, netem);
#   2. the stack: systemd as PID 1 boots the files tools/install-files.sh installs (the list
#      `make install` uses) with the real system bus, udev and journal, and a data partition
#      on a virtio disk, twice: slot A, then a fresh root as slot B (tests/system/stack.sh).
#
#   tools/system-test.sh        # root; about 3 min once the kernel is cached (see tests/system/README.md)
#   STACK=0 tools/system-test.sh                       # part 1 only
#   DEVICES=0 tools/system-test.sh                     # part 2 only
#   NO_BUILD=1 tools/system-test.sh                    # binaries of `make build-test` (failpoints)
#
# A Debian kernel boots under qemu (TCG: no usable KVM on the dev/CI machines) with a busybox
# initramfs; the guest mounts this machine's root read-only over 9p and runs
# tests/system/guest.sh in a chroot of it, so the host-built binaries in target/debug run
# unchanged. Everything generated goes to target/system-test/. Needs the Debian packages
# qemu-system-x86, busybox-static, kmod, dbus-daemon, python3, v4l-utils, qrencode, iproute2, openssl
# and jq (installed if missing).
# KEEP=1 keeps the run directory; NO_BUILD=1 skips the cargo build.
# On a failure the guest's console (kernel and systemd) is printed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=$(realpath -m "${CARGO_TARGET_DIR:-$ROOT/target}")
OUTDIR=$TARGET/system-test
# Part 1's hard limit: far above the time it takes (tests/system/README.md), which a machine
# busy with other builds stretches severalfold under TCG.
QEMU_TIMEOUT=${QEMU_TIMEOUT:-900}
# Each boot of the stack part: a hard limit, far above the time it takes (docs/PACKAGING.md).
STACK_TIMEOUT=${STACK_TIMEOUT:-600}
STACK=${STACK:-1}
DEVICES=${DEVICES:-1}
# Extra cargo arguments for the build of the daemons.
PAYMENTD_FEATURES=${PAYMENTD_FEATURES:-}
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
    python3:python3 v4l2-ctl:v4l-utils qrencode:qrencode udevadm:udev mkfs.ext4:e2fsprogs gdbus:libglib2.0-bin \
    ip:iproute2 tc:iproute2 openssl:openssl jq:jq \
    systemd-sysusers:systemd systemctl:systemd busctl:systemd; do
    command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"; } >/dev/null 2>&1 || { say "cannot install ${missing[*]} with apt-get"; exit 1; }
fi

# The test build, as `make build-test`: part 2 wedges paymentd with a failpoint
# (SMARTPOS_FAILPOINT=hang:…), which only a build with the feature honours. PAYMENTD_FEATURES
# builds even with NO_BUILD=1.
if [ "${NO_BUILD:-0}" != 1 ] || [ -n "$PAYMENTD_FEATURES" ]; then
    # shellcheck disable=SC2086 # PAYMENTD_FEATURES is a list of cargo arguments
    (cd "$ROOT" && cargo build -q -p smartpos-scannerd -p smartpos-paymentd -p smartpos-netd -p posctl \
        -p smartpos-acquirer-sim --bins --features smartpos-payment/failpoints,smartpos-paymentd/failpoints $PAYMENTD_FEATURES) ||
        { say "cargo build failed"; exit 1; }
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
BOOT_MODULES="virtio_pci 9pnet_virtio 9p virtio_blk ext4 overlay"
# Loaded by the test with modprobe, so that it can also remove and reload them: the camera
# and the scanner, and for part 1's network faults a veth pair and netem (network namespaces
# and the qdisc layer are built into Debian's kernel).
TEST_MODULES="vivid uinput evdev veth sch_netem"
if [ ! -f "$KDIR/initramfs/boot.order" ] || [ ! -f "$KDIR/vmlinux" ] \
    || [ "$(cat "$KDIR/modules.list" 2>/dev/null)" != "$BOOT_MODULES $TEST_MODULES" ]; then
    say "preparing kernel $KV in $KDIR"
    rm -rf "$KDIR" && mkdir -p "$KDIR/kroot" "$KDIR/initramfs"
    (
        set -e
        cd "$KDIR"
        apt-get download "$KPKG" >/dev/null 2>&1
        M=./lib/modules/$KV
        dpkg-deb --fsys-tarfile "$KPKG"_*.deb | tar -x -C kroot "./boot/vmlinuz-$KV" "$M/modules.order" \
            "$M/modules.builtin" "$M/modules.builtin.modinfo" "$M/kernel/drivers/media" "$M/kernel/drivers/virtio" \
            "$M/kernel/drivers/input" "$M/kernel/net/9p" "$M/kernel/fs" "$M/kernel/lib" "$M/kernel/crypto" \
            "$M/kernel/drivers/block" "$M/kernel/drivers/net/veth.ko" "$M/kernel/net/sched"
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
    echo "$BOOT_MODULES $TEST_MODULES" >"$KDIR/modules.list"
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
for a in $(cat /proc/cmdline); do case $a in harness.test=*) TEST=${a#*=};; harness.work=*) WORK=${a#*=};; harness.repo=*) REPO=${a#*=};; harness.mode=*) MODE=${a#*=};; esac; done
KV=$(uname -r)
while read -r m; do insmod "/lib/modules/$KV/$m"; done < /boot.order
R=/newroot
if [ "$MODE" = systemd ]; then
    # The stack part: the installed files (9p "stage") over the host's root, read-only, as a
    # terminal's root slot; systemd becomes PID 1 on it.
    mkdir -p /lower /stage
    mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /lower
    mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose stage /stage
    # This machine's root is a container image: its /.dockerenv would make systemd believe it
    # runs in a container. A whiteout in a layer of its own hides it.
    mkdir -p /hide; mount -t tmpfs hide /hide; mknod /hide/.dockerenv c 0 0
    mount -t overlay -o ro,lowerdir=/hide:/stage:/lower overlay $R || { echo "harness: overlay failed"; poweroff -f; }
    # What a read-only image mounts as tmpfs (Yocto's volatile binds: /tmp, /var/tmp, /var/lib);
    # before the shares, which may live below them.
    mount -t tmpfs tmp $R/tmp; mount -t tmpfs vartmp $R/var/tmp; mount -t tmpfs varlib $R/var/lib
    # The unit files and the manager's configuration on a tmpfs copy, local as on a terminal's
    # disk: systemd walks these directories for each unit it loads and for each unit's
    # UnitFileState, UnitFilePreset and NeedDaemonReload (systemctl show, systemd-analyze),
    # and over 9p under TCG that costs seconds per unit (docs/PACKAGING.md, "Boot order").
    mkdir -p /units; mount -t tmpfs units /units
    for d in usr/lib/systemd/system usr/lib/systemd/system-preset etc/systemd; do
        [ -d $R/$d ] || continue
        mkdir -p /units/$d; cp -a $R/$d/. /units/$d/ && mount --bind /units/$d $R/$d &&
            mount -o remount,bind,ro $R/$d
    done
    if [ -n "$REPO" ]; then
        mkdir -p $R$REPO 2>/dev/null
        mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose repo $R$REPO
    fi
    mkdir -p $R$WORK 2>/dev/null
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 work $R$WORK
    umount /proc /sys
    mount --move /dev $R/dev
    exec switch_root $R /lib/systemd/systemd
fi
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

# vm TIMEOUT CONSOLE_LOG APPEND [QEMU ARGS...]: one boot; qemu's exit status in $qrc.
vm() {
    local limit=$1 log=$2 append=$3
    shift 3
    timeout -k 5 "$limit" qemu-system-x86_64 -accel "$ACCEL" -m 1024 -smp 1 -nographic -no-reboot -net none \
        -kernel "$KDIR/vmlinux" -initrd "$KDIR/initramfs.cpio.gz" \
        -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
        -virtfs "local,path=$WORK,mount_tag=work,security_model=none,multidevs=remap" \
        ${REPO_SHARE:+-virtfs "local,path=$REPO_SHARE,mount_tag=repo,security_model=none,readonly=on,multidevs=remap"} \
        "$@" \
        -append "console=ttyS0 panic=-1 harness.work=$WORK${REPO_SHARE:+ harness.repo=$REPO_SHARE} $append" \
        </dev/null >"$log" 2>&1 &
    QEMU_PID=$!
    wait "$QEMU_PID"
    qrc=$?
    QEMU_PID=
}

# verdict RESULTS RC_FILE NAME CONSOLE: adds the PASS/FAIL/SKIP lines to PASSED/FAILED/SKIPPED,
# checks that the guest finished and agrees with its own count, and prints the console on a
# failure. A SKIP is a check the guest kernel cannot run, with the reason.
PASSED=0
FAILED=0
SKIPPED=0
verdict() {
    local results=$1 rcfile=$2 name=$3 console=$4 p f s grc
    p=$(grep -c '^PASS' "$results" 2>/dev/null)
    f=$(grep -c '^FAIL' "$results" 2>/dev/null)
    s=$(grep -c '^SKIP' "$results" 2>/dev/null)
    f=${f:-0}
    grep -E '^(PASS|FAIL|SKIP)' "$results" 2>/dev/null | sed 's/^/  /'
    grc=$(cat "$rcfile" 2>/dev/null)
    if [ -z "$grc" ]; then
        f=$((f + 1))
        if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
            echo "  FAIL $name: killed after the time limit"
        else
            echo "  FAIL $name: the guest did not finish (qemu exit $qrc)"
        fi
    elif [ "$grc" != "$f" ]; then
        f=$((f + 1))
        echo "  FAIL $name: the guest script exited $grc with $f failures recorded"
    fi
    if [ "$f" != 0 ]; then
        say "$name failed; logs in $WORK. The guest console ($console), last 60 lines:"
        tail -60 "$console" | sed 's/^/  | /'
    fi
    PASSED=$((PASSED + ${p:-0}))
    FAILED=$((FAILED + f))
    SKIPPED=$((SKIPPED + ${s:-0}))
}

if [ "$DEVICES" = 1 ]; then
    say "part 1, devices: booting $KV under $ACCEL (hard limit ${QEMU_TIMEOUT} s)"
    vm "$QEMU_TIMEOUT" "$WORK/console.log" "quiet harness.test=${GUEST:-$ROOT/tests/system/guest.sh}"
    verdict "$WORK/results" "$WORK/rc" "devices" "$WORK/console.log"
    if [ "$FAILED" != 0 ]; then
        say "the guest's last words:"
        tail -15 "$WORK/guest.log" 2>/dev/null
    fi
fi

# --- part 2: the whole stack under systemd -----------------------------------------------------
# make_slot DIR SLOT PHASE: a root slot as the terminal image has it: the installed files, the
# accounts made at build time (the root is read-only), the units enabled, plus the test
# bench (acquirer emulator, camera set-up, factory provisioning, the test itself).
make_slot() {
    local d=$1 slot=$2 phase=$3 u
    [ -n "$d" ] || return 1
    rm -rf "$d"
    # The same install list as `make install` (which builds in release mode first).
    "$ROOT/tools/install-files.sh" "$d" /usr "$TARGET/debug" >/dev/null || { echo "install-files.sh failed"; return 1; }
    echo "$slot" >"$d/usr/lib/smartpos-test-slot"
    mkdir -p "$d/usr/lib/modules" "$d/etc/systemd/system/multi-user.target.wants" "$d/etc/sysusers.d" \
        "$d/etc/modprobe.d" "$d/etc/modules-load.d"
    cp -a "$KDIR/initramfs/lib/modules/$KV" "$d/usr/lib/modules/" || return 1
    cp -p /etc/passwd /etc/group /etc/shadow /etc/gshadow "$d/etc/" || return 1
    {
        echo "# The people at the till: a checkout app, a technician, a local user in no smartpos group."
        echo 'u cashier  1501 "checkout app" /'
        echo "m cashier  smartpos-vendor"
        echo 'u tech     1502 "service technician" /'
        echo "m tech     smartpos-tech"
        echo 'u outsider 1500 "ordinary local user" /'
    } >"$d/etc/sysusers.d/smartpos-system-test.conf"
    systemd-sysusers --root="$d" >/dev/null || { echo "systemd-sysusers --root=$d failed"; return 1; }
    # Enabled as the image's systemd class enables them.
    systemctl --root="$d" enable smartpos-scannerd.service smartpos-paymentd.service data.mount \
        etc-smartpos.mount var-log-journal.mount 'var-lib-smartpos\x2dpayment.mount' >/dev/null ||
        { echo "systemctl --root=$d enable failed"; return 1; }
    # The test build's failpoint that wedges paymentd mid-sale for stack.sh's watchdog check
    # (a release build ignores the variable); slot A only, the update to slot B drops it.
    if [ "$slot" = A ]; then
        mkdir -p "$d/etc/systemd/system/smartpos-paymentd.service.d"
        printf '[Service]\nEnvironment=SMARTPOS_FAILPOINT=hang:waiting_for_customer\n' \
            >"$d/etc/systemd/system/smartpos-paymentd.service.d/smartpos-system-test.conf"
    fi
    # None of the host's generators has anything to generate for the terminal (its mounts are
    # units; no fstab entries, init scripts, encrypted volumes or console login), and each one
    # is a program run at every boot, seconds under TCG: masked as systemd.generator(7) says.
    mkdir -p "$d/etc/systemd/system-generators"
    for u in /usr/lib/systemd/system-generators/* /lib/systemd/system-generators/*; do
        [ -e "$u" ] && ln -sf /dev/null "$d/etc/systemd/system-generators/${u##*/}"
    done
    # The host's own services have no place on a terminal.
    for u in postgresql.service e2scrub_reap.service apt-daily.timer apt-daily-upgrade.timer \
        dpkg-db-backup.timer e2scrub_all.timer fstrim.timer man-db.timer; do
        ln -sf /dev/null "$d/etc/systemd/system/$u"
    done
    # The camera: vivid with a capture and an output node looped (as in part 1), set to
    # 640x480 before scannerd opens it.
    echo "options vivid n_devs=1 node_types=0x101 num_inputs=1 input_types=0x3 num_outputs=1 output_types=0x1" \
        >"$d/etc/modprobe.d/smartpos-test-vivid.conf"
    printf 'vivid\nuinput\n' >"$d/etc/modules-load.d/smartpos-test.conf"
    unit() { cat >"$d/etc/systemd/system/$1.service"; }
    unit smartpos-test-camera <<UNIT
[Unit]
Description=system test: vivid's loop at 640x480, as a board's camera set-up
After=systemd-modules-load.service
Before=smartpos-scannerd.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/v4l2-ctl -d /dev/video0 --set-dv-bt-timings index=0
ExecStart=/usr/bin/v4l2-ctl -d /dev/video1 --set-dv-bt-timings index=0
ExecStart=/usr/bin/v4l2-ctl -d /dev/video0 -c loop_video=1,osd_text_mode=2
UNIT
    unit smartpos-test-provision <<UNIT
[Unit]
Description=system test: factory provisioning of the data partition
After=etc-smartpos.mount systemd-tmpfiles-setup.service
Requires=etc-smartpos.mount
Before=smartpos-paymentd.service smartpos-scannerd.service
ConditionPathExists=!/etc/smartpos/smartpos-paymentd.toml
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh $ROOT/tests/system/provision.sh $WORK/provision
UNIT
    unit smartpos-test-acquirer <<UNIT
[Unit]
Description=system test: the acquirer emulator on 127.0.0.1:8443
[Service]
ExecStart=$TARGET/debug/smartpos-acquirer-sim --listen 127.0.0.1:8443 --pki-dir $WORK/pki
UNIT
    unit smartpos-system-test <<UNIT
[Unit]
Description=system test: the stack as booted (tests/system/stack.sh), then power off
After=multi-user.target smartpos-test-acquirer.service
[Service]
# Not a oneshot: the boot must finish (multi-user.target reached, the boot transaction done)
# for systemd-analyze critical-chain; stack.sh waits for that itself.
Type=exec
ExecStart=/bin/sh -c 'sh $ROOT/tests/system/stack.sh >$WORK/stack-$phase.log 2>&1; echo \$? >$WORK/rc-stack-$phase; systemctl --no-block poweroff'
UNIT
    for u in smartpos-test-camera smartpos-test-provision smartpos-test-acquirer smartpos-system-test; do
        ln -sf "/etc/systemd/system/$u.service" "$d/etc/systemd/system/multi-user.target.wants/$u.service"
    done
}

# provision: the acquirer emulator's throwaway PKI and a terminal's configuration for it, which
# the emulator writes itself (so the two cannot drift), plus the daemons' configuration: what a
# terminal gets at the factory (tests/system/provision.sh installs it on the first boot).
provision() {
    "$TARGET/debug/smartpos-acquirer-sim" --listen 127.0.0.1:8443 --pki-dir "$WORK/pki" \
        --write-terminal-config "$WORK/provision" --terminal-dir /etc/smartpos --pace emulated || return 1
    cp "$ROOT/tests/system/smartpos-paymentd.toml" "$ROOT/tests/system/smartpos-scannerd.toml" "$WORK/provision/"
}

if [ "$STACK" = 1 ]; then
    T1=$(date +%s)
    # The factory image's data partition: empty, labelled as the .wks makes it.
    # Each step's output goes to prepare.log, printed when one fails: CI shows only this output.
    prep=$WORK/prepare.log
    : >"$prep"
    step=
    if ! { step="the factory provisioning (acquirer PKI, merchant config)" && provision >>"$prep" 2>&1 &&
        step="the data partition image" && truncate -s 128M "$WORK/data.img" >>"$prep" 2>&1 &&
        mkfs.ext4 -q -F -L smartpos-data "$WORK/data.img" >>"$prep" 2>&1 &&
        step="slot A" && make_slot "$OUTDIR/slot-a" A 1 >>"$prep" 2>&1 &&
        step="slot B" && make_slot "$OUTDIR/slot-b" B 2 >>"$prep" 2>&1; }; then
        FAILED=$((FAILED + 1))
        echo "  FAIL stack: cannot prepare $step:"
        sed 's/^/    | /' "$prep" | tail -40
    else
        for phase in 1 2; do
            slot=$([ "$phase" = 1 ] && echo a || echo b)
            say "part 2, the stack: booting slot ${slot^^} under systemd (hard limit ${STACK_TIMEOUT} s)"
            TB=$(date +%s)
            vm "$STACK_TIMEOUT" "$WORK/console-stack-$phase.log" \
                "harness.mode=systemd smartpos.test-phase=$phase systemd.unit=multi-user.target systemd.show_status=error" \
                -virtfs "local,path=$OUTDIR/slot-$slot,mount_tag=stage,security_model=none,readonly=on,multidevs=remap" \
                -drive "file=$WORK/data.img,if=virtio,format=raw"
            say "boot $phase took $(($(date +%s) - TB)) s (stack.sh's log has each check's time since the kernel started)"
            verdict "$WORK/results-stack-$phase" "$WORK/rc-stack-$phase" "stack boot $phase" "$WORK/console-stack-$phase.log"
        done
    fi
    say "part 2 took $(($(date +%s) - T1)) s"
fi

say "took $(($(date +%s) - T0)) s"
echo "system-test: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" = 0 ]
