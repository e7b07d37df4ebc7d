# What the smartpos units need from the kernel: files/smartpos.cfg (and
# conf/distro/include/smartpos.inc for why). Only in a distro that requires smartpos.inc.
FILESEXTRAPATHS:prepend:smartpos-distro := "${THISDIR}/files:"
SRC_URI:append:smartpos-distro = " file://smartpos.cfg"
