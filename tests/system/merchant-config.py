# The factory's configuration of a terminal for the system test's acquirer emulator: the
# merchant configuration, the daemons' configuration files, the acquirer CA and the keys,
# written to OUT for tests/system/provision.sh to install on the data partition.
#
#   python3 merchant-config.py PKI_DIR OUT
#
# PKI_DIR is the emulator's throwaway PKI (smartpos-acquirer-sim --pki-dir). Paths in the
# files are where the terminal has them: /etc/smartpos/{keys,ca}/.
import json
import os
import shutil
import sys

pki, out = sys.argv[1:]
ids = json.load(open(os.path.join(pki, "merchant.json")))
os.makedirs(os.path.join(out, "keys"), exist_ok=True)
os.makedirs(os.path.join(out, "ca"), exist_ok=True)
for f in ("app-private.key.pem", "alipay-public.pem", "wechat-merchant.pem", "wechat-merchant.key.pem"):
    shutil.copy(os.path.join(pki, f), os.path.join(out, "keys", f))
for name, key in (("wechat-api-key", "wechat_api_key"), ("qra-key", "qra_key")):
    with open(os.path.join(out, "keys", name), "w") as f:
        f.write(ids[key])
shutil.copy(os.path.join(pki, "ca.pem"), os.path.join(out, "ca", "acquirer-ca.pem"))

K, CA, URL = "/etc/smartpos/keys/", "/etc/smartpos/ca/acquirer-ca.pem", "https://127.0.0.1:8443"
# The emulator answers within milliseconds: poll at a test's pace, not the field's. The
# timeouts are the field's: TLS under TCG on a busy machine takes seconds.
merchant = f"""schema = 1
version = 1
synced_at = "2026-11-27T09:30:00Z"
terminal_id = "T0001"

[merchant]
name = "Corner Shop"
category = "5411"
schemes = ["alipay", "wechat", "unionpay"]
funding = ["balance", "bank_card", "huabei", "huabei_instalments", "credit_card"]

[timeouts]
connect_ms = 10000
read_ms = 15000

[polling]
alipay_interval_ms = 500
alipay_max_queries = 40
wechat_interval_ms = 500
wechat_window_ms = 20000
qra_interval_ms = 500
qra_window_ms = 20000
cancel_interval_ms = 500
cancel_max_attempts = 5
resolver_interval_ms = 1000
awaiting_code_expiry_ms = 600000

[risk]
max_per_sale_fen = 5000000
max_daily_fen = 50000000
velocity_max_sales = 100
velocity_window_s = 60
cashout_round_amount_fen = 100000

[[path]]
name = "alipay"
kind = "alipay"
url = "{URL}"
ca_file = "{CA}"
app_id = "{ids['alipay_app_id']}"
private_key_file = "{K}app-private.key.pem"
alipay_public_key_file = "{K}alipay-public.pem"

[[path]]
name = "wechat"
kind = "wechat"
url = "{URL}"
ca_file = "{CA}"
appid = "{ids['wechat_appid']}"
mch_id = "{ids['wechat_mch_id']}"
api_key_file = "{K}wechat-api-key"
sign_type = "hmac_sha256"
client_cert_file = "{K}wechat-merchant.pem"
client_key_file = "{K}wechat-merchant.key.pem"

[[path]]
name = "qra"
kind = "qra"
url = "{URL}"
ca_file = "{CA}"
mch_id = "{ids['qra_mch_id']}"
key_file = "{K}qra-key"

[[route]]
scheme = "alipay"
paths = ["alipay"]

[[route]]
scheme = "wechat"
paths = ["wechat"]

[[route]]
scheme = "unionpay"
paths = ["qra"]
"""
with open(os.path.join(out, "merchant.toml"), "w") as f:
    f.write(merchant)
with open(os.path.join(out, "smartpos-paymentd.toml"), "w") as f:
    f.write('merchant_config = "/etc/smartpos/merchant.toml"\n'
            'journal = "/var/lib/smartpos-payment/journal.db"\n'
            "scanner = true\nscan_timeout_ms = 60000\n")
with open(os.path.join(out, "smartpos-scannerd.toml"), "w") as f:
    f.write("""[camera]
match = "vivid"
width = 640
height = 480
fps = 15

[hid]
grab = true
rescan_interval = 0.2
[[hid.matchers]]
vendor = 0x1eab
name_contains = "smartpos system-test"
[hid.wedge]
# uinput stamps each key when the typist writes it; under TCG that process can be
# descheduled for far longer than a USB scanner's few ms between keys.
inter_key_timeout = 500
""")
