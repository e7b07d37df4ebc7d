#!/usr/bin/env bash
# Fetch the QR / Code128 test images the decoder tests and `make bench-decode` read, from
# their public upstreams at pinned commits, and check every file against tools/qr-data.sha256.
#
#   tools/fetch-qr-data.sh [DIR]            # fetch what is missing or wrong, then verify
#   tools/fetch-qr-data.sh --verify [DIR]   # verify only; no network
#
# DIR defaults to $SMARTPOS_QR_DATA, else ../shared/qr-data beside the repository: where the
# tests look (crates/scanner/tests/common/mod.rs). What the sets are, where they come from
# and their licences: docs/test-data.md. The images are never committed to this repository.
#
# Idempotent: a file already present with the right checksum is kept and not downloaded
# again; a wrong one is fetched again; a download whose checksum does not match is thrown
# away, never put in place. Files in DIR that are not in the list are left alone and counted.
# Ends with one summary line; exit 0 when every listed file is present and verified, 1 when
# any is not, 64 on bad usage, 69 when a tool it needs is missing.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LIST=$ROOT/tools/qr-data.sha256

# Upstreams, pinned. The repository path of a listed file is its path in DIR with the set's
# folder replaced by the prefix below.
#   boofcv-qrcodes-v3/: BoofCV "qrcodes_v3" (Peter Abeles), as committed to rizwankce/RustQR.
BOOFCV_BASE=https://raw.githubusercontent.com/rizwankce/RustQR/824739f41e84dca72cd9b7eda10f75d6d814783e/benches/images/boofcv
#   zxing-cpp-blackbox/: zxing-cpp's blackbox samples. raw.githubusercontent.com serves them
#   from the git objects; a release or codeload archive does not hold them (export-ignore).
ZXING_COMMIT=77dceca0687d46914b13f007447f5b354b078dd8
ZXING_BASE=https://raw.githubusercontent.com/zxing-cpp/zxing-cpp/$ZXING_COMMIT/test/samples
ZXING_LICENSE=https://raw.githubusercontent.com/zxing-cpp/zxing-cpp/$ZXING_COMMIT/LICENSE

usage() {
    echo "usage: tools/fetch-qr-data.sh [--verify] [DIR]" >&2
    exit 64
}

VERIFY_ONLY=0
DIR=
while [ $# -gt 0 ]; do
    case $1 in
    --verify) VERIFY_ONLY=1 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) usage ;;
    *) [ -z "$DIR" ] || usage; DIR=$1 ;;
    esac
    shift
done
DIR=${DIR:-${SMARTPOS_QR_DATA:-$ROOT/../shared/qr-data}}

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "fetch-qr-data: needs $1 (Debian package $2)" >&2; exit 69; }
}
need sha256sum coreutils
[ "$VERIFY_ONLY" = 1 ] || need curl curl
[ -r "$LIST" ] || { echo "fetch-qr-data: cannot read the checksum list $LIST" >&2; exit 69; }

# url_of PATH: the upstream address of a listed file.
url_of() {
    local rel=$1 enc='' c i
    for ((i = 0; i < ${#rel}; i++)); do
        c=${rel:i:1}
        case $c in
        [A-Za-z0-9._~/-]) enc+=$c ;;
        *) enc+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    case $enc in
    boofcv-qrcodes-v3/*) echo "$BOOFCV_BASE/${enc#boofcv-qrcodes-v3/}" ;;
    zxing-cpp-blackbox/LICENSE-zxing-cpp-Apache-2.0.txt) echo "$ZXING_LICENSE" ;;
    zxing-cpp-blackbox/*) echo "$ZXING_BASE/${enc#zxing-cpp-blackbox/}" ;;
    *) return 1 ;;
    esac
}

sha_of() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }

if [ "$VERIFY_ONLY" = 0 ]; then
    mkdir -p "$DIR" || { echo "fetch-qr-data: cannot create $DIR" >&2; exit 1; }
fi
if [ ! -d "$DIR" ]; then
    echo "fetch-qr-data: $DIR does not exist (run without --verify to fetch the sets there)" >&2
    exit 1
fi
DIR=$(cd "$DIR" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fetch-qr-data.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

KEPT=0 FETCHED=0 FAILED=0 MISSING=0 TOTAL=0
declare -A LISTED=()
while read -r want rel; do
    case $want in '' | '#'*) continue ;; esac
    TOTAL=$((TOTAL + 1))
    LISTED[$rel]=1
    path=$DIR/$rel
    if [ -f "$path" ] && [ "$(sha_of "$path")" = "$want" ]; then
        KEPT=$((KEPT + 1))
        continue
    fi
    if [ "$VERIFY_ONLY" = 1 ]; then
        if [ -f "$path" ]; then
            echo "fetch-qr-data: WRONG CHECKSUM $rel"
            FAILED=$((FAILED + 1))
        else
            echo "fetch-qr-data: MISSING $rel"
            MISSING=$((MISSING + 1))
        fi
        continue
    fi
    url=$(url_of "$rel") || { echo "fetch-qr-data: no upstream known for $rel"; FAILED=$((FAILED + 1)); continue; }
    if ! curl -fsSL --retry 3 --connect-timeout 20 --max-time 300 -o "$TMP/f" "$url"; then
        echo "fetch-qr-data: DOWNLOAD FAILED $rel ($url)"
        FAILED=$((FAILED + 1))
        continue
    fi
    got=$(sha_of "$TMP/f")
    if [ "$got" != "$want" ]; then
        echo "fetch-qr-data: CHECKSUM MISMATCH $rel ($url): got $got, want $want; not kept"
        FAILED=$((FAILED + 1))
        continue
    fi
    mkdir -p "$(dirname "$path")" && mv -f "$TMP/f" "$path" && chmod 0644 "$path"
    FETCHED=$((FETCHED + 1))
    [ $((FETCHED % 100)) = 0 ] && echo "fetch-qr-data: $FETCHED fetched so far"
done <"$LIST"

EXTRA=0
while IFS= read -r -d '' f; do
    rel=${f#"$DIR"/}
    [ -n "${LISTED[$rel]:-}" ] || EXTRA=$((EXTRA + 1))
done < <(find "$DIR" -type f -print0)

if [ "$VERIFY_ONLY" = 1 ]; then
    echo "fetch-qr-data: $DIR: $TOTAL listed, $KEPT verified, $MISSING missing, $FAILED wrong; $EXTRA other files left alone"
else
    echo "fetch-qr-data: $DIR: $TOTAL listed, $KEPT already present and verified, $FETCHED fetched and verified, $FAILED failed; $EXTRA other files left alone"
fi
[ $((KEPT + FETCHED)) = "$TOTAL" ]
