# nooelint: oelint.var.suggestedvar.CVE_PRODUCT
# (the image is tracked through its packages' CVE_PRODUCT)
SUMMARY = "Root filesystem of a smartpos terminal"
DESCRIPTION = "A minimal systemd image with the smartpos daemons; the slot image that \
               the RAUC bundle (dynamic-layers/rauc) carries."
HOMEPAGE = "https://example.invalid/smartpos"
BUGTRACKER = "https://example.invalid/smartpos/issues"
SECTION = "images"
LICENSE = "MIT"

inherit core-image features_check

REQUIRED_DISTRO_FEATURES = "systemd"

IMAGE_FEATURES += "ssh-server-dropbear"
IMAGE_INSTALL:append = " smartpos ca-certificates"
