#!/bin/sh
# Capture and HID checks against real kernel drivers, run as root inside the system-test VM
# (tests/system/README.md, "How the VM is built"): vivid loaded with n_devs=1
# node_types=0x1, uinput and evdev loaded.
#
#   HW_PROBE=target/debug/examples/hw-probe sh crates/scanner/vm/guest-probe.sh
#
# Checks: GREY 1280x720, YUYV and NV12 capture; a driver unbind/bind (the kernel's unplug
# path) seen as Streaming → Reopening → Absent → Streaming; and keyboard-wedge scanners on
# uinput (grab, whole codes, URL, two at once, unplug, replug). Exit status: failures counted.
B=${HW_PROBE:-target/debug/examples/hw-probe}
OUT=${OUT:-/tmp}
fail=0
check() { if grep -q "$1" "$2"; then grep "$1" "$2"; else echo "FAILED: $3"; cat "$2"; fail=$((fail + 1)); fi; }

$B camera vivid --size 1280x720 --frames 30 > $OUT/cam-grey.log 2>&1
check 'CAMERA-OK .* Grey 1280x720' $OUT/cam-grey.log "GREY capture"
$B camera /dev/video0 --size 640x480 --frames 30 --formats yuyv > $OUT/cam-yuyv.log 2>&1
check 'CAMERA-OK .* Yuyv 640x480' $OUT/cam-yuyv.log "YUYV capture"
$B camera vivid --size 640x480 --frames 30 --formats nv12 > $OUT/cam-nv12.log 2>&1
check 'CAMERA-OK .* Nv12 640x480' $OUT/cam-nv12.log "NV12 capture"

$B camera vivid --size 640x480 --frames 5 --watch 14 > $OUT/cam-replug.log 2>&1 &
pid=$!
sleep 4; echo vivid.0 > /sys/bus/platform/drivers/vivid/unbind
sleep 4; echo vivid.0 > /sys/bus/platform/drivers/vivid/bind
wait $pid
check 'WATCH states=\[Streaming,Reopening,Absent,Streaming\]' $OUT/cam-replug.log "camera unplug/replug"

$B hid > $OUT/hid.log 2>&1
check 'HID-OK' $OUT/hid.log "uinput scanners"

echo "guest-probe: $fail failed"
exit $fail
