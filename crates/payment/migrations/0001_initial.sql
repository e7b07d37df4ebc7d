-- smartpos payment journal, schema version 1.
-- This file is a contract: the daemon, posctl and field technicians (sqlite3 on the device)
-- read it. Never edit a released migration; add 0002_*.sql and bump user_version.
-- Every state change is committed here before the terminal acts on it.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- One counter for every merchant order number (out_trade_no, out_request_no) this journal
-- ever hands out. It only grows: a number is taken in the same transaction that records its
-- use, so a crash can lose a number but never hand it out twice.
CREATE TABLE order_seq (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    next INTEGER NOT NULL CHECK (next > 0)
) STRICT;
INSERT INTO order_seq (id, next) VALUES (1, 1);

CREATE TABLE sales (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at_ms     INTEGER NOT NULL,
    updated_at_ms     INTEGER NOT NULL,
    amount_fen        INTEGER NOT NULL CHECK (amount_fen > 0),
    currency          TEXT    NOT NULL,
    order_ref         TEXT    NOT NULL,
    options           TEXT    NOT NULL,            -- JSON SaleOptions
    state             TEXT    NOT NULL CHECK (state IN (
                          'awaiting_code', 'submitted', 'waiting_for_customer', 'unknown',
                          'succeeded', 'failed', 'cancelling', 'cancelled')),
    scheme            TEXT,                         -- alipay | wechat | unionpay
    path              TEXT,                         -- configured acquirer path name
    out_trade_no      TEXT    UNIQUE,               -- current attempt's idempotency key
    submitted_at_ms   INTEGER,
    code_masked       TEXT,                         -- 28**********5432, never the code
    code_hash         TEXT    UNIQUE,               -- keyed SHA-256: a code pays at most once
    disabled_funding  TEXT,                         -- JSON list sent to the acquirer
    acquirer_trade_no TEXT,
    paid_fen          INTEGER,
    funding           TEXT,                         -- JSON list of funding actually used
    cancel_requested  INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    explanation       TEXT                          -- JSON Explanation of the last failure
) STRICT;
CREATE INDEX sales_by_state ON sales (state);
CREATE INDEX sales_by_created ON sales (created_at_ms);

-- Every out_trade_no ever sent (or about to be sent), so none is reused after fail-over.
CREATE TABLE attempts (
    out_trade_no  TEXT    PRIMARY KEY,
    sale_id       INTEGER NOT NULL REFERENCES sales (id),
    path          TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    outcome       TEXT
) STRICT;

CREATE TABLE refunds (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    sale_id        INTEGER NOT NULL REFERENCES sales (id),
    refund_ref     TEXT    NOT NULL,
    out_request_no TEXT    NOT NULL UNIQUE,
    amount_fen     INTEGER NOT NULL CHECK (amount_fen > 0),
    state          TEXT    NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed', 'unknown')),
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    explanation    TEXT,
    UNIQUE (sale_id, refund_ref)
) STRICT;
CREATE INDEX refunds_by_state ON refunds (state);

-- Append-only audit trail of every transition, for reconciliation by hand.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    sale_id    INTEGER NOT NULL REFERENCES sales (id),
    refund_id  INTEGER REFERENCES refunds (id),
    at_ms      INTEGER NOT NULL,
    from_state TEXT,
    to_state   TEXT    NOT NULL,
    note       TEXT
) STRICT;
CREATE INDEX events_by_sale ON events (sale_id);
