# Factory provisioning of a terminal's data partition, as the system test does it: run once by
# smartpos-test-provision.service (before the daemons, after the data partition and its binds
# are mounted and systemd-tmpfiles made /etc/smartpos/keys 0750 root:smartpos-payment).
#
#   sh provision.sh DIR    # DIR: smartpos-paymentd.toml, merchant.toml, smartpos-scannerd.toml,
#                          # ca/*.pem, keys/* (prepared by tools/system-test.sh on the host)
# shellcheck shell=sh
set -eu
SRC=$1
install -m 0644 "$SRC/smartpos-paymentd.toml" "$SRC/merchant.toml" "$SRC/smartpos-scannerd.toml" /etc/smartpos/
install -d -m 0755 /etc/smartpos/ca
install -m 0644 "$SRC"/ca/*.pem /etc/smartpos/ca/
# Acquirer secrets: readable by the payment daemon's group only.
for f in "$SRC"/keys/*; do
    install -m 0640 -o root -g smartpos-payment "$f" /etc/smartpos/keys/
done
