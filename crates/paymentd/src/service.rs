//! `org.smartpos.Payment1` and its transaction objects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use smartpos_bus::payment::{ERROR_REFUSED, TX_INTERFACE, tx_id, tx_path};
use smartpos_payment::{
    FundingChannel, PayTarget, PaymentError, PaymentService, SaleOptions, Transaction, TxId,
    model::RefundState,
};
use smartpos_runtime::auth::Policy;
use zbus::object_server::{ObjectServer, SignalEmitter};
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};
use zbus::{Connection, fdo, interface, message::Header};

use crate::scan::ScanLink;

/// Errors as the caller sees them. Bad input is `InvalidArgs` and changes nothing; a rule or
/// the sale's state refusing is `org.smartpos.Payment1.Error.Refused`; the rest are the
/// standard `org.freedesktop.DBus.Error.*`.
#[derive(Debug)]
pub enum Error {
    Fdo(fdo::Error),
    /// Refused by a rule or by the state of the sale; the message says why and what to do.
    Refused(String),
}

impl zbus::DBusError for Error {
    fn create_reply(
        &self,
        hdr: &zbus::message::Header<'_>,
    ) -> zbus::Result<zbus::message::Message> {
        zbus::message::Message::error(hdr, self.name())?
            .build(&(self.description().unwrap_or_default(),))
    }

    fn name(&self) -> zbus::names::ErrorName<'_> {
        match self {
            Error::Fdo(e) => e.name(),
            Error::Refused(_) => zbus::names::ErrorName::from_static_str_unchecked(ERROR_REFUSED),
        }
    }

    fn description(&self) -> Option<&str> {
        match self {
            Error::Fdo(e) => e.description(),
            Error::Refused(m) => Some(m),
        }
    }
}

impl From<fdo::Error> for Error {
    fn from(e: fdo::Error) -> Self {
        Error::Fdo(e)
    }
}

impl From<zbus::Error> for Error {
    fn from(e: zbus::Error) -> Self {
        Error::Fdo(e.into())
    }
}

impl From<PaymentError> for Error {
    fn from(e: PaymentError) -> Self {
        match &e {
            PaymentError::Invalid(v) => fdo::Error::InvalidArgs(v.to_string()).into(),
            PaymentError::NotPaymentCode(x)
            | PaymentError::SchemeDisabled(x)
            | PaymentError::Blocked(x) => Error::Refused(x.one_line()),
            PaymentError::WrongState { .. }
            | PaymentError::NoSaleAwaitingCode
            | PaymentError::NoRoute { .. } => Error::Refused(e.to_string()),
            PaymentError::Journal(j)
                if j.to_string().contains("refund") || j.to_string().contains("no sale") =>
            {
                Error::Refused(e.to_string())
            }
            _ => fdo::Error::Failed(e.to_string()).into(),
        }
    }
}

/// Per-sale notes that are not journal state: the last scan that did not pay.
pub type Hints = Arc<Mutex<HashMap<TxId, String>>>;

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct PaymentIface {
    pub svc: PaymentService,
    pub policy: Policy,
    pub scan: ScanLink,
    pub hints: Hints,
    pub scan_timeout_ms: u32,
}

/// Options of Sale and PayWithCode: (sale options, arm the scanner, scan timeout).
fn parse_options(
    options: &HashMap<String, OwnedValue>,
    default_timeout: u32,
) -> fdo::Result<(SaleOptions, bool, u32)> {
    let mut o = SaleOptions::default();
    let (mut scan, mut timeout) = (true, default_timeout);
    let bad = |k: &str, want: &str| fdo::Error::InvalidArgs(format!("option {k:?} must be {want}"));
    for (k, v) in options {
        match k.as_str() {
            "subject" => {
                o.subject = Some(String::try_from(dup(v)?).map_err(|_| bad(k, "a string (s)"))?)
            }
            "operator_id" => {
                o.operator_id = Some(String::try_from(dup(v)?).map_err(|_| bad(k, "a string (s)"))?)
            }
            "virtual_goods" => {
                o.virtual_goods = bool::try_from(&**v).map_err(|_| bad(k, "a boolean (b)"))?
            }
            "scan" => scan = bool::try_from(&**v).map_err(|_| bad(k, "a boolean (b)"))?,
            "scan_timeout_ms" => {
                timeout = u32::try_from(&**v).map_err(|_| bad(k, "an unsigned integer (u)"))?;
                if timeout == 0 || timeout > 600_000 {
                    return Err(fdo::Error::InvalidArgs(format!(
                        "scan_timeout_ms {timeout}: expected 1 to 600000"
                    )));
                }
            }
            "disable_funding" => {
                let names =
                    Vec::<String>::try_from(dup(v)?).map_err(|_| bad(k, "a string array (as)"))?;
                for n in names {
                    let ch: FundingChannel = serde_json::from_value(serde_json::Value::String(n.clone())).map_err(|_| {
                        fdo::Error::InvalidArgs(format!(
                            "disable_funding: unknown channel {n:?}; expected balance, bank_card, huabei, huabei_instalments or credit_card"
                        ))
                    })?;
                    o.disable_funding.push(ch);
                }
            }
            other => {
                return Err(fdo::Error::InvalidArgs(format!(
                    "unknown option {other:?}; known: subject, operator_id, virtual_goods, disable_funding, scan, scan_timeout_ms"
                )));
            }
        }
    }
    Ok((o, scan, timeout))
}

fn dup(v: &OwnedValue) -> fdo::Result<OwnedValue> {
    v.try_clone()
        .map_err(|e| fdo::Error::InvalidArgs(e.to_string()))
}

fn tx_of(path: &ObjectPath<'_>) -> fdo::Result<TxId> {
    tx_id(path.as_str()).map(TxId).ok_or_else(|| {
        fdo::Error::InvalidArgs(format!(
            "{path} is not a transaction path (/org/smartpos/Payment1/tx/<id>)"
        ))
    })
}

fn owned_path(id: TxId) -> OwnedObjectPath {
    OwnedObjectPath::try_from(tx_path(id.0)).expect("tx paths are valid object paths")
}

/// Serve the object of `id` if it is not served yet.
pub async fn register(
    server: &ObjectServer,
    svc: &PaymentService,
    hints: &Hints,
    id: TxId,
) -> zbus::Result<()> {
    let obj = TxIface {
        svc: svc.clone(),
        hints: hints.clone(),
        id,
    };
    server.at(tx_path(id.0), obj).await?;
    Ok(())
}

#[interface(name = "org.smartpos.Payment1")]
impl PaymentIface {
    #[zbus(out_args("transaction"))]
    async fn sale(
        &self,
        amount_fen: i64,
        currency: String,
        order_ref: String,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, Error> {
        self.policy.check(&hdr, conn, "start a sale").await?;
        let (opts, scan, timeout) = parse_options(&options, self.scan_timeout_ms)?;
        let id = self
            .svc
            .sale(amount_fen, &currency, &order_ref, opts)
            .await?;
        register(server, &self.svc, &self.hints, id).await?;
        if scan && let Err(why) = self.scan.arm(id, timeout).await {
            lock(&self.hints).insert(id, why);
        }
        Ok(owned_path(id))
    }

    #[zbus(out_args("transaction"))]
    async fn pay_with_code(
        &self,
        amount_fen: i64,
        currency: String,
        order_ref: String,
        options: HashMap<String, OwnedValue>,
        code: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, Error> {
        self.policy.check(&hdr, conn, "take a payment").await?;
        let (opts, _, _) = parse_options(&options, self.scan_timeout_ms)?;
        if code.len() > 512 {
            return Err(fdo::Error::InvalidArgs(
                "code is longer than 512 bytes: not a payment code".into(),
            )
            .into());
        }
        let target = PayTarget::New {
            amount_fen,
            currency,
            order_ref,
            options: opts,
        };
        let id = self.svc.pay_with_code(target, &code).await?;
        register(server, &self.svc, &self.hints, id).await?;
        Ok(owned_path(id))
    }

    #[zbus(out_args("state"))]
    async fn query(
        &self,
        transaction: ObjectPath<'_>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.policy.check(&hdr, conn, "query a sale").await?;
        let t = self.svc.query(tx_of(&transaction)?).await?;
        Ok(t.state.as_str().to_owned())
    }

    #[zbus(out_args("state"))]
    async fn cancel(
        &self,
        transaction: ObjectPath<'_>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.policy.check(&hdr, conn, "cancel a sale").await?;
        let id = tx_of(&transaction)?;
        self.scan.disarm(id).await;
        let t = self.svc.cancel(id).await?;
        Ok(t.state.as_str().to_owned())
    }

    #[zbus(out_args("refund"))]
    async fn refund(
        &self,
        transaction: ObjectPath<'_>,
        amount_fen: i64,
        refund_ref: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<HashMap<String, OwnedValue>, Error> {
        self.policy.check(&hdr, conn, "refund").await?;
        let r = self
            .svc
            .refund(tx_of(&transaction)?, amount_fen, &refund_ref)
            .await?;
        let mut out: HashMap<String, OwnedValue> = HashMap::new();
        out.insert("id".into(), OwnedValue::from(r.id));
        out.insert("state".into(), str_value(r.state.as_str()));
        out.insert("amount_fen".into(), OwnedValue::from(r.amount_fen));
        if let Some(e) = &r.explanation {
            out.insert("cause".into(), str_value(e.cause.as_str()));
            out.insert("code".into(), str_value(&e.code));
            out.insert("instruction_zh".into(), str_value(&e.zh));
            out.insert("instruction_en".into(), str_value(&e.en));
        }
        Ok(out)
    }

    #[zbus(out_args("transactions"))]
    async fn list_transactions(
        &self,
        limit: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<Vec<OwnedObjectPath>, Error> {
        self.policy.check(&hdr, conn, "list sales").await?;
        let n = usize::try_from(limit.min(500)).unwrap_or(500);
        let txs = self
            .svc
            .list_recent(n)
            .map_err(|e| fdo::Error::Failed(e.to_string()))?;
        let mut out = Vec::with_capacity(txs.len());
        for t in txs {
            register(server, &self.svc, &self.hints, t.id).await?;
            out.push(owned_path(t.id));
        }
        Ok(out)
    }

    /// Findings per cause group (see `crate::diagnose`); read-only, no journal change.
    #[zbus(out_args("findings"))]
    async fn diagnose(&self) -> Vec<smartpos_bus::diagnose::Finding> {
        crate::diagnose::findings(&self.svc, self.scan.enabled(), self.scan.available()).await
    }

    #[zbus(signal)]
    pub async fn transaction_changed(
        emitter: &SignalEmitter<'_>,
        transaction: ObjectPath<'_>,
        state: &str,
    ) -> zbus::Result<()>;

    #[zbus(property)]
    fn version(&self) -> String {
        smartpos_runtime::VERSION.to_owned()
    }

    #[zbus(property)]
    pub fn state(&self) -> String {
        if self.scan.available() {
            "ready"
        } else {
            "no_scanner"
        }
        .to_owned()
    }

    #[zbus(property)]
    fn terminal_id(&self) -> String {
        self.svc.config().terminal_id.clone()
    }

    #[zbus(property)]
    fn config_version(&self) -> u64 {
        self.svc.config().version
    }

    #[zbus(property)]
    fn config_synced_at(&self) -> String {
        self.svc.config().synced_at.clone()
    }

    #[zbus(property)]
    fn schemes(&self) -> Vec<String> {
        self.svc
            .config()
            .merchant
            .schemes
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect()
    }

    #[zbus(property)]
    fn funding(&self) -> Vec<String> {
        self.svc
            .config()
            .merchant
            .funding
            .iter()
            .map(json_name)
            .collect()
    }
}

fn str_value(s: &str) -> OwnedValue {
    OwnedValue::try_from(Value::from(s)).expect("a string is always a valid value")
}

/// The snake_case name serde gives an enum value.
pub fn json_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// One sale on the bus. Properties are read from the journal, so a client that comes back
/// after a restart of the daemon sees what the journal holds.
pub struct TxIface {
    svc: PaymentService,
    hints: Hints,
    id: TxId,
}

impl TxIface {
    fn tx(&self) -> fdo::Result<Transaction> {
        self.svc
            .get(self.id)
            .map_err(|e| fdo::Error::Failed(e.to_string()))
    }

    fn explanation_field(
        &self,
        f: impl FnOnce(&smartpos_payment::Explanation) -> String,
    ) -> fdo::Result<String> {
        Ok(self.tx()?.explanation.as_ref().map(f).unwrap_or_default())
    }
}

/// The properties that change over a sale's life, for one PropertiesChanged (invalidated).
pub const TX_CHANGING: &[&str] = &[
    "State",
    "Scheme",
    "CodeMasked",
    "OutTradeNo",
    "AcquirerTradeNo",
    "PaidFen",
    "RefundedFen",
    "FundingChannels",
    "Cause",
    "ErrorCode",
    "InstructionZh",
    "InstructionEn",
    "AcquirerMessage",
    "Hint",
    "UpdatedAtMs",
];

#[interface(name = "org.smartpos.Payment1.Transaction")]
impl TxIface {
    #[zbus(signal)]
    pub async fn changed(emitter: &SignalEmitter<'_>, state: &str) -> zbus::Result<()>;

    #[zbus(property)]
    fn id(&self) -> i64 {
        self.id.0
    }
    #[zbus(property)]
    fn amount_fen(&self) -> fdo::Result<i64> {
        Ok(self.tx()?.amount_fen)
    }
    #[zbus(property)]
    fn currency(&self) -> fdo::Result<String> {
        Ok(self.tx()?.currency.as_str().to_owned())
    }
    #[zbus(property)]
    fn order_ref(&self) -> fdo::Result<String> {
        Ok(self.tx()?.order_ref)
    }
    #[zbus(property)]
    fn state(&self) -> fdo::Result<String> {
        Ok(self.tx()?.state.as_str().to_owned())
    }
    #[zbus(property)]
    fn scheme(&self) -> fdo::Result<String> {
        Ok(self
            .tx()?
            .scheme
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default())
    }
    #[zbus(property)]
    fn code_masked(&self) -> fdo::Result<String> {
        Ok(self.tx()?.code_masked.unwrap_or_default())
    }
    #[zbus(property)]
    fn out_trade_no(&self) -> fdo::Result<String> {
        Ok(self.tx()?.out_trade_no.unwrap_or_default())
    }
    #[zbus(property)]
    fn acquirer_trade_no(&self) -> fdo::Result<String> {
        Ok(self.tx()?.acquirer_trade_no.unwrap_or_default())
    }
    #[zbus(property)]
    fn paid_fen(&self) -> fdo::Result<i64> {
        Ok(self.tx()?.paid_fen.unwrap_or(0))
    }
    #[zbus(property)]
    fn refunded_fen(&self) -> fdo::Result<i64> {
        let refunds = self
            .svc
            .refunds_of(self.id)
            .map_err(|e| fdo::Error::Failed(e.to_string()))?;
        Ok(refunds
            .iter()
            .filter(|r| r.state == RefundState::Succeeded)
            .map(|r| r.amount_fen)
            .sum())
    }
    #[zbus(property)]
    fn funding_channels(&self) -> fdo::Result<Vec<String>> {
        Ok(self
            .tx()?
            .funding
            .iter()
            .map(|f| {
                f.channel
                    .map(|c| json_name(&c))
                    .unwrap_or_else(|| f.raw.clone())
            })
            .collect())
    }
    #[zbus(property)]
    fn cause(&self) -> fdo::Result<String> {
        self.explanation_field(|e| e.cause.as_str().to_owned())
    }
    #[zbus(property)]
    fn error_code(&self) -> fdo::Result<String> {
        self.explanation_field(|e| e.code.clone())
    }
    #[zbus(property)]
    fn instruction_zh(&self) -> fdo::Result<String> {
        self.explanation_field(|e| e.zh.to_string())
    }
    #[zbus(property)]
    fn instruction_en(&self) -> fdo::Result<String> {
        self.explanation_field(|e| e.en.to_string())
    }
    #[zbus(property)]
    fn acquirer_message(&self) -> fdo::Result<String> {
        self.explanation_field(|e| e.raw_message.clone().unwrap_or_default())
    }
    #[zbus(property)]
    fn hint(&self) -> String {
        lock(&self.hints).get(&self.id).cloned().unwrap_or_default()
    }
    #[zbus(property)]
    fn created_at_ms(&self) -> fdo::Result<i64> {
        Ok(self.tx()?.created_at_ms)
    }
    #[zbus(property)]
    fn updated_at_ms(&self) -> fdo::Result<i64> {
        Ok(self.tx()?.updated_at_ms)
    }
}

/// Tell the bus that sale `id` changed: Changed on its object, TransactionChanged on the
/// service, and one PropertiesChanged invalidating what may have moved.
pub async fn announce(conn: &Connection, id: TxId, state: &str) -> zbus::Result<()> {
    let path = tx_path(id.0);
    let tx_emitter = SignalEmitter::new(conn, path.as_str())?;
    TxIface::changed(&tx_emitter, state).await?;
    fdo::Properties::properties_changed(
        &tx_emitter,
        zbus::names::InterfaceName::from_static_str_unchecked(TX_INTERFACE),
        HashMap::new(),
        std::borrow::Cow::Borrowed(TX_CHANGING),
    )
    .await?;
    let svc_emitter = SignalEmitter::new(conn, smartpos_bus::payment::PATH)?;
    PaymentIface::transaction_changed(&svc_emitter, ObjectPath::try_from(path.as_str())?, state)
        .await
}
