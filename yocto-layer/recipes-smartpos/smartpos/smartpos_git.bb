# nooelint: oelint.var.bbclassextend
# (target-only daemons: no native or nativesdk variant makes sense)
SUMMARY = "smartpos service stack for Linux smart-POS terminals"
DESCRIPTION = "System daemons a vendor checkout app talks to over D-Bus: payment-code \
               scanning (camera and HID scanners), payments to acquirers over TLS with a \
               crash-safe journal, network diagnostics and A/B updates through RAUC."
HOMEPAGE = "https://example.invalid/smartpos"
BUGTRACKER = "https://example.invalid/smartpos/issues"
SECTION = "base"
CVE_PRODUCT = "smartpos"
LICENSE = "Apache-2.0"
# The source tree has no LICENSE file yet; point this at it once it has one.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

DEPENDS += "clang-native cmake-native"

PV = "0.1.0+git"
SRC_URI = "git://example.invalid/smartpos.git;protocol=https;branch=main"
# Bump together with the crate list: tools/gen-crates-inc.py regenerates it.
SRCREV = "7932405cd908f3fb01a3b7cef11b0db4731f9d91"

inherit cargo cargo-update-recipe-crates systemd useradd features_check

# Units, sysusers and tmpfiles: the stack is built around systemd.
REQUIRED_DISTRO_FEATURES = "systemd"

# Every crates.io package in Cargo.lock, as crate:// URLs with their sha256: the cargo
# class builds --frozen and offline.
require ${BPN}-crates.inc

# The daemons this build ships. Each one gets its own package, unit, bus policy and
# user; add netd and otad here once their crates exist.
SMARTPOS_DAEMONS ?= "scannerd paymentd"

# Build only those binaries: cargo_do_install copies every executable it finds, and the
# workspace also holds test tools (the acquirer emulator) that must never reach a
# terminal.
CARGO_BUILD_FLAGS += "${@' '.join('--bin smartpos-' + x for x in d.getVar('SMARTPOS_DAEMONS').split())}"

# v4l2-sys-mit runs bindgen on videodev2.h at build time: libclang from the native
# sysroot, headers from the target's. zxing-cpp builds its bundled C++ with cmake.
export LIBCLANG_PATH = "${STAGING_LIBDIR_NATIVE}"
export BINDGEN_EXTRA_CLANG_ARGS = "--sysroot=${STAGING_DIR_TARGET}"

do_install:append() {
    # One install list for every kind of image: the script honours these directories.
    BINDIR="${bindir}" \
    UNITDIR="${systemd_system_unitdir}" \
    SYSUSERSDIR="${nonarch_libdir}/sysusers.d" \
    TMPFILESDIR="${nonarch_libdir}/tmpfiles.d" \
    UDEVRULESDIR="${nonarch_base_libdir}/udev/rules.d" \
    SYSCTLDIR="${nonarch_libdir}/sysctl.d" \
    DBUSPOLICYDIR="${datadir}/dbus-1/system.d" \
    DBUSIFACEDIR="${datadir}/dbus-1/interfaces" \
    POLKITRULESDIR="${datadir}/polkit-1/rules.d" \
    DOCDIR="${docdir}/smartpos" \
        ${S}/tools/install-files.sh ${D} ${prefix} -

    # Units of daemons this build does not ship would start nothing.
    for unit in ${D}${systemd_system_unitdir}/smartpos-*.service; do
        daemon=$(basename "$unit" .service)
        if [ ! -x "${D}${bindir}/$daemon" ]; then
            rm -f "$unit" "${D}${nonarch_libdir}/sysctl.d/50-$daemon.conf" \
                "${D}${datadir}/polkit-1/rules.d/50-$daemon.rules"
        fi
    done
    # What tmpfiles.d/smartpos.conf would make at boot, made in the image too, so that a
    # read-only /etc already has it: acquirer secrets readable by the payment daemon only.
    install -d -m 0755 ${D}${sysconfdir}/smartpos ${D}${sysconfdir}/smartpos/ca
    install -d -m 0750 -g smartpos-payment ${D}${sysconfdir}/smartpos/keys

    # polkit owns its rules directory 0700 polkitd; match it, or the package manager
    # sees two packages disagree about one directory.
    if [ -d ${D}${datadir}/polkit-1/rules.d ]; then
        chmod 0700 ${D}${datadir}/polkit-1/rules.d
        chown polkitd:root ${D}${datadir}/polkit-1/rules.d
    fi
}

# ${PN} pulls in every daemon package; ${PN}-common holds what they share. It comes last
# so that a daemon package claims its own files under a shared directory (keys/).
PACKAGE_BEFORE_PN = "${PN}-scannerd ${PN}-paymentd ${PN}-netd ${PN}-otad ${PN}-common"
ALLOW_EMPTY:${PN} = "1"

FILES:${PN}-common += "${sysconfdir}/smartpos \
                       ${nonarch_libdir}/sysusers.d/smartpos.conf \
                       ${nonarch_libdir}/tmpfiles.d/smartpos.conf \
                       ${datadir}/dbus-1/interfaces"
FILES:${PN}-scannerd += "${bindir}/smartpos-scannerd \
                         ${systemd_system_unitdir}/smartpos-scannerd.service \
                         ${datadir}/dbus-1/system.d/org.smartpos.Scanner1.conf \
                         ${nonarch_base_libdir}/udev/rules.d/70-smartpos-devices.rules"
FILES:${PN}-paymentd += "${sysconfdir}/smartpos/keys \
                         ${bindir}/smartpos-paymentd \
                         ${systemd_system_unitdir}/smartpos-paymentd.service \
                         ${datadir}/dbus-1/system.d/org.smartpos.Payment1.conf"
FILES:${PN}-netd += "${bindir}/smartpos-netd \
                     ${systemd_system_unitdir}/smartpos-netd.service \
                     ${datadir}/dbus-1/system.d/org.smartpos.Network1.conf \
                     ${nonarch_libdir}/sysctl.d/50-smartpos-netd.conf"
FILES:${PN}-otad += "${bindir}/smartpos-otad \
                     ${systemd_system_unitdir}/smartpos-otad.service \
                     ${datadir}/dbus-1/system.d/org.smartpos.Update1.conf \
                     ${datadir}/polkit-1/rules.d"

RDEPENDS:${PN} = "${@' '.join('${PN}-' + x for x in d.getVar('SMARTPOS_DAEMONS').split())}"
RDEPENDS:${PN}-common += "${VIRTUAL-RUNTIME_dbus}"
RDEPENDS:${PN}-scannerd += "${PN}-common"
RDEPENDS:${PN}-paymentd += "${PN}-common"
RDEPENDS:${PN}-netd += "${PN}-common"
RDEPENDS:${PN}-otad += "${PN}-common"
# Only with meta-rauc in the build: without it nothing provides rauc and bitbake refuses
# the whole recipe, even for images that leave otad out.
RRECOMMENDS:${PN}-otad += "${@bb.utils.contains('BBFILE_COLLECTIONS', 'rauc', 'rauc', '', d)}"

# Accounts are made at rootfs time; the sysusers.d file in ${PN}-common makes the
# same ones on images that run systemd-sysusers instead.
USERADD_PACKAGES = "${PN}-common ${PN}-scannerd ${PN}-paymentd ${PN}-netd ${PN}-otad"
GROUPADD_PARAM:${PN}-common = "--system smartpos-vendor; --system smartpos-tech"
USERADD_PARAM:${PN}-scannerd = "--system --no-create-home --home-dir / --shell /sbin/nologin \
                                --user-group --groups video smartpos-scanner"
USERADD_PARAM:${PN}-paymentd = "--system --no-create-home --home-dir ${localstatedir}/lib/smartpos-payment \
                                --shell /sbin/nologin --user-group smartpos-payment"
USERADD_PARAM:${PN}-netd = "--system --no-create-home --home-dir / --shell /sbin/nologin \
                            --user-group smartpos-net"
USERADD_PARAM:${PN}-otad = "--system --no-create-home --home-dir ${localstatedir}/lib/smartpos-update \
                            --shell /sbin/nologin --user-group smartpos-update; \
                            --system --no-create-home --home-dir ${datadir}/polkit-1 \
                            --shell /sbin/nologin --user-group polkitd"

SYSTEMD_PACKAGES = "${@' '.join('${PN}-' + x for x in d.getVar('SMARTPOS_DAEMONS').split())}"
SYSTEMD_SERVICE:${PN}-scannerd = "smartpos-scannerd.service"
SYSTEMD_SERVICE:${PN}-paymentd = "smartpos-paymentd.service"
SYSTEMD_SERVICE:${PN}-netd = "smartpos-netd.service"
SYSTEMD_SERVICE:${PN}-otad = "smartpos-otad.service"
