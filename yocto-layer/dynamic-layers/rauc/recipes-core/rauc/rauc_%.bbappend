# RAUC's bus policy on a smartpos terminal: only root and smartpos-update may install
# (files/de.pengutronix.rauc.conf, which says why). It replaces the upstream file rather than
# adding a second one, so no ordering of policy files can let the upstream rules win.
# Only in a distro that requires smartpos.inc.
FILESEXTRAPATHS:prepend:smartpos-distro := "${THISDIR}/files:"
SRC_URI:append:smartpos-distro = " file://de.pengutronix.rauc.conf"

do_install:append:smartpos-distro() {
    install -D -m 0644 ${UNPACKDIR}/de.pengutronix.rauc.conf \
        ${D}${datadir}/dbus-1/system.d/de.pengutronix.rauc.conf
}
