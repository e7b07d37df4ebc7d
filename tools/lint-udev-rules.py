#!/usr/bin/env python3
"""Check udev rules files for the mistakes udev itself only logs at runtime.

systemd 252 has no `udevadm verify` (it came in 254), and a rules file with a typo
loads anyway: udev skips the broken rule and the scanner simply never gets its group.
This catches, per rule line: unknown keys, a match operator on an assign-only key and
the reverse, unquoted values, GOTO without a LABEL, and GROUP/OWNER names that neither
the project's sysusers.d file nor the usual system groups define.

    tools/lint-udev-rules.py [--sysusers FILE] RULES...
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

MATCH_ONLY = {"ACTION", "DEVPATH", "KERNEL", "KERNELS", "SUBSYSTEM", "SUBSYSTEMS", "DRIVER", "DRIVERS",
              "ATTRS", "TAGS", "TEST", "RESULT", "CONST", "PROGRAM"}
ASSIGN_ONLY = {"OWNER", "GROUP", "MODE", "RUN", "LABEL", "GOTO", "IMPORT", "OPTIONS", "SECLABEL"}
BOTH = {"NAME", "SYMLINK", "ATTR", "SYSCTL", "ENV", "TAG"}
WITH_ATTR = {"ATTR", "ATTRS", "SYSCTL", "ENV", "TEST", "CONST", "IMPORT", "RUN", "SECLABEL"}
MATCH_OPS = {"==", "!="}
ASSIGN_OPS = {"=", "+=", "-=", ":="}
# Groups every systemd system has (basic.conf) or the stock udev rules use.
SYSTEM_GROUPS = {"root", "tty", "disk", "lp", "kmem", "dialout", "cdrom", "tape", "audio", "video",
                 "input", "kvm", "render", "sgx", "utmp", "wheel", "adm", "systemd-journal", "plugdev"}

TOKEN = re.compile(r'\s*(?P<key>[A-Z_]+)(?:\{(?P<attr>[^}]*)\})?\s*(?P<op>==|!=|\+=|-=|:=|=)\s*'
                   r'(?P<q>[er]?)"(?P<val>(?:[^"\\]|\\.)*)"\s*(?:,|$)')


def sysusers_groups(path: Path) -> set[str]:
    groups = set()
    for line in path.read_text().splitlines():
        f = line.split()
        if len(f) >= 2 and f[0] in ("u", "g"):
            groups.add(f[1])
        elif len(f) >= 3 and f[0] == "m":
            groups.add(f[2])
    return groups


def logical_lines(text: str):
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = n
        if raw.endswith("\\"):
            buf += raw[:-1] + " "
            continue
        yield start, buf + raw
        buf = ""
    if buf:
        yield start, buf


def lint(path: Path, known_groups: set[str]) -> list[str]:
    errors, gotos, labels = [], [], set()
    for n, line in logical_lines(path.read_text()):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        pos, has_match, has_token = 0, False, False
        while pos < len(s):
            m = TOKEN.match(s, pos)
            if not m:
                errors.append(f"{path}:{n}: cannot parse from {s[pos:pos + 30]!r} (expected KEY==\"value\" tokens separated by commas)")
                break
            pos, has_token = m.end(), True
            key, attr, op, val = m["key"], m["attr"], m["op"], m["val"]
            if key not in MATCH_ONLY | ASSIGN_ONLY | BOTH:
                errors.append(f"{path}:{n}: unknown key {key}")
                continue
            if key in WITH_ATTR and attr is None and key not in ("RUN", "IMPORT", "SECLABEL", "TEST"):
                errors.append(f"{path}:{n}: {key} needs {{name}}")
            if key in MATCH_ONLY and op not in MATCH_OPS:
                errors.append(f"{path}:{n}: {key} can only be matched (== or !=), not assigned with {op}")
            if key in ASSIGN_ONLY and op not in ASSIGN_OPS:
                errors.append(f"{path}:{n}: {key} can only be assigned, not matched with {op}")
            has_match |= op in MATCH_OPS
            if key == "GOTO":
                gotos.append((n, val))
            elif key == "LABEL":
                labels.add(val)
            elif key in ("GROUP", "OWNER") and val not in known_groups and not val.isdigit():
                errors.append(f"{path}:{n}: {key}=\"{val}\" is neither in sysusers.d nor a standard group")
            elif key == "MODE" and not re.fullmatch(r"0?[0-7]{3}", val):
                errors.append(f"{path}:{n}: MODE=\"{val}\" is not an octal mode")
        if has_token and not has_match and "LABEL" not in s and "GOTO" not in s:
            # An assignment without any match applies to every device that reaches it.
            # That is intended only after a GOTO guard, so it must follow one.
            if not gotos:
                errors.append(f"{path}:{n}: assignment without a match and no GOTO guard before it")
    for n, target in gotos:
        if target not in labels:
            errors.append(f"{path}:{n}: GOTO=\"{target}\" has no LABEL=\"{target}\" in this file")
    return errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sysusers", type=Path, action="append", default=[])
    ap.add_argument("rules", type=Path, nargs="+")
    args = ap.parse_args()
    groups = set(SYSTEM_GROUPS)
    for f in args.sysusers:
        groups |= sysusers_groups(f)
    errors = [e for r in args.rules for e in lint(r, groups)]
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
