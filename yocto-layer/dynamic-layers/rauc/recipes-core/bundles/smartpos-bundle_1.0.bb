# nooelint: oelint.var.mandatoryvar.SRC_URI,oelint.var.bbclassextend,oelint.var.suggestedvar.CVE_PRODUCT
# (a bundle has no sources of its own and is never a native or CVE-tracked product)
SUMMARY = "RAUC update bundle for smartpos terminals"
DESCRIPTION = "Signed A/B update of the root filesystem (smartpos-image), installed by \
               RAUC and driven by smartpos-otad from the fleet server."
HOMEPAGE = "https://example.invalid/smartpos"
BUGTRACKER = "https://example.invalid/smartpos/issues"
SECTION = "base"
LICENSE = "MIT"

inherit bundle

# Must equal `compatible=` in the terminal's /etc/rauc/system.conf (a rauc-conf
# bbappend in the BSP layer, with the slot layout and the bootloader backend).
RAUC_BUNDLE_COMPATIBLE = "smartpos-terminal"
RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "smartpos root filesystem"
# verity bundles can be streamed and are checked block by block while installing.
RAUC_BUNDLE_FORMAT = "verity"

RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "smartpos-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

# Development keys by default; a release build sets SMARTPOS_RAUC_KEY_DIR to the
# signing host's key directory (never commit a release key).
SMARTPOS_RAUC_KEY_DIR ?= "${TOPDIR}/rauc-keys"
RAUC_KEY_FILE ?= "${SMARTPOS_RAUC_KEY_DIR}/development-1.key.pem"
RAUC_CERT_FILE ?= "${SMARTPOS_RAUC_KEY_DIR}/development-1.cert.pem"
