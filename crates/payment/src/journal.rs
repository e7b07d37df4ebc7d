//! The crash-safe journal: SQLite in WAL mode with `synchronous=FULL`, so a committed
//! transition survives a power cut. The lifecycle commits every move *before* acting on it:
//! a kill -9 at any point leaves a row that says what might be in flight, and the resolver
//! finishes it from there.
//!
//! The schema lives in `migrations/*.sql` (a contract, versioned by `PRAGMA user_version`).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use crate::classify::{Scheme, mask_code};
use crate::clock;
use crate::explain::Explanation;
use crate::failpoint;
use crate::model::{
    Currency, FundingChannel, FundingUsed, Refund, RefundState, SaleOptions, SaleState,
    Transaction, TxId,
};

/// Migrations in order; index + 1 is the `user_version` each one produces.
pub const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_risk_indexes.sql"),
    include_str!("../migrations/0003_order_ref_index.sql"),
];

/// Schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite failed; check free space (`df`), `dmesg` for I/O errors and the file's owner.
    #[error("payment journal: {0} (check free space, disk errors and file permissions)")]
    Sqlite(#[from] rusqlite::Error),
    /// The journal was written by newer software; downgrading would lose data.
    #[error(
        "payment journal has schema version {found}, this build knows up to {supported}: install the newer smartpos-paymentd again"
    )]
    TooNew { found: u32, supported: u32 },
    /// Another task moved the sale first (the cashier cancelled while the lifecycle polled).
    #[error("{tx} is {actual}, not {expected}: re-read it and decide again")]
    Conflict {
        tx: TxId,
        expected: SaleState,
        actual: SaleState,
    },
    /// A move the state machine does not allow: a bug, reported rather than written.
    #[error("{tx}: {from} → {to} is not an allowed move")]
    IllegalMove {
        tx: TxId,
        from: SaleState,
        to: SaleState,
    },
    #[error("{0} is not in the journal")]
    NotFound(TxId),
    #[error("refund {0} is not in the journal")]
    RefundNotFound(i64),
    /// This payment code already paid (or is paying) another sale; codes are single-use.
    #[error("this payment code was already used for {0}: ask the customer to refresh the code")]
    CodeAlreadyUsed(TxId),
    /// The refund would exceed what was paid minus what is refunded or being refunded.
    #[error("refund of {requested} fen is more than the {available} fen still refundable")]
    OverRefund { requested: i64, available: i64 },
    /// Refunds only apply to a paid sale.
    #[error("{tx} is {state}; only a succeeded sale can be refunded")]
    NotRefundable { tx: TxId, state: SaleState },
    /// The same refund reference was used before with another amount.
    #[error(
        "refund reference {refund_ref} was already used for {amount_fen} fen; use a new reference"
    )]
    RefundRefReused { refund_ref: String, amount_fen: i64 },
    /// A value in the file does not parse: someone edited it by hand, or the disk lies.
    #[error("payment journal row is corrupt ({0}); keep the file for forensics and call support")]
    Corrupt(String),
    /// Someone else moved the refund first (another task sent it and recorded the answer).
    #[error("refund {rid} is {}, not {}: re-read it", .actual.as_str(), .expected.as_str())]
    RefundConflict {
        rid: i64,
        expected: RefundState,
        actual: RefundState,
    },
    /// The app's order reference names an existing sale with other terms; a retry must send
    /// the same amount, and a new sale needs a new reference.
    #[error(
        "order_ref {order_ref:?} is already {tx} for {amount_fen} fen: send the same amount to retry it, or a new order_ref for a new sale"
    )]
    OrderRefReused {
        order_ref: String,
        tx: TxId,
        amount_fen: i64,
    },
    /// The journal directory or file could not be given its private modes.
    #[error("payment journal {}: {source} (check the directory's owner)", .path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, JournalError>;

/// Optional facts recorded together with a transition.
#[derive(Debug, Default, Clone)]
pub struct Patch<'a> {
    pub acquirer_trade_no: Option<&'a str>,
    pub paid_fen: Option<i64>,
    pub funding: Option<&'a [FundingUsed]>,
    pub explanation: Option<&'a Explanation>,
    pub clear_explanation: bool,
    /// Nothing reached any acquirer: the code was not consumed and may be scanned again.
    pub release_code: bool,
    /// Ask for a cancel at the next step (the sale goes on being cancelled in the background).
    pub request_cancel: bool,
    pub note: Option<&'a str>,
}

/// What the risk rules weigh from the journal, read in the same transaction that takes the
/// code, so two sales at once cannot both pass a daily limit only one of them fits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Figures {
    /// Money taken or in flight since `Windows::day_start_ms`, this sale excluded.
    pub committed_today_fen: i64,
    /// Payments sent since `Windows::velocity_since_ms`.
    pub recent_submissions: i64,
    /// Payments of this sale's amount sent since `Windows::repeat_since_ms`.
    pub same_amount_recent: i64,
}

/// Where the [`Figures`] windows start (UTC milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub day_start_ms: i64,
    pub velocity_since_ms: i64,
    pub repeat_since_ms: i64,
}

/// The rules' verdict on a payment given the journal's figures: the funding to switch off,
/// or why it is refused.
pub type Decide<'a> = dyn FnMut(i64, &SaleOptions, Figures) -> std::result::Result<Vec<FundingChannel>, Explanation>
    + 'a;

/// How [`Journal::begin_checked_attempt`] and [`Journal::pay_new`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempted {
    /// The attempt is committed as `Submitted`.
    Submitted(Transaction),
    /// The rules refused; nothing was written.
    Refused(Explanation),
    /// ([`Journal::pay_new`] only) the order reference already names this sale; nothing
    /// was written.
    Existing(Transaction),
}

/// What a new attempt sends.
#[derive(Debug, Clone)]
pub struct NewAttempt<'a> {
    pub scheme: Scheme,
    pub path: &'a str,
    pub code: &'a str,
    pub disabled_funding: &'a [FundingChannel],
    pub terminal_id: &'a str,
}

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at_ms: i64,
    pub from: Option<String>,
    pub to: String,
    pub note: Option<String>,
}

pub struct Journal {
    conn: Connection,
    code_key: Vec<u8>,
    /// See [`order_stem`].
    order_stem: String,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").finish_non_exhaustive()
    }
}

/// Everything a sale's D-Bus object shows, in one statement (the refunded sum included).
const SALE_COLUMNS: &str = "id, created_at_ms, updated_at_ms, amount_fen, currency, order_ref, \
     options, state, scheme, path, out_trade_no, submitted_at_ms, code_masked, disabled_funding, \
     acquirer_trade_no, paid_fen, funding, cancel_requested, explanation, \
     (SELECT COALESCE(SUM(r.amount_fen), 0) FROM refunds r \
      WHERE r.sale_id = sales.id AND r.state = 'succeeded')";

const REFUND_COLUMNS: &str = "id, sale_id, refund_ref, out_request_no, amount_fen, state, \
     created_at_ms, updated_at_ms, explanation";

impl Journal {
    /// Open (creating if needed) and migrate the journal at `path`. The journal holds order
    /// numbers, amounts and masked codes: whatever the umask, a directory this creates is
    /// 0700, and the file and its `-wal`/`-shm` companions are 0600.
    pub fn open(path: &Path) -> Result<Journal> {
        private_file(path)?;
        let conn = Connection::open(path)?;
        let j = Journal::init(conn)?;
        for suffix in ["-wal", "-shm"] {
            let mut companion = path.as_os_str().to_owned();
            companion.push(suffix);
            let companion = std::path::PathBuf::from(companion);
            if companion.exists() {
                set_mode(&companion, 0o600)?;
            }
        }
        Ok(j)
    }

    /// A private in-memory journal, for unit tests only (no durability).
    pub fn open_in_memory() -> Result<Journal> {
        Journal::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Journal> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL keeps readers (posctl, sqlite3) from blocking the daemon; FULL fsyncs the WAL
        // on every commit, which NORMAL does not (it may lose the last commits on power loss).
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
        migrate(&mut conn)?;
        let code_key = code_hash_key(&conn)?;
        let order_stem = order_stem(&conn)?;
        Ok(Journal {
            conn,
            code_key,
            order_stem,
        })
    }

    /// A read of the sales table: what the daemon's watchdog waits for before it tells
    /// systemd it is alive (the same connection, behind the same lock, as every sale).
    pub fn ping(&self) -> Result<()> {
        let _: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM (SELECT 1 FROM sales LIMIT 1)",
            [],
            |r| r.get(0),
        )?;
        Ok(())
    }

    pub fn schema_version(&self) -> Result<u32> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// `PRAGMA synchronous` as SQLite reports it (2 = FULL).
    pub fn synchronous(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))?)
    }

    pub fn journal_mode(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))?)
    }

    fn code_hash(&self, code: &str) -> String {
        let mut h = Sha256::new();
        h.update(&self.code_key);
        h.update(code.as_bytes());
        hex::encode(h.finalize())
    }

    /// Which sale, if any, already holds this payment code.
    pub fn sale_with_code(&self, code: &str) -> Result<Option<TxId>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM sales WHERE code_hash = ?1",
                [self.code_hash(code)],
                |r| r.get(0),
            )
            .optional()?
            .map(TxId))
    }

    pub fn create_sale(
        &mut self,
        amount_fen: i64,
        currency: Currency,
        order_ref: &str,
        options: &SaleOptions,
    ) -> Result<Transaction> {
        let now = clock::now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = insert_sale(&tx, now, amount_fen, currency, order_ref, options)?;
        tx.commit()?;
        failpoint::committed(SaleState::AwaitingCode.as_str(), self.conn.path());
        self.get(id)
    }

    /// The sale `order_ref` names, or a new one: the app's order reference is its
    /// idempotency key, so a `Sale` repeated after a lost reply never makes a second sale.
    /// Returns the sale and whether it was created now. The same reference with another
    /// amount or currency is refused with [`JournalError::OrderRefReused`].
    pub fn create_or_find_sale(
        &mut self,
        amount_fen: i64,
        currency: Currency,
        order_ref: &str,
        options: &SaleOptions,
    ) -> Result<(Transaction, bool)> {
        let now = clock::now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(t) = find_order_ref(&tx, order_ref)? {
            same_terms(&t, amount_fen, currency)?;
            return Ok((t, false));
        }
        let id = insert_sale(&tx, now, amount_fen, currency, order_ref, options)?;
        tx.commit()?;
        failpoint::committed(SaleState::AwaitingCode.as_str(), self.conn.path());
        Ok((self.get(id)?, true))
    }

    /// The newest sale with this order reference (journals from before order references
    /// were unique may hold several).
    pub fn find_by_order_ref(&self, order_ref: &str) -> Result<Option<Transaction>> {
        find_order_ref(&self.conn, order_ref)
    }

    /// Create a sale and take its payment code in one transaction, after the rules weighed
    /// the journal's figures in that same transaction: a refused payment leaves no sale
    /// behind, and a repeated order reference returns the sale it names (see
    /// [`Journal::create_or_find_sale`]); in both cases nothing is written.
    pub fn pay_new(
        &mut self,
        amount_fen: i64,
        currency: Currency,
        order_ref: &str,
        options: &SaleOptions,
        attempt: &NewAttempt<'_>,
        windows: &Windows,
        decide: &mut Decide<'_>,
    ) -> Result<Attempted> {
        let now = clock::now_ms();
        let hash = self.code_hash(attempt.code);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(t) = find_order_ref(&tx, order_ref)? {
            same_terms(&t, amount_fen, currency)?;
            return Ok(Attempted::Existing(t));
        }
        if let Some(other) = code_holder(&tx, &hash)? {
            return Err(JournalError::CodeAlreadyUsed(other));
        }
        let disabled = match decide(amount_fen, options, figures(&tx, amount_fen, windows)?) {
            Ok(d) => d,
            Err(e) => return Ok(Attempted::Refused(e)),
        };
        let id = insert_sale(&tx, now, amount_fen, currency, order_ref, options)?;
        attempt_in(
            &tx,
            id,
            SaleState::AwaitingCode,
            attempt,
            &disabled,
            &hash,
            &self.order_stem,
            now,
        )?;
        tx.commit()?;
        failpoint::committed(SaleState::Submitted.as_str(), self.conn.path());
        Ok(Attempted::Submitted(self.get(id)?))
    }

    /// [`Journal::begin_attempt`] with the rules' verdict taken on the figures read in the
    /// same transaction; `attempt.disabled_funding` is replaced by the verdict's.
    pub fn begin_checked_attempt(
        &mut self,
        id: TxId,
        attempt: &NewAttempt<'_>,
        windows: &Windows,
        decide: &mut Decide<'_>,
    ) -> Result<Attempted> {
        let now = clock::now_ms();
        let hash = self.code_hash(attempt.code);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let actual = state_of(&tx, id)?;
        check_move(id, SaleState::AwaitingCode, actual, SaleState::Submitted)?;
        if let Some(other) = code_holder(&tx, &hash)?.filter(|h| *h != id) {
            return Err(JournalError::CodeAlreadyUsed(other));
        }
        let (amount_fen, options): (i64, String) = tx.query_row(
            "SELECT amount_fen, options FROM sales WHERE id = ?1",
            [id.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let options: SaleOptions = from_json("options", Some(options))?.unwrap_or_default();
        let disabled = match decide(amount_fen, &options, figures(&tx, amount_fen, windows)?) {
            Ok(d) => d,
            Err(e) => return Ok(Attempted::Refused(e)),
        };
        attempt_in(
            &tx,
            id,
            actual,
            attempt,
            &disabled,
            &hash,
            &self.order_stem,
            now,
        )?;
        tx.commit()?;
        failpoint::committed(SaleState::Submitted.as_str(), self.conn.path());
        Ok(Attempted::Submitted(self.get(id)?))
    }

    /// Take a payment code for a sale and allocate its merchant order number, committing
    /// `Submitted` before the request may leave. Fail-over calls this again on the same sale
    /// (`Submitted → Submitted`) and gets a fresh number.
    pub fn begin_attempt(
        &mut self,
        id: TxId,
        expected: SaleState,
        attempt: &NewAttempt<'_>,
    ) -> Result<Transaction> {
        let now = clock::now_ms();
        let hash = self.code_hash(attempt.code);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let actual = state_of(&tx, id)?;
        check_move(id, expected, actual, SaleState::Submitted)?;
        if let Some(other) = code_holder(&tx, &hash)?.filter(|h| *h != id) {
            return Err(JournalError::CodeAlreadyUsed(other));
        }
        attempt_in(
            &tx,
            id,
            actual,
            attempt,
            attempt.disabled_funding,
            &hash,
            &self.order_stem,
            now,
        )?;
        tx.commit()?;
        failpoint::committed(SaleState::Submitted.as_str(), self.conn.path());
        self.get(id)
    }

    /// Move a sale from `from` to `to`, atomically with the facts in `patch`. Fails with
    /// [`JournalError::Conflict`] when someone else moved it first.
    pub fn transition(
        &mut self,
        id: TxId,
        from: SaleState,
        to: SaleState,
        patch: &Patch<'_>,
    ) -> Result<Transaction> {
        let now = clock::now_ms();
        let funding = patch.funding.map(to_json).transpose()?;
        let explanation = patch.explanation.map(to_json).transpose()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let actual = state_of(&tx, id)?;
        check_move(id, from, actual, to)?;
        tx.execute(
            "UPDATE sales SET state = ?2, updated_at_ms = ?3,
                 acquirer_trade_no = COALESCE(?4, acquirer_trade_no),
                 paid_fen = COALESCE(?5, paid_fen),
                 funding = COALESCE(?6, funding),
                 explanation = CASE WHEN ?8 THEN NULL ELSE COALESCE(?7, explanation) END,
                 code_hash = CASE WHEN ?9 THEN NULL ELSE code_hash END,
                 cancel_requested = CASE WHEN ?2 = 'cancelling' THEN 0
                                         WHEN ?10 THEN 1 ELSE cancel_requested END
             WHERE id = ?1",
            params![
                id.0,
                to.as_str(),
                now,
                patch.acquirer_trade_no,
                patch.paid_fen,
                funding,
                explanation,
                patch.clear_explanation,
                patch.release_code,
                patch.request_cancel
            ],
        )?;
        if let Some(out) = self_out_trade_no(&tx, id)? {
            tx.execute(
                "UPDATE attempts SET outcome = ?2 WHERE out_trade_no = ?1",
                params![out, to.as_str()],
            )?;
        }
        insert_event(
            &tx,
            id,
            None,
            now,
            Some(from.as_str()),
            to.as_str(),
            patch.note,
        )?;
        tx.commit()?;
        failpoint::committed(to.as_str(), self.conn.path());
        self.get(id)
    }

    /// Record the cashier's wish to cancel; the task driving the sale (or the resolver)
    /// acts on it at its next step. Moving the sale to `cancelling` consumes the request, so
    /// a cancel the acquirer refuses is not asked again in a loop.
    pub fn request_cancel(&mut self, id: TxId) -> Result<Transaction> {
        let n = self.conn.execute(
            "UPDATE sales SET cancel_requested = 1, updated_at_ms = ?2 WHERE id = ?1",
            params![id.0, clock::now_ms()],
        )?;
        if n == 0 {
            return Err(JournalError::NotFound(id));
        }
        self.get(id)
    }

    pub fn get(&self, id: TxId) -> Result<Transaction> {
        self.conn
            .query_row(
                &format!("SELECT {SALE_COLUMNS} FROM sales WHERE id = ?1"),
                [id.0],
                sale_from_row,
            )
            .optional()?
            .ok_or(JournalError::NotFound(id))?
    }

    /// The `n` most recent sales, newest first.
    pub fn list_recent(&self, n: usize) -> Result<Vec<Transaction>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SALE_COLUMNS} FROM sales ORDER BY id DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map([n as i64], sale_from_row)?;
        rows.map(|r| r?).collect()
    }

    /// Sales created since `since_ms`, oldest first.
    pub fn sales_since(&self, since_ms: i64) -> Result<Vec<Transaction>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SALE_COLUMNS} FROM sales WHERE created_at_ms >= ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([since_ms], sale_from_row)?;
        rows.map(|r| r?).collect()
    }

    /// Sales not in a terminal state, oldest first: what the resolver must finish.
    pub fn unfinished_sales(&self) -> Result<Vec<Transaction>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SALE_COLUMNS} FROM sales
             WHERE state NOT IN ('succeeded', 'failed', 'cancelled') ORDER BY id"
        ))?;
        let rows = stmt.query_map([], sale_from_row)?;
        rows.map(|r| r?).collect()
    }

    /// Money taken or possibly in flight since `since_ms`: succeeded sales count with what
    /// was paid, undecided ones with their full amount (a daily limit must not be beaten by
    /// racing several sales at once).
    pub fn committed_amount_since(&self, since_ms: i64) -> Result<i64> {
        committed_amount_since(&self.conn, since_ms)
    }

    /// Sales that sent a payment since `since_ms` (velocity rule).
    pub fn submissions_since(&self, since_ms: i64) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM sales WHERE submitted_at_ms >= ?1",
            [since_ms],
            |r| r.get(0),
        )?)
    }

    /// Sales of exactly `amount_fen` that sent a payment since `since_ms` (repeat rule).
    pub fn submissions_of_amount_since(&self, amount_fen: i64, since_ms: i64) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM sales WHERE submitted_at_ms >= ?1 AND amount_fen = ?2",
            params![since_ms, amount_fen],
            |r| r.get(0),
        )?)
    }

    /// State-change history of one sale: (at_ms, from, to, note).
    pub fn events_of(&self, id: TxId) -> Result<Vec<Event>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at_ms, from_state, to_state, note FROM events WHERE sale_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([id.0], |r| {
            Ok(Event {
                at_ms: r.get(0)?,
                from: r.get(1)?,
                to: r.get(2)?,
                note: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every order number ever allocated for this sale, oldest first.
    pub fn attempts_of(&self, id: TxId) -> Result<Vec<(String, String, Option<String>)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT out_trade_no, path, outcome FROM attempts WHERE sale_id = ?1 ORDER BY created_at_ms, out_trade_no",
        )?;
        let rows = stmt.query_map([id.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Record a refund request (state `pending`) with a fresh out_request_no, after checking
    /// it fits in what is left to refund. Repeating the same `refund_ref` with the same
    /// amount returns the existing refund instead of a second one.
    pub fn create_refund(
        &mut self,
        id: TxId,
        amount_fen: i64,
        refund_ref: &str,
        terminal_id: &str,
    ) -> Result<(Refund, bool)> {
        let now = clock::now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing = tx
            .query_row(
                &format!(
                    "SELECT {REFUND_COLUMNS} FROM refunds WHERE sale_id = ?1 AND refund_ref = ?2"
                ),
                params![id.0, refund_ref],
                refund_from_row,
            )
            .optional()?;
        if let Some(r) = existing {
            let r = r?;
            if r.amount_fen != amount_fen {
                return Err(JournalError::RefundRefReused {
                    refund_ref: refund_ref.to_owned(),
                    amount_fen: r.amount_fen,
                });
            }
            return Ok((r, false));
        }
        let (state, paid): (String, Option<i64>) = tx
            .query_row(
                "SELECT state, COALESCE(paid_fen, amount_fen) FROM sales WHERE id = ?1",
                [id.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or(JournalError::NotFound(id))?;
        let state = parse_state(&state)?;
        if state != SaleState::Succeeded {
            return Err(JournalError::NotRefundable { tx: id, state });
        }
        let held: i64 = tx.query_row(
            "SELECT COALESCE(SUM(amount_fen), 0) FROM refunds WHERE sale_id = ?1 AND state != 'failed'",
            [id.0],
            |r| r.get(0),
        )?;
        let available = paid.unwrap_or(0) - held;
        if amount_fen > available {
            return Err(JournalError::OverRefund {
                requested: amount_fen,
                available,
            });
        }
        let out_request_no = next_order_no(&tx, terminal_id, &self.order_stem, now)?;
        tx.execute(
            "INSERT INTO refunds (sale_id, refund_ref, out_request_no, amount_fen, state, created_at_ms, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)",
            params![id.0, refund_ref, out_request_no, amount_fen, now],
        )?;
        let rid = tx.last_insert_rowid();
        let note = format!("refund {out_request_no} of {amount_fen} fen");
        insert_event(&tx, id, Some(rid), now, None, "refund_pending", Some(&note))?;
        tx.commit()?;
        failpoint::committed("refund_pending", self.conn.path());
        Ok((self.get_refund(rid)?, true))
    }

    pub fn refund_transition(
        &mut self,
        rid: i64,
        from: RefundState,
        to: RefundState,
        explanation: Option<&Explanation>,
    ) -> Result<Refund> {
        let now = clock::now_ms();
        let explanation = explanation.map(to_json).transpose()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (sale, state): (i64, String) = tx
            .query_row(
                "SELECT sale_id, state FROM refunds WHERE id = ?1",
                [rid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or(JournalError::RefundNotFound(rid))?;
        if state != from.as_str() {
            let actual = RefundState::parse(&state)
                .ok_or_else(|| JournalError::Corrupt(format!("refund state {state:?}")))?;
            return Err(JournalError::RefundConflict {
                rid,
                expected: from,
                actual,
            });
        }
        tx.execute(
            "UPDATE refunds SET state = ?2, updated_at_ms = ?3, explanation = COALESCE(?4, explanation) WHERE id = ?1",
            params![rid, to.as_str(), now, explanation],
        )?;
        let to_name = format!("refund_{}", to.as_str());
        insert_event(
            &tx,
            TxId(sale),
            Some(rid),
            now,
            Some(&format!("refund_{}", from.as_str())),
            &to_name,
            None,
        )?;
        tx.commit()?;
        failpoint::committed(&to_name, self.conn.path());
        self.get_refund(rid)
    }

    pub fn get_refund(&self, rid: i64) -> Result<Refund> {
        self.conn
            .query_row(
                &format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE id = ?1"),
                [rid],
                refund_from_row,
            )
            .optional()?
            .ok_or(JournalError::RefundNotFound(rid))?
    }

    pub fn refunds_of(&self, id: TxId) -> Result<Vec<Refund>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE sale_id = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([id.0], refund_from_row)?;
        rows.map(|r| r?).collect()
    }

    pub fn unfinished_refunds(&self) -> Result<Vec<Refund>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE state IN ('pending', 'unknown') ORDER BY id"
        ))?;
        let rows = stmt.query_map([], refund_from_row)?;
        rows.map(|r| r?).collect()
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Apply migrations up to `target` (tests build older journals with it).
fn migrate_to(conn: &mut Connection, target: u32) -> Result<()> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(JournalError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target as usize)
        .skip(found as usize)
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "payment journal migrated");
    }
    Ok(())
}

/// A per-journal random key for the code hashes, so that the hashes of two terminals (or a
/// precomputed table) cannot be matched against each other to follow a customer's codes.
/// It lives in the same file, so it does not hide a code from whoever holds the file; that
/// is acceptable because a code is single-use and expires within a minute.
fn code_hash_key(conn: &Connection) -> Result<Vec<u8>> {
    let existing: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'code_hash_key'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let key = match existing {
        Some(k) => k,
        None => {
            let k = hex::encode(rand::random::<[u8; 32]>());
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('code_hash_key', ?1)",
                [&k],
            )?;
            conn.query_row(
                "SELECT value FROM meta WHERE key = 'code_hash_key'",
                [],
                |r| r.get(0),
            )?
        }
    };
    hex::decode(&key).map_err(|e| JournalError::Corrupt(format!("code_hash_key: {e}")))
}

/// A random stem chosen once, when the journal is created, and kept in it: four characters,
/// an upper-case letter then three upper-case letters or digits (26·36³ ≈ 1.2 million
/// stems). The sequence restarts at 1 in a new journal (a factory reset, a replaced storage
/// card, an A/B update that brings its own journal), while the acquirers remember every order
/// number the terminal ever sent; the stem keeps a recreated journal's numbers apart from the
/// lost one's. The leading letter keeps them apart from the all-digit numbers of journals
/// written before the stem existed.
fn order_stem(conn: &Connection) -> Result<String> {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let candidate: String = {
        let r: [u8; 4] = rand::random();
        let mut s = String::with_capacity(4);
        s.push(char::from(ALNUM[usize::from(r[0]) % 26]));
        for b in &r[1..] {
            s.push(char::from(ALNUM[usize::from(*b) % ALNUM.len()]));
        }
        s
    };
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('order_stem', ?1)",
        [&candidate],
    )?;
    let stem: String =
        conn.query_row("SELECT value FROM meta WHERE key = 'order_stem'", [], |r| {
            r.get(0)
        })?;
    if stem.len() == 4
        && stem
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        Ok(stem)
    } else {
        Err(JournalError::Corrupt(format!("order_stem {stem:?}")))
    }
}

/// `{terminal}{YYMMDD}{stem}{seq:06}`: ≤ 32 characters for a terminal id of up to 16 letters
/// and digits, and only letters and digits — within every acquirer's limits (Alipay
/// `out_trade_no` ≤ 64 letters, digits and `_`, docs/acquirers.md §1.4; WeChat ≤ 32,
/// docs/acquirers.md §2.1; the QRA gateway ≤ 32, docs/acquirers.md §3). The stem (see
/// [`order_stem`]) makes numbers unique for the terminal's life, not only the journal's. The
/// sequence is global within a journal, so even a clock set back to an earlier day cannot
/// produce a number handed out before (it would take a million numbers in one day to wrap).
fn next_order_no(
    tx: &rusqlite::Transaction<'_>,
    terminal_id: &str,
    stem: &str,
    now_ms: i64,
) -> Result<String> {
    let seq: i64 = tx.query_row(
        "UPDATE order_seq SET next = next + 1 WHERE id = 1 RETURNING next - 1",
        [],
        |r| r.get(0),
    )?;
    let date = clock::cst_date(now_ms);
    Ok(format!(
        "{terminal_id}{}{stem}{:06}",
        &date[date.len().saturating_sub(6)..],
        seq % 1_000_000
    ))
}

/// Create `path` 0600 if it does not exist (and its directory 0700), and make an existing
/// one 0600: SQLite creates files with the process umask (often 0644).
fn private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |e: std::io::Error| JournalError::Io {
        path: path.to_owned(),
        source: e,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        // The umask may have taken bits off; the mode asked for is exact.
        set_mode(dir, 0o700)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    set_mode(path, 0o600)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| {
        JournalError::Io {
            path: path.to_owned(),
            source: e,
        }
    })
}

fn insert_sale(
    tx: &rusqlite::Transaction<'_>,
    now: i64,
    amount_fen: i64,
    currency: Currency,
    order_ref: &str,
    options: &SaleOptions,
) -> Result<TxId> {
    tx.execute(
        "INSERT INTO sales (created_at_ms, updated_at_ms, amount_fen, currency, order_ref, options, state)
         VALUES (?1, ?1, ?2, ?3, ?4, ?5, 'awaiting_code')",
        params![now, amount_fen, currency.as_str(), order_ref, to_json(options)?],
    )?;
    let id = TxId(tx.last_insert_rowid());
    insert_event(
        tx,
        id,
        None,
        now,
        None,
        SaleState::AwaitingCode.as_str(),
        None,
    )?;
    Ok(id)
}

/// Allocate the order number and record the attempt (the caller checked the move).
fn attempt_in(
    tx: &rusqlite::Transaction<'_>,
    id: TxId,
    from: SaleState,
    attempt: &NewAttempt<'_>,
    disabled: &[FundingChannel],
    hash: &str,
    stem: &str,
    now: i64,
) -> Result<String> {
    let out_trade_no = next_order_no(tx, attempt.terminal_id, stem, now)?;
    tx.execute(
        "INSERT INTO attempts (out_trade_no, sale_id, path, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
        params![out_trade_no, id.0, attempt.path, now],
    )?;
    tx.execute(
        "UPDATE sales SET state = 'submitted', updated_at_ms = ?2, scheme = ?3, path = ?4,
             out_trade_no = ?5, submitted_at_ms = ?2, code_masked = ?6, code_hash = ?7,
             disabled_funding = ?8, explanation = NULL
         WHERE id = ?1",
        params![
            id.0,
            now,
            attempt.scheme.as_str(),
            attempt.path,
            out_trade_no,
            mask_code(attempt.code),
            hash,
            to_json(disabled)?
        ],
    )?;
    let note = format!("attempt {out_trade_no} via {}", attempt.path);
    insert_event(
        tx,
        id,
        None,
        now,
        Some(from.as_str()),
        SaleState::Submitted.as_str(),
        Some(&note),
    )?;
    Ok(out_trade_no)
}

fn code_holder(conn: &Connection, hash: &str) -> Result<Option<TxId>> {
    Ok(conn
        .query_row("SELECT id FROM sales WHERE code_hash = ?1", [hash], |r| {
            r.get(0)
        })
        .optional()?
        .map(TxId))
}

fn find_order_ref(conn: &Connection, order_ref: &str) -> Result<Option<Transaction>> {
    conn.query_row(
        &format!("SELECT {SALE_COLUMNS} FROM sales WHERE order_ref = ?1 ORDER BY id DESC LIMIT 1"),
        [order_ref],
        sale_from_row,
    )
    .optional()?
    .transpose()
}

fn same_terms(t: &Transaction, amount_fen: i64, currency: Currency) -> Result<()> {
    if t.amount_fen != amount_fen || t.currency != currency {
        return Err(JournalError::OrderRefReused {
            order_ref: t.order_ref.clone(),
            tx: t.id,
            amount_fen: t.amount_fen,
        });
    }
    Ok(())
}

fn figures(conn: &Connection, amount_fen: i64, w: &Windows) -> Result<Figures> {
    Ok(Figures {
        committed_today_fen: committed_amount_since(conn, w.day_start_ms)?,
        recent_submissions: conn.query_row(
            "SELECT COUNT(*) FROM sales WHERE submitted_at_ms >= ?1",
            [w.velocity_since_ms],
            |r| r.get(0),
        )?,
        same_amount_recent: conn.query_row(
            "SELECT COUNT(*) FROM sales WHERE submitted_at_ms >= ?1 AND amount_fen = ?2",
            params![w.repeat_since_ms, amount_fen],
            |r| r.get(0),
        )?,
    })
}

fn committed_amount_since(conn: &Connection, since_ms: i64) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COALESCE(SUM(CASE WHEN state = 'succeeded' THEN COALESCE(paid_fen, amount_fen)
                                  ELSE amount_fen END), 0)
         FROM sales WHERE created_at_ms >= ?1
           AND state IN ('succeeded', 'submitted', 'waiting_for_customer', 'unknown', 'cancelling')",
        [since_ms],
        |r| r.get(0),
    )?)
}

fn state_of(tx: &rusqlite::Transaction<'_>, id: TxId) -> Result<SaleState> {
    let s: String = tx
        .query_row("SELECT state FROM sales WHERE id = ?1", [id.0], |r| {
            r.get(0)
        })
        .optional()?
        .ok_or(JournalError::NotFound(id))?;
    parse_state(&s)
}

fn self_out_trade_no(tx: &rusqlite::Transaction<'_>, id: TxId) -> Result<Option<String>> {
    Ok(tx.query_row(
        "SELECT out_trade_no FROM sales WHERE id = ?1",
        [id.0],
        |r| r.get(0),
    )?)
}

fn check_move(id: TxId, expected: SaleState, actual: SaleState, to: SaleState) -> Result<()> {
    if actual != expected {
        return Err(JournalError::Conflict {
            tx: id,
            expected,
            actual,
        });
    }
    if !expected.can_move_to(to) {
        return Err(JournalError::IllegalMove {
            tx: id,
            from: expected,
            to,
        });
    }
    Ok(())
}

fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    id: TxId,
    refund: Option<i64>,
    at: i64,
    from: Option<&str>,
    to: &str,
    note: Option<&str>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO events (sale_id, refund_id, at_ms, from_state, to_state, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id.0, refund, at, from, to, note],
    )?;
    Ok(())
}

fn parse_state(s: &str) -> Result<SaleState> {
    SaleState::parse(s).ok_or_else(|| JournalError::Corrupt(format!("sale state {s:?}")))
}

fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| JournalError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: Option<String>) -> Result<Option<T>> {
    s.map(|s| serde_json::from_str(&s).map_err(|e| JournalError::Corrupt(format!("{what}: {e}"))))
        .transpose()
}

fn sale_from_row(r: &Row<'_>) -> rusqlite::Result<Result<Transaction>> {
    let currency: String = r.get(4)?;
    let state: String = r.get(7)?;
    let scheme: Option<String> = r.get(8)?;
    let options: Option<String> = r.get(6)?;
    let disabled: Option<String> = r.get(13)?;
    let funding: Option<String> = r.get(16)?;
    let explanation: Option<String> = r.get(18)?;
    let refunded_fen: i64 = r.get(19)?;
    let id = TxId(r.get(0)?);
    let (created_at_ms, updated_at_ms, amount_fen) = (r.get(1)?, r.get(2)?, r.get(3)?);
    let order_ref: String = r.get(5)?;
    let (path, out_trade_no, submitted_at_ms, code_masked) =
        (r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?);
    let (acquirer_trade_no, paid_fen, cancel_requested): (Option<String>, Option<i64>, i64) =
        (r.get(14)?, r.get(15)?, r.get(17)?);
    Ok((|| {
        Ok(Transaction {
            id,
            created_at_ms,
            updated_at_ms,
            amount_fen,
            currency: Currency::parse(&currency)
                .ok_or_else(|| JournalError::Corrupt(format!("currency {currency:?}")))?,
            order_ref,
            options: from_json("options", options)?.unwrap_or_default(),
            state: parse_state(&state)?,
            scheme: scheme
                .map(|s| {
                    Scheme::parse(&s).ok_or_else(|| JournalError::Corrupt(format!("scheme {s:?}")))
                })
                .transpose()?,
            path,
            out_trade_no,
            submitted_at_ms,
            code_masked,
            disabled_funding: from_json("disabled_funding", disabled)?.unwrap_or_default(),
            acquirer_trade_no,
            paid_fen,
            funding: from_json("funding", funding)?.unwrap_or_default(),
            cancel_requested: cancel_requested != 0,
            explanation: from_json("explanation", explanation)?,
            refunded_fen,
        })
    })())
}

fn refund_from_row(r: &Row<'_>) -> rusqlite::Result<Result<Refund>> {
    let state: String = r.get(5)?;
    let explanation: Option<String> = r.get(8)?;
    let (id, sale, refund_ref, out_request_no, amount_fen, created_at_ms, updated_at_ms) = (
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(6)?,
        r.get(7)?,
    );
    Ok((|| {
        Ok(Refund {
            id,
            tx: TxId(sale),
            refund_ref,
            out_request_no,
            amount_fen,
            state: RefundState::parse(&state)
                .ok_or_else(|| JournalError::Corrupt(format!("refund state {state:?}")))?,
            created_at_ms,
            updated_at_ms,
            explanation: from_json("explanation", explanation)?,
        })
    })())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::{Cause, Explanation};

    fn attempt<'a>(code: &'a str) -> NewAttempt<'a> {
        NewAttempt {
            scheme: Scheme::Alipay,
            path: "alipay-direct",
            code,
            disabled_funding: &[],
            terminal_id: "T0001",
        }
    }

    #[test]
    fn a_fresh_journal_is_at_the_current_schema_in_wal_with_full_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::open(&dir.path().join("j.db")).expect("open");
        assert_eq!(j.schema_version().expect("version"), SCHEMA_VERSION);
        assert_eq!(j.synchronous().expect("sync"), 2);
        assert_eq!(j.journal_mode().expect("mode"), "wal");
    }

    #[test]
    fn outside_systemd_the_journal_is_private_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        // The daemon started by hand, in a directory nobody prepared (the usual umask 022
        // would give 0755 and 0644).
        let path = dir.path().join("var-lib-smartpos").join("payments.db");
        let mut j = Journal::open(&path).expect("open");
        j.create_sale(100, Currency::Cny, "a", &SaleOptions::default())
            .expect("a write, so the WAL exists");
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(path.parent().expect("dir")), 0o700);
        assert_eq!(mode(&path), 0o600);
        for suffix in ["-wal", "-shm"] {
            let companion = Path::new(&format!("{}{suffix}", path.display())).to_owned();
            assert!(companion.exists(), "{suffix}");
            assert_eq!(mode(&companion), 0o600, "{suffix}");
        }
        // An existing journal someone made world-readable is made private again on open.
        drop(j);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        drop(Journal::open(&path).expect("reopen"));
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn one_read_gives_the_sale_with_its_refunded_sum() {
        let mut j = Journal::open_in_memory().expect("open");
        let a = j
            .create_sale(1000, Currency::Cny, "a", &SaleOptions::default())
            .expect("a");
        j.begin_attempt(a.id, SaleState::AwaitingCode, &attempt("28763443825664394"))
            .expect("attempt");
        j.transition(
            a.id,
            SaleState::Submitted,
            SaleState::Succeeded,
            &Patch {
                paid_fen: Some(1000),
                ..Patch::default()
            },
        )
        .expect("paid");
        let (r1, _) = j.create_refund(a.id, 300, "r1", "T0001").expect("r1");
        j.create_refund(a.id, 200, "r2", "T0001")
            .expect("r2 stays pending");
        j.refund_transition(r1.id, RefundState::Pending, RefundState::Succeeded, None)
            .expect("r1 done");
        assert_eq!(j.get(a.id).expect("sale").refunded_fen, 300);
        // A second recorder of the same refund is told it lost, not that the file is corrupt.
        let err = j
            .refund_transition(r1.id, RefundState::Pending, RefundState::Succeeded, None)
            .expect_err("already moved");
        assert!(matches!(err, JournalError::RefundConflict { .. }), "{err}");
    }

    #[test]
    fn a_journal_from_newer_software_is_refused_not_downgraded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        drop(Journal::open(&path).expect("open"));
        let c = Connection::open(&path).expect("raw");
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        drop(c);
        assert!(matches!(
            Journal::open(&path),
            Err(JournalError::TooNew { .. })
        ));
    }

    #[test]
    fn order_numbers_are_never_reused_even_after_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        let mut seen = std::collections::HashSet::new();
        for round in 0..3 {
            let mut j = Journal::open(&path).expect("open");
            for k in 0..3 {
                let s = j
                    .create_sale(100, Currency::Cny, "ord", &SaleOptions::default())
                    .expect("sale");
                let code = format!("28{round}{k}00000000000000");
                let s = j
                    .begin_attempt(s.id, SaleState::AwaitingCode, &attempt(&code))
                    .expect("attempt");
                let no = s.out_trade_no.expect("order number");
                assert!(no.starts_with("T0001") && no.len() <= 32, "{no}");
                assert!(seen.insert(no), "an order number was handed out twice");
            }
        }
    }

    #[test]
    fn a_recreated_journal_does_not_hand_out_the_lost_journals_order_numbers() {
        // A storage card is replaced: same terminal id, same day, a brand-new journal. The
        // acquirer still remembers every number the old journal sent.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        let mut first = vec![];
        for round in 0..2 {
            if round == 1 {
                std::fs::remove_file(&path).expect("journal lost");
                for ext in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(dir.path().join(format!("j.db{ext}")));
                }
            }
            let mut j = Journal::open(&path).expect("open");
            let s = j
                .create_sale(100, Currency::Cny, "ord", &SaleOptions::default())
                .expect("sale");
            let s = j
                .begin_attempt(
                    s.id,
                    SaleState::AwaitingCode,
                    &attempt(&format!("2810{round}000000000000")),
                )
                .expect("attempt");
            let no = s.out_trade_no.expect("order number");
            assert_eq!(no.len(), 5 + 6 + 4 + 6, "{no}");
            assert!(no.bytes().all(|b| b.is_ascii_alphanumeric()), "{no}");
            first.push(no);
        }
        assert_ne!(
            first[0], first[1],
            "the new journal's first number repeats the lost journal's first number"
        );
        // The stem is kept: reopening the same journal keeps numbering within it.
        let j = Journal::open(&path).expect("reopen");
        assert_eq!(&first[1][11..15], j.order_stem);
    }

    #[test]
    fn one_payment_code_cannot_pay_two_sales() {
        let mut j = Journal::open_in_memory().expect("open");
        let a = j
            .create_sale(100, Currency::Cny, "a", &SaleOptions::default())
            .expect("a");
        let b = j
            .create_sale(100, Currency::Cny, "b", &SaleOptions::default())
            .expect("b");
        j.begin_attempt(a.id, SaleState::AwaitingCode, &attempt("28763443825664394"))
            .expect("first use");
        let err = j
            .begin_attempt(b.id, SaleState::AwaitingCode, &attempt("28763443825664394"))
            .expect_err("second use");
        assert!(matches!(err, JournalError::CodeAlreadyUsed(t) if t == a.id));
        // And the refused sale is untouched.
        assert_eq!(j.get(b.id).expect("b").state, SaleState::AwaitingCode);
    }

    #[test]
    fn the_code_itself_is_never_stored() {
        let mut j = Journal::open_in_memory().expect("open");
        let a = j
            .create_sale(100, Currency::Cny, "a", &SaleOptions::default())
            .expect("a");
        let t = j
            .begin_attempt(a.id, SaleState::AwaitingCode, &attempt("28763443825664394"))
            .expect("attempt");
        assert_eq!(t.code_masked.as_deref(), Some("28***********4394"));
        let dump: String = j
            .conn
            .query_row(
                "SELECT group_concat(COALESCE(code_hash,'') || COALESCE(code_masked,'')) FROM sales",
                [],
                |r| r.get(0),
            )
            .expect("dump");
        assert!(!dump.contains("28763443825664394"));
    }

    #[test]
    fn a_move_from_a_stale_state_is_a_conflict_and_writes_nothing() {
        let mut j = Journal::open_in_memory().expect("open");
        let a = j
            .create_sale(100, Currency::Cny, "a", &SaleOptions::default())
            .expect("a");
        j.begin_attempt(a.id, SaleState::AwaitingCode, &attempt("28763443825664394"))
            .expect("attempt");
        let err = j
            .transition(
                a.id,
                SaleState::WaitingForCustomer,
                SaleState::Succeeded,
                &Patch::default(),
            )
            .expect_err("stale");
        assert!(matches!(err, JournalError::Conflict { .. }));
        let err = j
            .transition(
                a.id,
                SaleState::Submitted,
                SaleState::Cancelled,
                &Patch::default(),
            )
            .expect_err("illegal");
        assert!(matches!(err, JournalError::IllegalMove { .. }));
        assert_eq!(j.get(a.id).expect("a").state, SaleState::Submitted);
    }

    #[test]
    fn partial_refunds_add_up_and_an_over_refund_is_refused() {
        let mut j = Journal::open_in_memory().expect("open");
        let a = j
            .create_sale(1000, Currency::Cny, "a", &SaleOptions::default())
            .expect("a");
        let err = j
            .create_refund(a.id, 100, "r0", "T0001")
            .expect_err("unpaid");
        assert!(matches!(err, JournalError::NotRefundable { .. }));
        j.begin_attempt(a.id, SaleState::AwaitingCode, &attempt("28763443825664394"))
            .expect("attempt");
        j.transition(
            a.id,
            SaleState::Submitted,
            SaleState::Succeeded,
            &Patch {
                paid_fen: Some(1000),
                ..Patch::default()
            },
        )
        .expect("paid");
        let (r1, new) = j.create_refund(a.id, 300, "r1", "T0001").expect("r1");
        assert!(new);
        let (again, new) = j.create_refund(a.id, 300, "r1", "T0001").expect("r1 again");
        assert!(!new);
        assert_eq!(again.out_request_no, r1.out_request_no);
        assert!(matches!(
            j.create_refund(a.id, 400, "r1", "T0001"),
            Err(JournalError::RefundRefReused { .. })
        ));
        j.create_refund(a.id, 600, "r2", "T0001").expect("r2");
        let err = j.create_refund(a.id, 101, "r3", "T0001").expect_err("over");
        assert!(matches!(
            err,
            JournalError::OverRefund {
                requested: 101,
                available: 100
            }
        ));
        // A refused refund gives its amount back.
        let why = Explanation::new(Cause::Guidance, "X", "x", "x");
        j.refund_transition(r1.id, RefundState::Pending, RefundState::Failed, Some(&why))
            .expect("failed");
        j.create_refund(a.id, 400, "r3", "T0001").expect("fits now");
    }

    #[test]
    fn a_journal_written_by_schema_1_is_upgraded_with_its_sales_intact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        {
            let mut c = Connection::open(&path).expect("raw");
            migrate_to(&mut c, 1).expect("v1");
            c.execute(
                "INSERT INTO sales (created_at_ms, updated_at_ms, amount_fen, currency, order_ref, options, state)
                 VALUES (1, 1, 2350, 'CNY', 'from-v1', '{}', 'succeeded')",
                [],
            )
            .expect("old sale");
        }
        let j = Journal::open(&path).expect("upgrade");
        assert_eq!(j.schema_version().expect("version"), SCHEMA_VERSION);
        let sales = j.list_recent(10).expect("sales");
        assert_eq!(sales.len(), 1);
        assert_eq!(
            (sales[0].order_ref.as_str(), sales[0].amount_fen),
            ("from-v1", 2350)
        );
        let indexes: i64 = j
            .conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'sales_by_submitted'",
                [],
                |r| r.get(0),
            )
            .expect("index");
        assert_eq!(indexes, 1);
    }

    #[test]
    fn the_schema_files_are_the_ones_the_journal_runs() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("migrations dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        assert_eq!(
            files.len(),
            MIGRATIONS.len(),
            "every .sql file is a migration"
        );
        for (i, f) in files.iter().enumerate() {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
            assert!(
                name.starts_with(&format!("{:04}_", i + 1)),
                "{name} out of order"
            );
            assert_eq!(std::fs::read_to_string(f).expect("read"), MIGRATIONS[i]);
        }
        let j = Journal::open_in_memory().expect("open");
        let mut tables: Vec<String> = j
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        tables.sort();
        assert_eq!(
            tables,
            [
                "attempts",
                "events",
                "meta",
                "order_seq",
                "refunds",
                "sales"
            ]
        );
    }
}
