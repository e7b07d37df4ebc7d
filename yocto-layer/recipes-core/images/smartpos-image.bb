# nooelint: oelint.var.suggestedvar.CVE_PRODUCT
# (the image is tracked through its packages' CVE_PRODUCT)
SUMMARY = "Root filesystem of a smartpos terminal"
DESCRIPTION = "A minimal, read-only systemd image with the smartpos daemons; the slot image \
               that the RAUC bundle (dynamic-layers/rauc) carries."
HOMEPAGE = "https://example.invalid/smartpos"
BUGTRACKER = "https://example.invalid/smartpos/issues"
SECTION = "images"
LICENSE = "MIT"

inherit core-image features_check

# What the units and the A/B update rely on (conf/distro/include/smartpos.inc says why).
REQUIRED_DISTRO_FEATURES = "systemd usrmerge seccomp rauc"

# Everything on the terminal, and why (docs/PACKAGING.md, "The image"):
#   packagegroup-core-boot  kernel, systemd, udev, base files, busybox for the shell tools
#   smartpos                the daemons of SMARTPOS_DAEMONS, their units, accounts, bus
#                           policy, udev rules and the data partition's mounts
#   smartpos-posctl         the technician's CLI (over the bus; no shell login needed)
#   rauc                    A/B updates of the root slot, with rauc-conf (slots, keyring)
#   ca-certificates         the acquirers' TLS roots
# Not packagegroup-base-extended (core-image's default: avahi, rpcbind, bluez, ofono
# depending on the distro features) and no SSH server: a terminal takes payments, it does
# not offer services on the shop's network. A service technician uses the serial console
# or posctl.
IMAGE_INSTALL = "packagegroup-core-boot smartpos smartpos-posctl rauc ca-certificates"
IMAGE_FEATURES = "read-only-rootfs"
IMAGE_LINGUAS = ""

# ext4: what the bundle's rootfs slot carries (RAUC_SLOT_rootfs[fstype] = "ext4", and
# type=ext4 in the terminal's system.conf); wic: the factory image with both slots and the
# data partition (smartpos-image.wks, next to this recipe).
IMAGE_FSTYPES = "ext4 wic"
WKS_FILE = "smartpos-image.wks"
