# A USB keyboard-wedge barcode scanner, made with uinput: what smartpos-scannerd sees when a
# cashier plugs one in. Used by tests/system/guest.sh inside the system-test VM (root only).
#
#   python3 wedge-scanner.py NAME VENDOR PRODUCT CODE PREFIX
#
# Creates the device, writes its event node name (event3) to PREFIX-node, waits until
# PREFIX-go exists (the test touches it once `posctl scan` has armed the scanner), types
# CODE and Enter the way a US-layout scanner does, then keeps the device plugged in until
# PREFIX-stop exists, so the daemon reads the keys before the device goes away (unplug).
# A second reader, opened before the typing, counts the key events that reached it despite
# the daemon's grab and writes the count to PREFIX-leaked: a grabbed scanner's keys must
# not reach the cashier's app.
import fcntl
import os
import struct
import sys
import time

UI_SET_EVBIT, UI_SET_KEYBIT, UI_DEV_SETUP, UI_DEV_CREATE = 0x40045564, 0x40045565, 0x405C5503, 0x5501
UI_DEV_DESTROY = 0x5502
UI_GET_SYSNAME = 0x80000000 | (64 << 16) | (0x55 << 8) | 44
EV_SYN, EV_KEY, BUS_USB = 0, 1, 0x03
DIGITS = {str(d): 1 + d for d in range(1, 10)} | {"0": 11}
KEY_ENTER = 28


def wait_for(path, seconds):
    end = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > end:
            sys.exit(f"wedge-scanner: {path} did not appear within {seconds} s")
        time.sleep(0.02)


def emit(fd, etype, code, value):
    now = time.time()
    os.write(fd, struct.pack("llHHi", int(now), int(now % 1 * 1e6), etype, code, value))


def main():
    name, vendor, product, code, prefix = sys.argv[1:6]
    if not code.isdigit():
        sys.exit("wedge-scanner: payment codes are digits here")
    fd = os.open("/dev/uinput", os.O_WRONLY)
    fcntl.ioctl(fd, UI_SET_EVBIT, EV_KEY)
    for key in range(1, 128):
        fcntl.ioctl(fd, UI_SET_KEYBIT, key)
    setup = struct.pack("HHHH80sI", BUS_USB, int(vendor, 0), int(product, 0), 1, name.encode(), 0)
    fcntl.ioctl(fd, UI_DEV_SETUP, setup)
    fcntl.ioctl(fd, UI_DEV_CREATE)
    buf = bytearray(64)
    fcntl.ioctl(fd, UI_GET_SYSNAME, buf)
    sysdir = "/sys/devices/virtual/input/" + buf.split(b"\0")[0].decode()
    for _ in range(100):
        nodes = [e for e in os.listdir(sysdir) if e.startswith("event")]
        if nodes:
            break
        time.sleep(0.05)
    else:
        sys.exit(f"wedge-scanner: no event node under {sysdir}")
    with open(prefix + "-node", "w") as f:
        f.write(nodes[0] + "\n")

    # Plugged before the udev check and the camera sale, typed only at the HID sale: on a
    # loaded machine under TCG that is minutes later. The boot's own limit bounds the wait.
    wait_for(prefix + "-go", 600)
    spy = os.open("/dev/input/" + nodes[0], os.O_RDONLY | os.O_NONBLOCK)
    # A real scanner sends a key every few ms; 2 ms here, as hw-probe does.
    for key in [DIGITS[c] for c in code] + [KEY_ENTER]:
        for value in (1, 0):
            emit(fd, EV_KEY, key, value)
            emit(fd, EV_SYN, 0, 0)
            time.sleep(0.002)
    time.sleep(0.2)
    leaked = 0
    try:
        while True:
            data = os.read(spy, 24 * 64)
            leaked += sum(1 for i in range(0, len(data), 24) if struct.unpack_from("llHHi", data, i)[2] == EV_KEY)
    except BlockingIOError:
        pass
    os.close(spy)
    with open(prefix + "-leaked", "w") as f:
        f.write(f"{leaked}\n")
    wait_for(prefix + "-stop", 600)
    fcntl.ioctl(fd, UI_DEV_DESTROY)
    os.close(fd)


if __name__ == "__main__":
    main()
