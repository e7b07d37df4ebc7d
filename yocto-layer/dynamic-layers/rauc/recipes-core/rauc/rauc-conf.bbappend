# The terminal's RAUC configuration: slots, boot loader, compatible string
# (files/system.conf), and the keyring that a bundle's signature is checked against.
# The keyring is the fleet's signing CA from SMARTPOS_RAUC_KEY_DIR (conf/distro/include/
# smartpos.inc): a build without it fails at parse time instead of shipping meta-rauc's
# example certificate, which would verify nothing of ours. Only in a distro that requires
# smartpos.inc.
FILESEXTRAPATHS:prepend:smartpos-distro := "${THISDIR}/files:${SMARTPOS_RAUC_KEY_DIR}:"
RAUC_KEYRING_FILE:smartpos-distro = "smartpos-keyring.pem"
