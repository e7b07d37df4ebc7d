#!/usr/bin/env python3
"""A vendor checkout app's side of smartpos, in Python with jeepney.

It does what a checkout app does, over the system bus (DBUS_SYSTEM_BUS_ADDRESS if set):

1. starts a sale with a payment code the app scanned itself (PayWithCode), and waits for
   its outcome by signal (TransactionChanged), never by polling;
2. shows the result: paid, with the funding channels; or refused, with the cause group,
   the code and the cashier's instruction in Chinese and English, read as data from the
   sale's properties;
3. refunds part of the paid sale, with a refund reference as the idempotency key;
4. shows why a code was refused before any sale existed (a collection code), from the
   error's structured body (message, cause, code, instruction_zh, instruction_en);
5. prints the terminal's answer to "can this terminal take Huabei?" (Payment1.Diagnose).

Usage: vendor_client.py --code CODE [--refused-code CODE] [--amount FEN] [--refund FEN]

Exit status: 0 when every step did what it should, 1 otherwise. D-Bus errors are told
apart by their error name, never by their message text.
"""

import argparse
import sys
import time

from jeepney import DBusAddress, MatchRule, Properties, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection
from jeepney.wrappers import DBusErrorResponse, unwrap_msg

SERVICE = "org.smartpos.Payment1"
PATH = "/org/smartpos/Payment1"
TX_INTERFACE = "org.smartpos.Payment1.Transaction"
FINAL = {"succeeded", "failed", "cancelled"}

PAYMENT = DBusAddress(PATH, bus_name=SERVICE, interface=SERVICE)


def call(conn, method, signature=None, body=()):
    """Call a Payment1 method; returns the reply's body, raises DBusErrorResponse."""
    msg = new_method_call(PAYMENT, method, signature, body)
    return unwrap_msg(conn.send_and_get_reply(msg, timeout=30))


def properties(conn, path):
    """All properties of a sale, as a plain dict."""
    tx = DBusAddress(path, bus_name=SERVICE, interface=TX_INTERFACE)
    (props,) = unwrap_msg(conn.send_and_get_reply(Properties(tx).get_all(), timeout=10))
    return {name: value for name, (_sig, value) in props.items()}


def pay_and_wait(conn, amount_fen, order_ref, code, timeout_s=60):
    """PayWithCode, then wait for the sale's final state by signal. Returns its properties."""
    # Subscribe before the call: the sale may settle before the reply reaches us.
    rule = MatchRule(
        type="signal", interface=SERVICE, member="TransactionChanged", path=PATH
    )
    unwrap_msg(conn.send_and_get_reply(message_bus.AddMatch(rule), timeout=10))
    with conn.filter(rule) as signals:
        (path,) = call(conn, "PayWithCode", "xssa{sv}s", (amount_fen, "CNY", order_ref, {}, code))
        print(f"sale {order_ref}: {path}")
        state = properties(conn, path)["State"]
        deadline = time.monotonic() + timeout_s
        while state not in FINAL:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                sig = conn.recv_until_filtered(signals, timeout=left)
            except TimeoutError:
                break
            changed_path, new_state = sig.body
            if changed_path == path:
                print(f"  state: {new_state}")
                state = new_state
                if state == "unknown":
                    # The payment may have gone through: never charge again; the terminal
                    # resolves it by query and cancel.
                    print("  outcome unknown: do not charge again, the terminal is resolving it")
    unwrap_msg(conn.send_and_get_reply(message_bus.RemoveMatch(rule), timeout=10))
    props = properties(conn, path)
    props["_path"] = path
    return props


def show(props):
    """What the checkout screen says about a settled sale."""
    state = props["State"]
    if state == "succeeded":
        funding = ", ".join(props["FundingChannels"]) or "unknown"
        print(f"  PAID {props['PaidFen'] / 100:.2f} CNY via {props['Scheme']} (funding: {funding})")
    else:
        print(f"  {state.upper()}: cause {props['Cause']}, code {props['ErrorCode']}")
        print(f"  cashier (zh): {props['InstructionZh']}")
        print(f"  cashier (en): {props['InstructionEn']}")
        if props["AcquirerMessage"]:
            print(f"  acquirer said: {props['AcquirerMessage']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", required=True, help="a payment code the customer shows")
    ap.add_argument("--refused-code", help="a second customer's code, which is refused")
    ap.add_argument("--amount", type=int, default=1288, help="amount in fen")
    ap.add_argument("--refund", type=int, default=288, help="refund in fen")
    args = ap.parse_args()

    ok = True
    run = f"py-{int(time.time())}"
    conn = open_dbus_connection(bus="SYSTEM")
    try:
        (version,) = unwrap_msg(
            conn.send_and_get_reply(Properties(PAYMENT).get("Version"), timeout=10)
        )
        print(f"smartpos-paymentd {version[1]}")

        paid = pay_and_wait(conn, args.amount, f"{run}-1", args.code)
        show(paid)
        ok &= paid["State"] == "succeeded"

        if args.refused_code:
            refused = pay_and_wait(conn, 500, f"{run}-2", args.refused_code)
            show(refused)
            ok &= refused["State"] == "failed" and bool(refused["Cause"])

        if paid["State"] == "succeeded":
            (refund,) = call(
                conn, "Refund", "oxs", (paid["_path"], args.refund, f"{run}-r1")
            )
            r = {k: v for k, (_sig, v) in refund.items()}
            print(f"refund {r['id']}: {r['state']} {r['amount_fen'] / 100:.2f} CNY")
            # The same reference again is the same refund, not a second one.
            (again,) = call(
                conn, "Refund", "oxs", (paid["_path"], args.refund, f"{run}-r1")
            )
            same = again["id"][1] == r["id"]
            print(f"refund repeated with the same reference: {'same refund' if same else 'A SECOND REFUND'}")
            ok &= r["state"] in ("succeeded", "pending", "unknown") and same

        # A refund above what is left is refused by error name, with nothing changed.
        try:
            call(conn, "Refund", "oxs", (paid["_path"], 10**9, f"{run}-r2"))
            print("refund above the paid amount was accepted: WRONG")
            ok = False
        except DBusErrorResponse as e:
            print(f"refund above the paid amount refused: {e.name}")

        # The cashier scanned the shop's own collection code (收款码) by mistake: refused
        # before any sale exists, so the explanation comes as data in the error's body.
        try:
            call(conn, "PayWithCode", "xssa{sv}s",
                 (500, "CNY", f"{run}-3", {}, "https://qr.alipay.com/fkx12345abcdef"))
            print("a collection code was accepted as payment: WRONG")
            ok = False
        except DBusErrorResponse as e:
            if len(e.data) == 5:
                _message, cause, code, zh, en = e.data
                print(f"refused before a sale ({e.name}): cause {cause}, code {code}")
                print(f"  cashier (zh): {zh}")
                print(f"  cashier (en): {en}")
                ok &= e.name == "org.smartpos.Error.Refused" and cause == "user_error"
            else:
                print(f"refused before a sale ({e.name}) without an explanation: WRONG")
                ok = False

        (findings,) = call(conn, "Diagnose")
        for group, name, subject, verdict, evidence, _code, _zh, en in findings:
            if subject == "huabei":
                print(f"Huabei ({verdict}): {evidence}: {en}" if en else f"Huabei ({verdict}): {evidence}")
    except DBusErrorResponse as e:
        print(f"D-Bus error {e.name}: {e.data}", file=sys.stderr)
        ok = False
    finally:
        conn.close()
    print("vendor client: all steps as expected" if ok else "vendor client: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
