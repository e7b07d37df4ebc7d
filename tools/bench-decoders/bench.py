"""Side-by-side decoder benchmark (driven by run.sh).

Every decoder gets the same 8-bit grey pixels: images are converted once with Pillow
(convert('L'), EXIF orientation NOT applied, so BoofCV's corner labels line up), BoofCV
photos are scaled so the long side is at most 1280 px with Image.BOX (labels scaled with
them), and the results are cached as PGM under target/bench-decoders/.

Scoring follows docs/test-data.md:
- BoofCV: a labelled code counts as read when a decoder returned a payload and the centre
  of its polygon lies in the labelled quad or the quad's centre lies in its polygon; each
  label and each detection matches at most once.
- zxing-cpp blackbox: payload equals <name>.txt after \\r\\n -> \\n; "wrong" counts images
  where something was returned but none of it matched. falsepositives-*: any read is wrong.
Times are decode calls only (numpy array in, results out for Python; the Rust binary
times Decoder::decode on an in-memory image). Decoders take turns image by image.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
import zxingcpp
from pyzbar import pyzbar

LONG_SIDE = 1280


def parse_labels(path):
    rows = [l.split() for l in path.read_text().splitlines() if l.strip() and not l.startswith("#")]
    if rows and rows[0][0] == "SETS":
        quads = [[float(v) for v in r] for r in rows[1:] if len(r) >= 8]
        return [[(q[i], q[i + 1]) for i in range(0, 8, 2)] for q in quads]
    pts = [(float(r[0]), float(r[1])) for r in rows if len(r) >= 2]
    return [pts[i:i + 4] for i in range(0, len(pts) - 3, 4)]


def prepare(data, cache, only):
    """Return a list of items: dict(set, cat, name, pgm, labels | truth | fp)."""
    items = []
    if only in (None, "boofcv"):
        base = data / "boofcv-qrcodes-v3"
        if not base.is_dir():
            sys.exit(f"{base} is missing: point --data or SMARTPOS_QR_DATA at the qr-data folder")
        for cat in sorted(p for p in base.iterdir() if p.is_dir()):
            for img in sorted(cat.iterdir()):
                if img.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                    continue
                label = img.with_suffix(".txt")
                if not label.exists():
                    continue
                out = cache / "boofcv" / cat.name / (img.stem + ".pgm")
                meta = out.with_suffix(".json")
                if not (out.exists() and meta.exists()):
                    out.parent.mkdir(parents=True, exist_ok=True)
                    im = Image.open(img)  # no ImageOps.exif_transpose: labels are in stored pixels
                    im = im.convert("L")
                    w, h = im.size
                    s = min(1.0, LONG_SIDE / max(w, h))
                    if s < 1.0:
                        im = im.resize((round(w * s), round(h * s)), Image.BOX)
                    sx, sy = im.size[0] / w, im.size[1] / h
                    quads = [[(x * sx, y * sy) for x, y in q] for q in parse_labels(label)]
                    im.save(out)
                    meta.write_text(json.dumps({"labels": quads}))
                labels = json.loads(meta.read_text())["labels"]
                items.append(dict(set="boofcv", cat=cat.name, name=img.name, pgm=str(out), labels=labels))
    if only in (None, "blackbox"):
        base = data / "zxing-cpp-blackbox"
        if not base.is_dir():
            sys.exit(f"{base} is missing: point --data or SMARTPOS_QR_DATA at the qr-data folder")
        for cat in sorted(p for p in base.iterdir() if p.is_dir()):
            for img in sorted(cat.iterdir()):
                if img.suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp"):
                    continue
                out = cache / "blackbox" / cat.name / (img.stem + ".pgm")
                if not out.exists():
                    out.parent.mkdir(parents=True, exist_ok=True)
                    Image.open(img).convert("L").save(out)
                truth = img.with_suffix(".txt")
                item = dict(set="blackbox", cat=cat.name, name=img.name, pgm=str(out))
                if cat.name.startswith("falsepositives"):
                    item["fp"] = True
                elif truth.exists():
                    item["truth"] = truth.read_text(encoding="utf-8", errors="replace")
                else:
                    continue
                items.append(item)
    return items


class RustDecoder:
    """decode-bench `files` as a long-lived child: one path in, one JSON line out."""

    def __init__(self, binary, decoder, extra=()):
        self.proc = subprocess.Popen([binary, "files", "--decoder", decoder, *extra], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def __call__(self, item, arr):
        self.proc.stdin.write(item["pgm"] + "\n")
        self.proc.stdin.flush()
        r = json.loads(self.proc.stdout.readline())
        return [(c["text"], [tuple(p) for p in c["corners"]]) for c in r.get("codes", [])], r.get("ms", float("nan"))

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


ZX_FORMATS = (zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.Code128)


def zxingcpp_decode(item, arr):
    t = time.perf_counter()
    res = zxingcpp.read_barcodes(arr, formats=ZX_FORMATS, text_mode=zxingcpp.TextMode.Plain)
    ms = (time.perf_counter() - t) * 1e3
    codes = []
    for r in res:
        p = r.position
        codes.append((r.text, [(p.top_left.x, p.top_left.y), (p.top_right.x, p.top_right.y),
                               (p.bottom_right.x, p.bottom_right.y), (p.bottom_left.x, p.bottom_left.y)]))
    return codes, ms


ZBAR_SYMBOLS = [pyzbar.ZBarSymbol.QRCODE, pyzbar.ZBarSymbol.CODE128]


def zbar_decode(item, arr):
    h, w = arr.shape
    t = time.perf_counter()
    res = pyzbar.decode((arr.tobytes(), w, h), symbols=ZBAR_SYMBOLS)
    ms = (time.perf_counter() - t) * 1e3
    codes = []
    for r in res:
        poly = [(p.x, p.y) for p in r.polygon] or [(r.rect.left, r.rect.top)]
        codes.append((r.data.decode("utf-8", errors="replace"), poly))
    return codes, ms


def inside(p, poly):
    x, y = p
    n = len(poly)
    if n < 3:
        return False
    c = False
    j = n - 1
    for i in range(n):
        (xi, yi), (xj, yj) = poly[i], poly[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            c = not c
        j = i
    return c


def centre(poly):
    return (sum(p[0] for p in poly) / len(poly), sum(p[1] for p in poly) / len(poly))


def score_boofcv(labels, codes):
    used = set()
    hits = 0
    for q in labels:
        qc = centre(q)
        for k, (_text, poly) in enumerate(codes):
            if k in used or not poly:
                continue
            if inside(centre(poly), q) or inside(qc, poly):
                used.add(k)
                hits += 1
                break
    return hits


def norm(s):
    return s.replace("\r\n", "\n")


def pct(v, q):
    v = sorted(x for x in v if x == x)
    if not v:
        return float("nan")
    return v[min(len(v) - 1, round((len(v) - 1) * q))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--rust", required=True)
    ap.add_argument("--data")
    ap.add_argument("--only", choices=["boofcv", "blackbox"])
    ap.add_argument("--with-rqrr", action="store_true", help="also run rqrr alone (slow on some photos)")
    ap.add_argument("--per-image", help="write per-image results as JSON lines here")
    ap.add_argument("--rust-args", default="", help="extra flags for decode-bench files (tuning runs)")
    a = ap.parse_args()
    root = Path(a.root)
    data = Path(a.data or os.environ.get("SMARTPOS_QR_DATA") or root.parent / "shared" / "qr-data")
    cache = root / "target" / "bench-decoders"
    items = prepare(data, cache, a.only)
    print(f"{len(items)} images from {data}; PGM cache {cache}", flush=True)

    decoders = {"smartpos": RustDecoder(a.rust, "cascade", a.rust_args.split()),
                "zxingcpp": zxingcpp_decode,
                "zbar": zbar_decode}
    if a.with_rqrr:
        decoders["rqrr"] = RustDecoder(a.rust, "rqrr")
    # Decoders take turns on each image, so a busy moment on this shared machine falls on
    # all of them alike rather than on whichever ran during it.
    results = {name: [] for name in decoders}
    t0 = time.time()
    for item in items:
        arr = np.asarray(Image.open(item["pgm"]))
        for name, dec in decoders.items():
            results[name].append(dec(item, arr))
    for dec in decoders.values():
        if isinstance(dec, RustDecoder):
            dec.close()
    print(f"  decoded in {time.time() - t0:.1f} s", flush=True)
    names = list(results)

    if a.per_image:
        with open(a.per_image, "w") as f:
            for k, i in enumerate(items):
                f.write(json.dumps({"set": i["set"], "cat": i["cat"], "name": i["name"],
                                    **{n: {"ms": results[n][k][1], "texts": [c[0] for c in results[n][k][0]]}
                                       for n in names}}, ensure_ascii=False) + "\n")

    cats = sorted({(i["set"], i["cat"]) for i in items})
    print()
    head = "| set/category | imgs | codes | " + " | ".join(f"{n} read" for n in names) + " | " + \
        " | ".join(f"{n} ms med/p95" for n in names) + " |"
    print(head)
    print("|" + "---|" * (3 + 2 * len(names)))
    totals = {}
    for s, c in cats + [("boofcv", "ALL"), ("blackbox", "ALL qr+code128")]:
        if c == "ALL":
            idx = [k for k, i in enumerate(items) if i["set"] == s]
        elif c.startswith("ALL "):
            idx = [k for k, i in enumerate(items) if i["set"] == s and "truth" in i]
        else:
            idx = [k for k, i in enumerate(items) if i["set"] == s and i["cat"] == c]
        if not idx:
            continue
        fp = all(items[k].get("fp") for k in idx)
        if s == "boofcv":
            total = sum(len(items[k]["labels"]) for k in idx)
        else:
            total = len(idx)
        cells, times = [], []
        for n in names:
            if s == "boofcv":
                got = sum(score_boofcv(items[k]["labels"], results[n][k][0]) for k in idx)
                cells.append(f"{got} ({100 * got / max(total, 1):.0f} %)")
            elif fp:
                bad = sum(1 for k in idx if results[n][k][0])
                cells.append(f"{bad} false")
            else:
                ok = sum(1 for k in idx if any(norm(t) == norm(items[k]["truth"]) for t, _ in results[n][k][0]))
                wrong = sum(1 for k in idx if results[n][k][0]
                            and not any(norm(t) == norm(items[k]["truth"]) for t, _ in results[n][k][0]))
                cells.append(f"{ok}" + (f" ({wrong} wrong)" if wrong else ""))
            ms = [results[n][k][1] for k in idx]
            times.append(f"{pct(ms, 0.5):.1f} / {pct(ms, 0.95):.1f}")
        print(f"| {s}/{c} | {len(idx)} | {total if not fp else '-'} | " + " | ".join(cells) + " | " +
              " | ".join(times) + " |")
    worst = {n: max((r[1] for r in results[n] if r[1] == r[1]), default=float("nan")) for n in names}
    print()
    print("max ms on one image: " + ", ".join(f"{n} {worst[n]:.1f}" for n in names))


if __name__ == "__main__":
    main()
