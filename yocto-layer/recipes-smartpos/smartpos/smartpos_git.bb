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
# A placeholder: smartpos has no public repository address yet. A product sets its own in a
# bbappend or in local.conf (the git URL its build hosts can reach, usually a mirror):
#   SRC_URI:pn-smartpos = "git://git.example.com/smartpos.git;protocol=https;branch=main"
# keeping SRCREV and smartpos-crates.inc as they are (tools/gen-crates-inc.py --bump).
SMARTPOS_GIT_URI ??= "git://example.invalid/smartpos.git;protocol=https;branch=main"
SRC_URI = "${SMARTPOS_GIT_URI}"
# Bump together with the crate list: tools/gen-crates-inc.py regenerates it.
SRCREV = "7932405cd908f3fb01a3b7cef11b0db4731f9d91"

inherit cargo cargo-update-recipe-crates systemd useradd features_check

# Units, sysusers and tmpfiles: the stack is built around systemd; the units name /usr
# paths only and filter system calls (conf/distro/include/smartpos.inc).
REQUIRED_DISTRO_FEATURES = "systemd usrmerge seccomp"

# Every crates.io package in Cargo.lock, as crate:// URLs with their sha256: the cargo
# class builds --frozen and offline.
require ${BPN}-crates.inc

# The daemons this build ships. Each one gets its own package, unit, bus policy and
# user; add netd and otad here once their crates exist.
SMARTPOS_DAEMONS ?= "scannerd paymentd"

# Build only those binaries and posctl (the technician's CLI): cargo_do_install copies
# every executable it finds, and the workspace also holds test tools (the acquirer
# emulator) that must never reach a terminal.
CARGO_BUILD_FLAGS += "${@' '.join('--bin smartpos-' + x for x in d.getVar('SMARTPOS_DAEMONS').split())} --bin posctl"

# v4l2-sys-mit runs bindgen on videodev2.h at build time: libclang from the native
# sysroot, headers from the target's. zxing-cpp builds its bundled C++ with cmake.
export LIBCLANG_PATH = "${STAGING_LIBDIR_NATIVE}"
export BINDGEN_EXTRA_CLANG_ARGS = "--sysroot=${STAGING_DIR_TARGET}"

do_install:append() {
    # One install list for every kind of image: the script honours these directories and
    # installs the files of the daemons in SMARTPOS_DAEMONS only (each daemon's sysusers.d
    # and tmpfiles.d entries name its own account).
    DAEMONS="${SMARTPOS_DAEMONS}" \
    BINDIR="${bindir}" \
    UNITDIR="${systemd_system_unitdir}" \
    SYSUSERSDIR="${nonarch_libdir}/sysusers.d" \
    TMPFILESDIR="${nonarch_libdir}/tmpfiles.d" \
    UDEVRULESDIR="${nonarch_base_libdir}/udev/rules.d" \
    SYSCTLDIR="${nonarch_libdir}/sysctl.d" \
    DBUSPOLICYDIR="${datadir}/dbus-1/system.d" \
    DBUSIFACEDIR="${datadir}/dbus-1/interfaces" \
    POLKITRULESDIR="${datadir}/polkit-1/rules.d" \
    LOGINDCONFDIR="${systemd_unitdir}/logind.conf.d" \
    DOCDIR="${docdir}/smartpos" \
        ${S}/tools/install-files.sh ${D} ${prefix} -

    # What tmpfiles.d would make at boot, made in the image too, so that the read-only root
    # already has it: acquirer secrets readable by the payment daemon only, and the mount
    # points of the data partition and its binds (packaging/data/).
    install -d -m 0755 ${D}${sysconfdir}/smartpos ${D}${sysconfdir}/smartpos/ca ${D}/data \
        ${D}${localstatedir}/log/journal
    install -d -m 0750 -g smartpos-payment ${D}${sysconfdir}/smartpos/keys
    install -d -m 0750 -o smartpos-payment -g smartpos-payment ${D}${sysconfdir}/smartpos/merchant
    install -d -m 0700 -o smartpos-payment -g smartpos-payment ${D}${localstatedir}/lib/smartpos-payment

    # polkit owns its rules directory 0700 polkitd; match it, or the package manager
    # sees two packages disagree about one directory.
    if [ -d ${D}${datadir}/polkit-1/rules.d ]; then
        chmod 0700 ${D}${datadir}/polkit-1/rules.d
        chown polkitd:root ${D}${datadir}/polkit-1/rules.d
    fi
}

# ${PN} pulls in every daemon package; ${PN}-common holds what they share. It comes last
# so that a daemon package claims its own files under a shared directory (keys/).
PACKAGE_BEFORE_PN = "${PN}-scannerd ${PN}-paymentd ${PN}-netd ${PN}-otad ${PN}-posctl ${PN}-common"
ALLOW_EMPTY:${PN} = "1"

# The data partition's mounts (packaging/data/): every terminal has them.
SMARTPOS_DATA_UNITS = "data.mount smartpos-data-layout.service etc-smartpos.mount var-log-journal.mount"
FILES:${PN}-common += "${sysconfdir}/smartpos /data ${localstatedir}/log/journal \
                       ${nonarch_libdir}/sysusers.d/smartpos-common.conf \
                       ${nonarch_libdir}/tmpfiles.d/smartpos-common.conf \
                       ${systemd_unitdir}/logind.conf.d/50-smartpos-no-vt.conf \
                       ${systemd_system_unitdir}/getty@.service.d \
                       ${systemd_system_unitdir}/data.mount \
                       ${systemd_system_unitdir}/smartpos-data-layout.service \
                       ${systemd_system_unitdir}/etc-smartpos.mount \
                       ${systemd_system_unitdir}/var-log-journal.mount \
                       ${datadir}/dbus-1/interfaces"
FILES:${PN}-scannerd += "${bindir}/smartpos-scannerd \
                         ${systemd_system_unitdir}/smartpos-scannerd.service \
                         ${nonarch_libdir}/sysusers.d/smartpos-scannerd.conf \
                         ${nonarch_base_libdir}/udev/rules.d/70-smartpos-devices.rules \
                         ${datadir}/dbus-1/system.d/org.smartpos.Scanner1.conf"
FILES:${PN}-paymentd += "${sysconfdir}/smartpos/keys ${sysconfdir}/smartpos/merchant \
                         ${localstatedir}/lib/smartpos-payment \
                         ${bindir}/smartpos-paymentd \
                         ${systemd_system_unitdir}/smartpos-paymentd.service \
                         ${systemd_system_unitdir}/var-lib-smartpos*payment.mount \
                         ${nonarch_libdir}/sysusers.d/smartpos-paymentd.conf \
                         ${nonarch_libdir}/tmpfiles.d/smartpos-paymentd.conf \
                         ${datadir}/dbus-1/system.d/org.smartpos.Payment1.conf"
FILES:${PN}-netd += "${bindir}/smartpos-netd \
                     ${systemd_system_unitdir}/smartpos-netd.service \
                     ${nonarch_libdir}/sysusers.d/smartpos-netd.conf \
                     ${nonarch_libdir}/tmpfiles.d/smartpos-netd.conf \
                     ${datadir}/dbus-1/system.d/org.smartpos.Network1.conf \
                     ${nonarch_libdir}/sysctl.d/50-smartpos-netd.conf"
FILES:${PN}-otad += "${bindir}/smartpos-otad \
                     ${systemd_system_unitdir}/smartpos-otad.service \
                     ${nonarch_libdir}/sysusers.d/smartpos-otad.conf \
                     ${nonarch_libdir}/tmpfiles.d/smartpos-otad.conf \
                     ${datadir}/dbus-1/system.d/org.smartpos.Update1.conf \
                     ${datadir}/polkit-1/rules.d"
FILES:${PN}-posctl += "${bindir}/posctl"

RDEPENDS:${PN} = "${@' '.join('${PN}-' + x for x in d.getVar('SMARTPOS_DAEMONS').split())}"
RDEPENDS:${PN}-common += "${VIRTUAL-RUNTIME_dbus}"
RDEPENDS:${PN}-scannerd += "${PN}-common"
RDEPENDS:${PN}-paymentd += "${PN}-common"
RDEPENDS:${PN}-netd += "${PN}-common"
RDEPENDS:${PN}-otad += "${PN}-common"
RDEPENDS:${PN}-posctl += "${VIRTUAL-RUNTIME_dbus}"
# Only with meta-rauc in the build: without it nothing provides rauc and bitbake refuses
# the whole recipe, even for images that leave otad out.
RRECOMMENDS:${PN}-otad += "${@bb.utils.contains('BBFILE_COLLECTIONS', 'rauc', 'rauc', '', d)}"

# Accounts are made at rootfs time; each package's sysusers.d file makes the same ones on
# images that run systemd-sysusers instead.
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

SYSTEMD_PACKAGES = "${PN}-common ${@' '.join('${PN}-' + x for x in d.getVar('SMARTPOS_DAEMONS').split())}"
SYSTEMD_SERVICE:${PN}-common = "${SMARTPOS_DATA_UNITS}"
SYSTEMD_SERVICE:${PN}-scannerd = "smartpos-scannerd.service"
SYSTEMD_SERVICE:${PN}-paymentd = "smartpos-paymentd.service var-lib-smartpos\x2dpayment.mount"
SYSTEMD_SERVICE:${PN}-netd = "smartpos-netd.service"
SYSTEMD_SERVICE:${PN}-otad = "smartpos-otad.service"
