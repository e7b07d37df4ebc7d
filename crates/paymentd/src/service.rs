//! `org.smartpos.Payment1` and its transaction objects.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use smartpos_bus::payment::{TX_INTERFACE, tx_id, tx_path};
use smartpos_payment::journal::JournalError;
use smartpos_payment::service::validate::excerpt;
use smartpos_payment::{
    Explanation, FundingChannel, PayTarget, PaymentError, PaymentService, SaleOptions, SaleState,
    Transaction, TxId,
};
use smartpos_runtime::auth::{Policy, Readers};
use smartpos_runtime::error::BusError;
use smartpos_runtime::strict::Strict;
use zbus::object_server::{ObjectServer, SignalEmitter};
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};
use zbus::{Connection, fdo, interface, message::Header};

use crate::scan::ScanLink;

/// Errors as the caller sees them: one D-Bus error name per kind (see
/// `smartpos_bus::errors` and the XML), chosen from the library's typed errors, never from
/// their text. The naming itself is `smartpos_runtime::error::BusError`'s; this wrapper only
/// adds the conversions from the payment library's errors.
///
/// A request refused with an explanation (not a payment code, a wallet or channel switched
/// off, a risk or policy rule, an update installing) may leave no sale behind to read it
/// from, so the error carries it as data: its body is `(s message, s cause, s code,
/// s instruction_zh, s instruction_en)`. The first argument is the sentence every D-Bus
/// library shows; the other four are for the app (docs/VENDOR-API.md, "Errors").
#[derive(Debug)]
pub struct Error(BusError, Option<Box<Explanation>>);

impl Error {
    fn named(name: &'static str, message: impl Into<String>) -> Self {
        Error(BusError::named(name, message), None)
    }
}

impl zbus::DBusError for Error {
    fn create_reply(
        &self,
        hdr: &zbus::message::Header<'_>,
    ) -> zbus::Result<zbus::message::Message> {
        let Some(e) = &self.1 else {
            return self.0.create_reply(hdr);
        };
        zbus::message::Message::error(hdr, self.name())?.build(&(
            self.description().unwrap_or_default(),
            e.cause.as_str(),
            e.code.as_str(),
            e.zh.as_ref(),
            e.en.as_ref(),
        ))
    }

    fn name(&self) -> zbus::names::ErrorName<'_> {
        self.0.name()
    }

    fn description(&self) -> Option<&str> {
        self.0.description()
    }
}

impl From<fdo::Error> for Error {
    fn from(e: fdo::Error) -> Self {
        Error(e.into(), None)
    }
}

impl From<zbus::Error> for Error {
    fn from(e: zbus::Error) -> Self {
        Error(e.into(), None)
    }
}

/// The error name for each kind of library error. Every variant is named here, so a new one
/// cannot fall into a catch-all unnoticed.
pub fn error_name(e: &PaymentError) -> &'static str {
    use smartpos_bus::errors::{BUSY, FAILED, INVALID_ARGS, NOT_FOUND, REFUSED, UNAVAILABLE};
    match e {
        PaymentError::Invalid(_) => INVALID_ARGS,
        PaymentError::NotPaymentCode(_)
        | PaymentError::SchemeDisabled(_)
        | PaymentError::Blocked(_)
        | PaymentError::WrongState { .. }
        | PaymentError::NoSaleAwaitingCode
        | PaymentError::NoRoute { .. } => REFUSED,
        PaymentError::NoConnector(_) => UNAVAILABLE,
        PaymentError::Installing(_) | PaymentError::SalesInFlight(_) => BUSY,
        PaymentError::Journal(j) => match j {
            JournalError::NotFound(_) | JournalError::RefundNotFound(_) => NOT_FOUND,
            JournalError::CodeAlreadyUsed(_)
            | JournalError::OverRefund { .. }
            | JournalError::NotRefundable { .. }
            | JournalError::RefundRefReused { .. }
            | JournalError::OrderRefReused { .. } => REFUSED,
            JournalError::Conflict { .. } | JournalError::RefundConflict { .. } => BUSY,
            JournalError::Sqlite(_) | JournalError::Io { .. } => UNAVAILABLE,
            JournalError::TooNew { .. }
            | JournalError::IllegalMove { .. }
            | JournalError::Corrupt(_) => FAILED,
        },
    }
}

impl From<PaymentError> for Error {
    fn from(e: PaymentError) -> Self {
        let name = error_name(&e);
        let message = match &e {
            // The cashier-facing line: cause, code, instruction.
            PaymentError::NotPaymentCode(x)
            | PaymentError::SchemeDisabled(x)
            | PaymentError::Blocked(x)
            | PaymentError::Installing(x) => x.one_line(),
            other => other.to_string(),
        };
        if name == smartpos_bus::errors::INVALID_ARGS {
            return fdo::Error::InvalidArgs(message).into();
        }
        Error(
            BusError::named(name, message),
            e.explanation().cloned().map(Box::new),
        )
    }
}

impl From<JournalError> for Error {
    fn from(e: JournalError) -> Self {
        PaymentError::Journal(e).into()
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
    pub objects: Objects,
    pub scan_timeout_ms: u32,
    pub updates: Updates,
}

/// What the update side needs: who may hold the install window and apply a merchant
/// configuration, the window itself, and where the configuration and its key are.
pub struct Updates {
    /// Root and the update service's users.
    pub installers: Policy,
    /// Those, and technicians.
    pub appliers: Policy,
    pub window: crate::install::Window,
    pub merchant_config: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Largest merchant configuration `ApplyMerchantConfig` takes (the example is 4 KiB).
const MAX_CONFIG_BYTES: usize = 1 << 20;

/// The service's properties a new merchant configuration changes.
pub async fn announce_config(
    conn: &Connection,
    cfg: &smartpos_payment::config::Config,
) -> zbus::Result<()> {
    let schemes: Vec<String> = cfg
        .merchant
        .schemes
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    let funding: Vec<String> = cfg.merchant.funding.iter().map(json_name).collect();
    let mut changed: HashMap<&str, Value<'_>> = HashMap::new();
    changed.insert("ConfigVersion", Value::from(cfg.version));
    changed.insert("ConfigSyncedAt", Value::from(cfg.synced_at.as_str()));
    changed.insert("Schemes", Value::from(schemes));
    changed.insert("Funding", Value::from(funding));
    service_properties_changed(conn, changed).await
}

/// PropertiesChanged on the service object, with the new values.
pub async fn service_properties_changed(
    conn: &Connection,
    changed: HashMap<&str, Value<'_>>,
) -> zbus::Result<()> {
    let emitter = SignalEmitter::new(conn, smartpos_bus::payment::PATH)?;
    fdo::Properties::properties_changed(
        &emitter,
        zbus::names::InterfaceName::from_static_str_unchecked(smartpos_bus::payment::INTERFACE),
        changed,
        std::borrow::Cow::Borrowed(&[]),
    )
    .await
}

/// The unique bus name of the caller.
fn sender(hdr: &Header<'_>) -> Result<String, Error> {
    hdr.sender()
        .map(ToString::to_string)
        .ok_or_else(|| fdo::Error::AccessDenied("message has no sender".into()).into())
}

fn refusal(r: crate::install::Refusal) -> Error {
    use crate::install::Refusal;
    match r {
        Refusal::Busy(m) => Error::named(smartpos_bus::errors::BUSY, m),
        Refusal::NotHolder(m) => Error::named(smartpos_bus::errors::REFUSED, m),
        Refusal::Failed(m) => Error::named(smartpos_bus::errors::UNAVAILABLE, m),
    }
}

/// Options of Sale and PayWithCode: (sale options, arm the scanner, scan timeout).
fn parse_options(
    options: &HashMap<String, OwnedValue>,
    default_timeout: u32,
) -> fdo::Result<(SaleOptions, bool, u32)> {
    let mut o = SaleOptions::default();
    let (mut scan, mut timeout) = (true, default_timeout);
    let bad = |k: &str, want: &str| {
        fdo::Error::InvalidArgs(format!("option \"{}\" must be {want}", excerpt(k, 64)))
    };
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
                            "disable_funding: unknown channel \"{}\"; expected balance, bank_card, huabei, huabei_instalments or credit_card",
                            excerpt(&n, 64)
                        ))
                    })?;
                    o.disable_funding.push(ch);
                }
            }
            other => {
                return Err(fdo::Error::InvalidArgs(format!(
                    "unknown option \"{}\"; known: subject, operator_id, virtual_goods, disable_funding, scan, scan_timeout_ms",
                    excerpt(other, 64)
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

/// The sale objects on the bus and what they are served from.
///
/// At most [`EXPORTED`] sales are on the bus at once: those most recently created, listed or
/// found. When a newer one comes, the oldest finished sale leaves the bus (its journal row
/// stays; ListTransactions and FindTransaction put it back). Sales still in progress are
/// never taken off.
#[derive(Clone)]
pub struct Objects {
    pub svc: PaymentService,
    pub hints: Hints,
    pub readers: Arc<Readers>,
    pub views: Arc<Views>,
    exported: Arc<Mutex<VecDeque<TxId>>>,
}

/// How many sale objects stay on the bus.
pub const EXPORTED: usize = 256;

impl Objects {
    pub fn new(svc: PaymentService, hints: Hints, readers: Arc<Readers>) -> Self {
        Objects {
            svc,
            hints,
            readers,
            views: Arc::default(),
            exported: Arc::default(),
        }
    }

    /// Serve the object of `id` if it is not served yet, and take the oldest finished sale
    /// off the bus when there are too many.
    pub async fn register(&self, server: &ObjectServer, id: TxId) -> zbus::Result<()> {
        let leave = {
            let mut ex = lock(&self.exported);
            let Some(leave) = make_room(&mut ex, &self.hints, id, EXPORTED, |t| {
                self.svc
                    .get(t)
                    .map(|t| t.state.is_terminal())
                    .unwrap_or(true)
            }) else {
                return Ok(());
            };
            leave
        };
        let obj = TxIface {
            svc: self.svc.clone(),
            hints: self.hints.clone(),
            readers: self.readers.clone(),
            views: self.views.clone(),
            id,
        };
        // The wrapper refuses a whole GetAll to a stranger (zbus's own GetAll would leave
        // out each refused property and answer an empty list).
        server
            .at(
                tx_path(id.0),
                Strict::new(obj).readable_by(self.readers.clone()),
            )
            .await?;
        for old in leave {
            server.remove::<Strict<TxIface>, _>(tx_path(old.0)).await?;
            self.views.invalidate(old);
        }
        Ok(())
    }
}

/// Put `id` on `exported` (the sales on the bus, oldest first) as the newest; `None` if it
/// was there already (then it only becomes the newest). Otherwise the sales that must leave
/// the bus so that at most `limit` stay: the oldest of those `finished` says are finished,
/// never one still in progress (those keep their place, even above the limit). The hints of
/// the sales that leave go with them.
fn make_room(
    exported: &mut VecDeque<TxId>,
    hints: &Hints,
    id: TxId,
    limit: usize,
    finished: impl Fn(TxId) -> bool,
) -> Option<Vec<TxId>> {
    if let Some(at) = exported.iter().position(|t| *t == id) {
        // Touched again: it is the newest now.
        exported.remove(at);
        exported.push_back(id);
        return None;
    }
    exported.push_back(id);
    let mut leave = Vec::new();
    let mut kept = VecDeque::new();
    while exported.len() + kept.len() > limit {
        let Some(old) = exported.pop_front() else {
            break;
        };
        if finished(old) {
            leave.push(old);
        } else {
            kept.push_back(old);
        }
    }
    // Unfinished sales keep their place at the old end.
    while let Some(k) = kept.pop_back() {
        exported.push_front(k);
    }
    let mut h = lock(hints);
    for old in &leave {
        h.remove(old);
    }
    Some(leave)
}

/// Keep the hints in step with a sale's state change: a hint is about waiting for a code,
/// so a finished sale has none. True if a hint was dropped.
pub fn settle_hint(hints: &Hints, tx: TxId, to: SaleState) -> bool {
    to.is_terminal() && lock(hints).remove(&tx).is_some()
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
            .await
            .inspect_err(crate::diagnose::call_refused)?;
        self.objects.register(server, id).await?;
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
        let id = self
            .svc
            .pay_with_code(target, &code)
            .await
            .inspect_err(crate::diagnose::call_refused)?;
        self.objects.register(server, id).await?;
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
        let id = tx_of(&transaction)?;
        let r = self.svc.refund(id, amount_fen, &refund_ref).await;
        // RefundedFen may have moved, whatever the outcome.
        self.objects.views.invalidate(id);
        let r = r?;
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
        let txs = self.svc.read_recent(n).await?;
        let mut out = Vec::with_capacity(txs.len());
        for t in txs {
            self.objects.register(server, t.id).await?;
            out.push(owned_path(t.id));
        }
        Ok(out)
    }

    /// The sale started with `order_ref` (the app's own order number), e.g. after a Sale or
    /// PayWithCode whose answer was lost; NotFound if there is none.
    #[zbus(out_args("transaction"))]
    async fn find_transaction(
        &self,
        order_ref: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, Error> {
        self.policy.check(&hdr, conn, "find a sale").await?;
        let Some(id) = self.svc.find_by_order_ref(&order_ref).await?.map(|t| t.id) else {
            return Err(Error::named(
                smartpos_bus::errors::NOT_FOUND,
                format!("no sale has order_ref \"{}\"", excerpt(&order_ref, 64)),
            ));
        };
        self.objects.register(server, id).await?;
        Ok(owned_path(id))
    }

    /// Close the till for an update: refused (Busy) while a sale is in flight; from then
    /// on Sale and PayWithCode answer Busy until EndInstallWindow, the caller leaving the
    /// bus, or `install_window_max_s`.
    async fn begin_install_window(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        self.updates
            .installers
            .check(&hdr, conn, "open the install window")
            .await?;
        let holder = sender(&hdr)?;
        self.updates
            .window
            .begin(&holder, conn)
            .await
            .map_err(refusal)
    }

    async fn end_install_window(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        self.updates
            .installers
            .check(&hdr, conn, "close the install window")
            .await?;
        let holder = sender(&hdr)?;
        self.updates.window.end(&holder).await.map_err(refusal)
    }

    /// A new merchant configuration, signed by the fleet: checked (signature, TOML, every
    /// rule, every file it names, a higher version, this terminal), written atomically, and
    /// used by the next sale; sales in flight finish with the one they started with.
    #[zbus(out_args("version", "synced_at"))]
    async fn apply_merchant_config(
        &self,
        config: Vec<u8>,
        signature: Vec<u8>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(u32, String), Error> {
        use smartpos_bus::errors::{REFUSED, UNAVAILABLE};
        use smartpos_payment::ReloadError;
        use smartpos_runtime::signed::{PublicKey, SignedError};
        let caller = self
            .updates
            .appliers
            .check(&hdr, conn, "apply a merchant configuration")
            .await?;
        if config.len() > MAX_CONFIG_BYTES || signature.len() > 1024 {
            return Err(fdo::Error::InvalidArgs(format!(
                "a merchant configuration is at most {MAX_CONFIG_BYTES} bytes and its signature one line"
            ))
            .into());
        }
        let _one_at_a_time = self.svc.reload_lock().await;
        let running = self.svc.config();
        let keep = |why: String| {
            format!(
                "{why}; the running configuration (version {}) stays",
                running.version
            )
        };
        let key = PublicKey::load(&self.updates.key).map_err(|e| {
            Error::named(
                UNAVAILABLE,
                keep(format!("no usable merchant configuration key: {e}")),
            )
        })?;
        key.verify(&config, &signature).map_err(|e| match e {
            SignedError::BadSignature => {
                tracing::warn!(
                    uid = caller.uid,
                    "merchant configuration refused: bad signature"
                );
                Error::named(REFUSED, keep(e.to_string()))
            }
            other => fdo::Error::InvalidArgs(keep(other.to_string())).into(),
        })?;
        let text = String::from_utf8(config).map_err(|_| {
            fdo::Error::InvalidArgs(keep("the merchant configuration is not UTF-8 text".into()))
        })?;
        let prepared = self.svc.prepare(&text).map_err(|e| match e {
            ReloadError::Config(c) => fdo::Error::InvalidArgs(keep(c.to_string())).into(),
            other => Error::named(REFUSED, keep(other.to_string())),
        })?;
        let version = u32::try_from(prepared.config().version).map_err(|_| {
            fdo::Error::InvalidArgs(keep(format!(
                "version {} does not fit ApplyMerchantConfig's answer (32 bits)",
                prepared.config().version
            )))
        })?;
        let path = self.updates.merchant_config.clone();
        let bytes = text.into_bytes();
        tokio::task::spawn_blocking(move || {
            smartpos_runtime::signed::write_atomically(&path, &bytes, 0o640)
        })
        .await
        .map_err(|e| Error::named(UNAVAILABLE, keep(e.to_string())))?
        .map_err(|e| Error::named(UNAVAILABLE, keep(e.to_string())))?;
        let cfg = self
            .svc
            .install(prepared)
            .map_err(|e| Error::named(REFUSED, keep(e.to_string())))?;
        tracing::info!(
            uid = caller.uid,
            version = cfg.version,
            synced_at = %cfg.synced_at,
            file = %self.updates.merchant_config.display(),
            "signed merchant configuration written and applied"
        );
        if let Err(e) = announce_config(conn, &cfg).await {
            tracing::warn!("cannot announce the new configuration: {e}");
        }
        Ok((version, cfg.synced_at.clone()))
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

    /// Sales started and not yet finished (those handed to background resolution left out).
    #[zbus(property)]
    async fn sales_in_flight(&self) -> fdo::Result<u32> {
        self.svc
            .sales_in_flight()
            .await
            .map_err(|e| fdo::Error::Failed(e.to_string()))
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

/// The newest sale with `order_ref`. The journal has no lookup by order_ref yet, so this
/// reads the sales in order; the library's own lookup replaces it when it has one.
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

/// What a sale's properties are served from: the journal row and the refunded total, read
/// together once and kept briefly, so a GetAll (twenty properties) costs one journal read
/// instead of twenty. An entry is dropped when the sale changes (TxEvent, a refund through
/// this daemon) and is never older than [`VIEW_FRESH`] in any case (refunds the resolver
/// finishes in the background do not raise a TxEvent).
#[derive(Default)]
pub struct Views {
    map: Mutex<HashMap<TxId, (Instant, Arc<View>)>>,
}

pub struct View {
    tx: Transaction,
}

const VIEW_FRESH: Duration = Duration::from_secs(1);

impl Views {
    /// The sale as its object shows it: one statement (the refunded sum included), run on a
    /// blocking thread so that a commit waiting for the disk never holds up the bus.
    async fn get(&self, svc: &PaymentService, id: TxId) -> fdo::Result<Arc<View>> {
        let now = Instant::now();
        if let Some((at, v)) = lock(&self.map).get(&id)
            && now.duration_since(*at) < VIEW_FRESH
        {
            return Ok(v.clone());
        }
        let tx = svc
            .read(id)
            .await
            .map_err(|e| fdo::Error::Failed(e.to_string()))?;
        let v = Arc::new(View { tx });
        let mut map = lock(&self.map);
        map.retain(|_, (at, _)| now.duration_since(*at) < VIEW_FRESH);
        map.insert(id, (now, v.clone()));
        Ok(v)
    }

    /// Sale `id` changed: the next read goes to the journal.
    pub fn invalidate(&self, id: TxId) {
        lock(&self.map).remove(&id);
    }
}

/// One sale on the bus. Properties are read from the journal (through [`Views`]), so a
/// client that comes back after a restart of the daemon sees what the journal holds.
pub struct TxIface {
    svc: PaymentService,
    hints: Hints,
    readers: Arc<Readers>,
    views: Arc<Views>,
    id: TxId,
}

impl TxIface {
    async fn view(&self, hdr: Option<Header<'_>>, conn: &Connection) -> fdo::Result<Arc<View>> {
        self.readers.check(hdr.as_ref(), conn).await?;
        self.views.get(&self.svc, self.id).await
    }

    async fn explanation_field(
        &self,
        hdr: Option<Header<'_>>,
        conn: &Connection,
        f: impl FnOnce(&smartpos_payment::Explanation) -> String,
    ) -> fdo::Result<String> {
        Ok(self
            .view(hdr, conn)
            .await?
            .tx
            .explanation
            .as_ref()
            .map(f)
            .unwrap_or_default())
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
    async fn id(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<i64> {
        self.readers.check(hdr.as_ref(), conn).await?;
        Ok(self.id.0)
    }
    #[zbus(property)]
    async fn amount_fen(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<i64> {
        Ok(self.view(hdr, conn).await?.tx.amount_fen)
    }
    #[zbus(property)]
    async fn currency(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        Ok(self.view(hdr, conn).await?.tx.currency.as_str().to_owned())
    }
    #[zbus(property)]
    async fn order_ref(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        Ok(self.view(hdr, conn).await?.tx.order_ref.clone())
    }
    #[zbus(property)]
    async fn state(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        Ok(self.view(hdr, conn).await?.tx.state.as_str().to_owned())
    }
    #[zbus(property)]
    async fn scheme(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        Ok(self
            .view(hdr, conn)
            .await?
            .tx
            .scheme
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default())
    }
    #[zbus(property)]
    async fn code_masked(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        Ok(self
            .view(hdr, conn)
            .await?
            .tx
            .code_masked
            .clone()
            .unwrap_or_default())
    }
    #[zbus(property)]
    async fn out_trade_no(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        Ok(self
            .view(hdr, conn)
            .await?
            .tx
            .out_trade_no
            .clone()
            .unwrap_or_default())
    }
    #[zbus(property)]
    async fn acquirer_trade_no(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        Ok(self
            .view(hdr, conn)
            .await?
            .tx
            .acquirer_trade_no
            .clone()
            .unwrap_or_default())
    }
    #[zbus(property)]
    async fn paid_fen(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<i64> {
        Ok(self.view(hdr, conn).await?.tx.paid_fen.unwrap_or(0))
    }
    #[zbus(property)]
    async fn refunded_fen(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<i64> {
        Ok(self.view(hdr, conn).await?.tx.refunded_fen)
    }
    #[zbus(property)]
    async fn funding_channels(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<Vec<String>> {
        Ok(self
            .view(hdr, conn)
            .await?
            .tx
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
    async fn cause(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.explanation_field(hdr, conn, |e| e.cause.as_str().to_owned())
            .await
    }
    #[zbus(property)]
    async fn error_code(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.explanation_field(hdr, conn, |e| e.code.clone()).await
    }
    #[zbus(property)]
    async fn instruction_zh(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.explanation_field(hdr, conn, |e| e.zh.to_string())
            .await
    }
    #[zbus(property)]
    async fn instruction_en(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.explanation_field(hdr, conn, |e| e.en.to_string())
            .await
    }
    #[zbus(property)]
    async fn acquirer_message(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.explanation_field(hdr, conn, |e| e.raw_message.clone().unwrap_or_default())
            .await
    }
    #[zbus(property)]
    async fn hint(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.readers.check(hdr.as_ref(), conn).await?;
        Ok(lock(&self.hints).get(&self.id).cloned().unwrap_or_default())
    }
    #[zbus(property)]
    async fn created_at_ms(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<i64> {
        Ok(self.view(hdr, conn).await?.tx.created_at_ms)
    }
    #[zbus(property)]
    async fn updated_at_ms(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<i64> {
        Ok(self.view(hdr, conn).await?.tx.updated_at_ms)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn wrong_code_hint(hints: &Hints, id: i64) {
        lock(hints).insert(
            TxId(id),
            "not a payment code: ask the customer for the payment code".to_owned(),
        );
    }

    fn ids(ex: &VecDeque<TxId>) -> Vec<i64> {
        ex.iter().map(|t| t.0).collect()
    }

    #[test]
    fn a_busy_till_keeps_the_newest_sales_on_the_bus_and_the_oldest_finished_leave_first() {
        // A busy till with room for three sale objects. Sale 1 still waits for the customer
        // to confirm on the phone; the others are finished. Sale 2 had a hint about a wrong
        // code scanned.
        let hints = Hints::default();
        let mut ex = VecDeque::new();
        let finished = |t: TxId| t != TxId(1);
        for id in 1..=3 {
            assert_eq!(
                make_room(&mut ex, &hints, TxId(id), 3, finished),
                Some(vec![])
            );
        }
        wrong_code_hint(&hints, 2);

        // Sale 4: sale 1 is older but in progress, so sale 2 (the oldest finished) leaves
        // the bus, and its hint with it.
        let leave = make_room(&mut ex, &hints, TxId(4), 3, finished);
        assert_eq!(leave, Some(vec![TxId(2)]));
        assert_eq!(ids(&ex), [1, 3, 4]);
        assert!(
            !lock(&hints).contains_key(&TxId(2)),
            "the hint outlived its sale"
        );

        // The cashier looks sale 2 up (ListTransactions / FindTransaction register it again):
        // it is back on the bus as the newest, and the oldest finished one (3) makes room.
        let leave = make_room(&mut ex, &hints, TxId(2), 3, finished);
        assert_eq!(leave, Some(vec![TxId(3)]));
        assert_eq!(ids(&ex), [1, 4, 2]);

        // Looking up a sale that is on the bus only makes it the newest: nobody leaves.
        assert_eq!(make_room(&mut ex, &hints, TxId(4), 3, finished), None);
        assert_eq!(ids(&ex), [1, 2, 4]);
    }

    #[test]
    fn sales_in_progress_stay_on_the_bus_even_above_the_limit() {
        // The acquirer is slow this morning: four sales wait for their customers with room
        // for three objects. None may leave the bus (its app still watches it); once they
        // finish and the next sale comes, the oldest finished ones leave until three stay.
        let hints = Hints::default();
        let mut ex = VecDeque::new();
        for id in 1..=4 {
            assert_eq!(
                make_room(&mut ex, &hints, TxId(id), 3, |_| false),
                Some(vec![])
            );
            wrong_code_hint(&hints, id);
        }
        assert_eq!(ids(&ex), [1, 2, 3, 4]);
        assert_eq!(lock(&hints).len(), 4, "a sale in progress lost its hint");

        let leave = make_room(&mut ex, &hints, TxId(5), 3, |_| true);
        assert_eq!(leave, Some(vec![TxId(1), TxId(2)]));
        assert_eq!(ids(&ex), [3, 4, 5]);
        let mut left: Vec<i64> = lock(&hints).keys().map(|t| t.0).collect();
        left.sort_unstable();
        assert_eq!(left, [3, 4]);
    }

    #[test]
    fn the_daemons_bus_holds_no_more_than_exported_finished_sales() {
        // A month of sales, all finished: the bus keeps EXPORTED of them, the newest.
        let hints = Hints::default();
        let mut ex = VecDeque::new();
        let month = i64::try_from(EXPORTED).unwrap() * 10;
        let mut left = 0;
        for id in 1..=month {
            left += make_room(&mut ex, &hints, TxId(id), EXPORTED, |_| true).map_or(0, |l| l.len());
        }
        assert_eq!(ex.len(), EXPORTED);
        assert_eq!(
            ex.front(),
            Some(&TxId(month - i64::try_from(EXPORTED).unwrap() + 1))
        );
        assert_eq!(left, usize::try_from(month).unwrap() - EXPORTED);
    }

    #[test]
    fn a_hint_about_a_wrong_code_goes_when_the_sale_finishes() {
        // A cashier's story: the customer first shows a loyalty card; the sale waits with a
        // hint saying that was not a payment code. While the sale is in progress the hint
        // stays; once it is paid (or refused, or cancelled) the hint is gone.
        let hints = Hints::default();
        for to in SaleState::ALL {
            wrong_code_hint(&hints, 7);
            let dropped = settle_hint(&hints, TxId(7), to);
            assert_eq!(dropped, to.is_terminal(), "{to:?}");
            assert_eq!(
                lock(&hints).contains_key(&TxId(7)),
                !to.is_terminal(),
                "{to:?}"
            );
        }
        // Another sale's hint is not touched.
        wrong_code_hint(&hints, 8);
        assert!(!settle_hint(&hints, TxId(7), SaleState::Succeeded));
        assert!(lock(&hints).contains_key(&TxId(8)));
    }

    /// The flash is slow and a commit holds the journal for 600 ms. A vendor app reading a
    /// sale's properties meanwhile must not freeze the daemon's only runtime thread: the bus,
    /// the scanner link and the watchdog all run there.
    #[tokio::test(flavor = "current_thread")]
    async fn reading_a_sale_while_a_commit_waits_for_the_disk_leaves_the_bus_thread_free() {
        let config = smartpos_payment::config::Config::parse(include_str!(
            "../../payment/config/merchant.example.toml"
        ))
        .expect("example config");
        let svc = PaymentService::new(
            config,
            smartpos_payment::journal::Journal::open_in_memory().expect("journal"),
            HashMap::new(),
        );
        let id = svc
            .sale(1250, "CNY", "slow-flash", SaleOptions::default())
            .await
            .expect("sale");
        let views = Arc::new(Views::default());
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let holder = {
            let svc = svc.clone();
            std::thread::spawn(move || {
                svc.with_journal(|_| {
                    held_tx.send(()).expect("signal");
                    std::thread::sleep(Duration::from_millis(600));
                })
            })
        };
        held_rx.recv().expect("the journal is held");
        let reader = {
            let (svc, views) = (svc.clone(), views.clone());
            tokio::spawn(async move { views.get(&svc, id).await.map(|v| v.tx.clone()) })
        };
        let start = Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let ticked = start.elapsed();
        assert!(
            ticked < Duration::from_millis(300),
            "the runtime was blocked for {ticked:?}"
        );
        let t = reader.await.expect("task").expect("read");
        assert_eq!((t.id, t.amount_fen, t.refunded_fen), (id, 1250, 0));
        holder.join().expect("holder");
    }
}
