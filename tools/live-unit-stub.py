#!/usr/bin/python3
"""Stand-in for a smartpos daemon, for tools/live-test-units.sh.

Installed as /usr/bin/smartpos-<x> inside a throwaway container, it behaves like the real
daemon towards systemd (READY, watchdog, exit codes) and probes what the unit's sandbox
lets it do, so the units are tested under a real systemd before any daemon exists.

Behaviour is chosen by the first line of /etc/smartpos/<x>.toml (`mode = "..."`):
  ok            probe, report the results in STATUS=, then ping the watchdog forever
  config-error  exit 78 at once (EX_CONFIG: the unit must not restart)
  no-bus        exit 69 at once (EX_UNAVAILABLE: the unit must restart)
  hang          READY, then stop pinging (the watchdog must kill it)

Probes never send a packet: the container has no route, so a permitted connect fails with
ENETUNREACH, and a connect the unit's IP filter blocks fails with EPERM first.
"""

import errno
import os
import pwd
import socket
import subprocess
import sys
import time

BUS_NAMES = {
    "smartpos-scannerd": "org.smartpos.Scanner1",
    "smartpos-paymentd": "org.smartpos.Payment1",
    "smartpos-netd": "org.smartpos.Network1",
    "smartpos-otad": "org.smartpos.Update1",
}


def notify(msg: str) -> None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(path)
        s.sendall(msg.encode())


def mode(daemon: str) -> str:
    try:
        with open(f"/etc/smartpos/{daemon}.toml") as f:
            first = f.readline()
    except OSError:
        return "ok"
    return first.split("=", 1)[1].strip().strip('"') if "=" in first else "ok"


def connect_errno(family: int, addr: tuple) -> str:
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
    except OSError as e:
        return f"socket:{errno.errorcode.get(e.errno, e.errno)}"
    s.settimeout(2)
    try:
        s.connect(addr)
        return "connected"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
    finally:
        s.close()


def writable(path: str) -> str:
    try:
        with open(path, "w") as f:
            f.write("x")
        os.unlink(path)
        return "yes"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def probes(daemon: str) -> dict:
    r = {"user": pwd.getpwuid(os.getuid()).pw_name}
    status = open("/proc/self/status").read().splitlines()
    fields = dict(l.split(":", 1) for l in status if ":" in l)
    r["capeff"] = fields["CapEff"].strip()
    r["nonewprivs"] = fields["NoNewPrivs"].strip()
    r["groups"] = "+".join(sorted(str(g) for g in os.getgroups()))
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        r["state_write"] = writable(os.path.join(state, "probe"))
    runtime = os.environ.get("RUNTIME_DIRECTORY")
    if runtime:
        r["runtime_write"] = writable(os.path.join(runtime, "probe"))
    r["etc_write"] = writable("/etc/smartpos/probe")
    r["usr_write"] = writable("/usr/probe")
    r["tmp_write"] = writable("/tmp/probe")
    r["config_read"] = "yes" if os.access("/etc/smartpos", os.R_OK) else "no"
    r["lan"] = connect_errno(socket.AF_INET, ("192.168.255.1", 443))
    r["public"] = connect_errno(socket.AF_INET, ("1.1.1.1", 443))
    r["loopback"] = connect_errno(socket.AF_INET, ("127.0.0.1", 9))
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close()
        r["netlink"] = "yes"
    except OSError as e:
        r["netlink"] = errno.errorcode.get(e.errno, str(e.errno))
    try:
        r["ping_socket"] = "yes"
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close()
    except OSError as e:
        r["ping_socket"] = errno.errorcode.get(e.errno, str(e.errno))
    try:
        socket.getaddrinfo("localhost", 443)
        r["resolve"] = "yes"
    except OSError as e:
        r["resolve"] = type(e).__name__
    r["ca_bundle"] = "yes" if os.access("/etc/ssl/certs/ca-certificates.crt", os.R_OK) else "no"
    r["journal_socket"] = "yes" if os.path.exists("/run/systemd/journal/socket") else "no"
    r["var_log"] = "visible" if os.path.exists("/var/log") else "hidden"
    r["links"] = "yes" if os.access("/sys/class/net/lo/operstate", os.R_OK) else "no"
    r["routes"] = "yes" if os.access("/proc/self/net/route", os.R_OK) else "no"
    name = BUS_NAMES[daemon]
    # Where a zbus or libdbus client looks: the environment, else /var/run (not /run).
    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/var/run/dbus/system_bus_socket")
    p = subprocess.run(
        ["/usr/bin/busctl", f"--address={address}", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
         "org.freedesktop.DBus", "RequestName", "su", name, "4"],
        capture_output=True, text=True, timeout=10)
    out = (p.stdout + p.stderr).strip()
    r["bus_own"] = "yes" if out == "u 1" else ("denied" if "denied" in out.lower() else out.replace(" ", "_")[:40])
    return r


def main() -> int:
    daemon = os.path.basename(sys.argv[0])
    m = mode(daemon)
    if m == "config-error":
        print(f"{daemon}: /etc/smartpos/{daemon}.toml is bad (stand-in)", file=sys.stderr)
        return 78
    if m == "no-bus":
        print(f"{daemon}: system bus unavailable (stand-in)", file=sys.stderr)
        return 69
    results = probes(daemon) if m == "ok" else {}
    status = " ".join(f"{k}={v}" for k, v in results.items()) or m
    notify(f"READY=1\nSTATUS={status}")
    usec = int(os.environ.get("WATCHDOG_USEC", "0"))
    while True:
        time.sleep(usec / 2e6 if usec else 60)
        if m != "hang":
            notify("WATCHDOG=1")


if __name__ == "__main__":
    sys.exit(main())
