#!/usr/bin/env bash
# Run packaging/udev/70-smartpos-devices.rules through udev's own rule engine, on real
# kernel devices: a vivid camera (capture and output nodes) and two uinput keyboards, one
# with a scanner vendor id (Honeywell 0c2e) and one without (Logitech 046d).
#
#   tools/vm-test-udev.sh        # root; about 30 s after the first run (kernel cached)
#
# This machine has neither cameras nor uinput, so a Debian kernel boots under qemu (the
# harness of tests/system/README.md: busybox initramfs, this machine's root over
# 9p, read-only, the test in a chroot of it) and `udevadm test` runs there. Needs the
# Debian packages qemu-system-x86, busybox-static, kmod and udev (installed if missing).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PASSED=0
FAILED=0

if [ "$(id -u)" != 0 ]; then
    echo "vm-test-udev: needs root"
    exit 77
fi
missing=()
for t in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static depmod:kmod udevadm:udev; do
    command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"; } >/dev/null 2>&1 || { echo "vm-test-udev: cannot install ${missing[*]}"; exit 1; }
fi

# --- kernel and initramfs, cached per kernel version --------------------------------------
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$KPKG" ] || { echo "vm-test-udev: apt-cache knows no linux-image-amd64 (run apt-get update)"; exit 1; }
KV=${KPKG#linux-image-}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/smartpos-vm/$KV
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci 9pnet 9pnet_virtio netfs
fscache 9p rc-core cec mc videodev videobuf2-common videobuf2-v4l2 videobuf2-memops videobuf2-vmalloc
videobuf2-dma-contig v4l2-dv-timings v4l2-tpg vivid uinput evdev"
if [ ! -f "$CACHE/initramfs.cpio.gz" ] || [ ! -f "$CACHE/vmlinux" ]; then
    rm -rf "$CACHE" && mkdir -p "$CACHE/kroot" "$CACHE/initramfs"
    (
        set -e
        cd "$CACHE"
        apt-get download "$KPKG" >/dev/null 2>&1
        M=./lib/modules/$KV
        dpkg-deb --fsys-tarfile "$KPKG"_*.deb | tar -x -C kroot "./boot/vmlinuz-$KV" "$M/modules.order" \
            "$M/modules.builtin" "$M/modules.builtin.modinfo" "$M/kernel/drivers/media" "$M/kernel/drivers/virtio" \
            "$M/kernel/drivers/input" "$M/kernel/net/9p" "$M/kernel/fs/9p" "$M/kernel/fs/netfs" "$M/kernel/fs/fscache"
        rm -f "$KPKG"_*.deb
        depmod -b kroot "$KV"
        # PVH direct boot wants the uncompressed image.
        off=$(grep -abo $'\xfd7zXZ' "kroot/boot/vmlinuz-$KV" | head -1 | cut -d: -f1)
        # xz complains about the bytes after its stream; the image before them is whole.
        tail -c +$((off + 1)) "kroot/boot/vmlinuz-$KV" | xz -dc >vmlinux 2>/dev/null || true
        [ -s vmlinux ]
        cd initramfs
        mkdir -p bin proc sys dev newroot mods
        cp /bin/busybox bin/
        for a in $(busybox --list); do [ "$a" = busybox ] || ln -sf busybox "bin/$a"; done
        : >load.order
        for m in $MODULES; do
            f=$(modprobe -d ../kroot -S "$KV" --show-depends "$m" 2>/dev/null | awk '/^insmod/ { print $2 }' | tail -1)
            [ -n "$f" ] || continue
            cp "$f" mods/ && echo "mods/$(basename "$f")" >>load.order
        done
        cat >init <<'EOF'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for a in $(cat /proc/cmdline); do case $a in harness.test=*) TEST=${a#*=};; harness.work=*) WORK=${a#*=};; esac; done
while read -r m; do
    case $m in
        */vivid.ko) insmod "/$m" n_devs=1 node_types=0x101 num_inputs=1 input_types=0x3 num_outputs=1 output_types=0x1 ;;
        *) insmod "/$m" ;;
    esac
done < /load.order
R=/newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot $R
mount -t tmpfs tmp $R/tmp; mount -t tmpfs run $R/run; mount --bind /dev $R/dev
mount -t proc proc $R/proc; mount -t sysfs sys $R/sys
mkdir -p $R$WORK 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 work $R$WORK
chroot $R /bin/sh -c "cd $WORK && exec /bin/sh $TEST"; echo $? > $R$WORK/rc; sync
poweroff -f
EOF
        chmod 0755 init
        find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >../initramfs.cpio.gz
    ) || { echo "vm-test-udev: cannot prepare kernel $KV"; rm -rf "$CACHE"; exit 1; }
    rm -rf "$CACHE/kroot" "$CACHE/initramfs"
fi

# --- the test, inside the guest -------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vm-udev.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then echo "vm-test-udev: keeping $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
cp "$ROOT/packaging/udev/70-smartpos-devices.rules" "$WORK/"
cat >"$WORK/uinput.py" <<'EOF'
# Two keyboards through uinput: what a USB scanner and a cashier's keyboard look like.
import fcntl, os, struct, sys, time
UI_SET_EVBIT, UI_SET_KEYBIT, UI_DEV_SETUP, UI_DEV_CREATE = 0x40045564, 0x40045565, 0x405C5503, 0x5501
UI_GET_SYSNAME = 0x80000000 | (64 << 16) | (0x55 << 8) | 44
def make(name, vendor, product):
    fd = os.open("/dev/uinput", os.O_WRONLY | os.O_NONBLOCK)
    fcntl.ioctl(fd, UI_SET_EVBIT, 1)  # EV_KEY
    for key in range(1, 128):
        fcntl.ioctl(fd, UI_SET_KEYBIT, key)
    fcntl.ioctl(fd, UI_DEV_SETUP, struct.pack("HHHH80sI", 0x03, vendor, product, 0x110, name.encode(), 0))
    fcntl.ioctl(fd, UI_DEV_CREATE)
    buf = bytearray(64)
    fcntl.ioctl(fd, UI_GET_SYSNAME, buf)
    sysname = buf.split(b"\0")[0].decode()
    for _ in range(50):
        events = [e for e in os.listdir(f"/sys/devices/virtual/input/{sysname}") if e.startswith("event")]
        if events:
            return fd, events[0]
        time.sleep(0.1)
    sys.exit(f"no event node for {sysname}")
held = [make("Honeywell 1900 scanner (test)", 0x0C2E, 0x0B61), make("Logitech keyboard (test)", 0x046D, 0xC31C)]
with open("devices", "w") as f:
    f.write(f"{held[0][1]} {held[1][1]}\n")
time.sleep(600)
EOF
cat >"$WORK/guest.sh" <<'EOF'
# Runs in a chroot of the host's root, read-only, with /run a tmpfs.
mkdir -p /run/udev/rules.d
cp 70-smartpos-devices.rules /run/udev/rules.d/
# The terminal's accounts: GROUP="smartpos-scanner" must resolve as it would there.
cp /etc/group /run/group && echo 'smartpos-scanner:x:990:' >>/run/group && mount --bind /run/group /etc/group
python3 uinput.py & pid=$!
for _ in $(seq 50); do [ -s devices ] && break; sleep 0.1; done
read -r scanner keyboard < devices
udevadm test --action=add "/sys/class/input/$scanner" >scanner.txt 2>&1
udevadm test --action=add "/sys/class/input/$keyboard" >keyboard.txt 2>&1
udevadm test --action=add /sys/class/video4linux/video0 >video0.txt 2>&1
udevadm test --action=add /sys/class/video4linux/video1 >video1.txt 2>&1
echo "$scanner $keyboard" >nodes
kill $pid
EOF

timeout 180 qemu-system-x86_64 -accel tcg -m 1024 -smp 1 -nographic -no-reboot -net none \
    -kernel "$CACHE/vmlinux" -initrd "$CACHE/initramfs.cpio.gz" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$WORK,mount_tag=work,security_model=none,multidevs=remap" \
    -append "console=ttyS0 quiet panic=-1 harness.work=$WORK harness.test=$WORK/guest.sh" \
    </dev/null >"$WORK/console.log" 2>&1
if [ "$(cat "$WORK/rc" 2>/dev/null)" != 0 ] || [ ! -s "$WORK/nodes" ]; then
    echo "vm-test-udev: the guest did not finish"
    tail -20 "$WORK/console.log"
    exit 1
fi
read -r SCANNER _ <"$WORK/nodes"

ok() { PASSED=$((PASSED + 1)); [ "${VERBOSE:-0}" = 1 ] && echo "ok   $*"; return 0; }
bad() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
has() { # has FILE REGEX WHAT
    if grep -Eq "$2" "$WORK/$1"; then ok "$3"; else bad "$3 (no /$2/ in udevadm test output)"; fi
}
hasnt() {
    if grep -Eq "$2" "$WORK/$1"; then bad "$3 ($(grep -Em1 "$2" "$WORK/$1"))"; else ok "$3"; fi
}

has scanner.txt "^DEVLINKS=.*/dev/smartpos/scanner-$SCANNER" "scanner: /dev/smartpos/scanner-$SCANNER"
has scanner.txt '^LIBINPUT_IGNORE_DEVICE=1$' "scanner: hidden from libinput"
has scanner.txt '^SMARTPOS_SCANNER=1$' "scanner: recognised by its vendor id"
# udevadm test really applies permissions to the node; 990 is the guest's smartpos-scanner.
has scanner.txt "Setting permissions /dev/input/$SCANNER, uid=0, gid=990, mode=0640" \
    "scanner: node is root:smartpos-scanner 0640"
hasnt scanner.txt '70-smartpos-devices.rules.*([Ii]nvalid|[Ff]ailed|[Uu]nknown|[Ii]gnoring)' \
    "scanner: our rules load without complaint"
hasnt keyboard.txt '^(SMARTPOS_SCANNER|LIBINPUT_IGNORE_DEVICE)=|^DEVLINKS=.*smartpos' \
    "keyboard: left alone (no smartpos link, still seen by libinput)"
hasnt keyboard.txt 'gid=990' "keyboard: not given to smartpos-scanner"
has video0.txt '^DEVLINKS=.*/dev/smartpos/camera-video0' "capture node: /dev/smartpos/camera-video0"
has video0.txt "Setting permissions /dev/video0, uid=0, gid=$(getent group video | cut -d: -f3), mode=0660" \
    "capture node: stays group video, 0660"
hasnt video1.txt '^DEVLINKS=.*smartpos' "output node: no camera link"

echo "vm-test-udev: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
