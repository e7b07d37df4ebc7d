#!/usr/bin/env bash
# Install what the build (and with `test`, the tests and lints) need, once. Idempotent and
# quiet when all is there.   tools/deps.sh [build|test]
set -euo pipefail
what=${1:-test}
cd "$(dirname "$0")/.."

pkgs=(dbus-daemon dbus-bin libclang-dev clang cmake pkg-config python3-venv util-linux systemd libzbar0 openssl rauc squashfs-tools e2fsprogs curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ "$what" = test ] || exit 0

# Rust components and cargo tools for the tests and lints.
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
# They are tools, not the product: built without their release profiles' fat LTO and single
# codegen unit (cargo-deny's), which on a 2-core CI machine cost minutes and buy nothing for a
# licence check. Config-level profile settings override a package's own for `cargo install`.
tool_install() {
  CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install --locked "$@"
}
command -v cargo-nextest >/dev/null || tool_install cargo-nextest
command -v cargo-deny >/dev/null || tool_install cargo-deny
command -v cargo-fuzz >/dev/null || tool_install cargo-fuzz
# The Python example vendor client's venv (jeepney), run by tests/tests/vendor_client.rs.
tools/examples-venv.sh >/dev/null
# goosebit, the DDI server the update tests run on loopback (tests/tests/update.rs).
tools/goosebit-venv.sh >/dev/null
exit 0
