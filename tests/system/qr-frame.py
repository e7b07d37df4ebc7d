# One 8-bit grey camera frame showing a QR code, as a phone screen held up to the scan window
# would: `qrencode -t ASCII` output on stdin (two '#' per dark module), a raw GREY frame of
# WIDTH x HEIGHT on stdout, the code centred, MODULE pixels per module, on white.
#
#   qrencode -t ASCII -m 0 CODE | python3 qr-frame.py 640 480 10 > qr.grey
import sys

width, height, module = (int(a) for a in sys.argv[1:4])
rows = [line.rstrip("\n")[::2] for line in sys.stdin if line.strip()]
size = len(rows)
if size == 0 or any(len(r) > size for r in rows):
    sys.exit("qr-frame: expected a square `qrencode -t ASCII` symbol on stdin")
side = size * module
if side > min(width, height):
    sys.exit(f"qr-frame: a {size}-module code at {module} px does not fit {width}x{height}")
left, top = (width - side) // 2, (height - side) // 2
WHITE, BLACK = 235, 16  # a screen's white and black, not clipped: the health check would call clipping glare
frame = bytearray([WHITE]) * (width * height)
for y in range(side):
    row = rows[y // module]
    line = bytes(BLACK if x // module < len(row) and row[x // module] == "#" else WHITE for x in range(side))
    start = (top + y) * width + left
    frame[start : start + side] = line
sys.stdout.buffer.write(frame)
