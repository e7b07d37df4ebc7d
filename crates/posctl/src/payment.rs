//! `posctl sale`, `refund`, `tx list|show`, `explain`.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use smartpos_bus::payment::{PaymentProxy, TransactionProxy, tx_id, tx_path};
use zbus::zvariant::{ObjectPath, OwnedObjectPath, Value};

use crate::Error;

/// `12.34` yuan → 1234 fen, exactly (no floats): at most two decimals.
pub fn parse_yuan(s: &str) -> Result<i64, Error> {
    smartpos_text::yuan_to_fen(s).map_err(|e| {
        Error::Usage(format!(
            "amount {s:?}: {e}; give yuan with at most two decimals, e.g. 12.34"
        ))
    })
}

pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.abs() / 100, fen.abs() % 100)
}

pub async fn connect() -> Result<(zbus::Connection, PaymentProxy<'static>), Error> {
    let conn = smartpos_runtime::bus::connect_system().await?;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
    let name = zbus::names::BusName::try_from(smartpos_bus::payment::INTERFACE)
        .map_err(|e| Error::Failed(e.to_string()))?;
    if !dbus.name_has_owner(name).await? {
        return Err(Error::NotRunning(format!(
            "the payment service ({})",
            smartpos_bus::payment::INTERFACE
        )));
    }
    let p = PaymentProxy::new(&conn).await?;
    Ok((conn, p))
}

/// A transaction given as `12` or as its object path.
fn tx_arg(s: &str) -> Result<OwnedObjectPath, Error> {
    let id = s
        .parse::<i64>()
        .ok()
        .or_else(|| tx_id(s))
        .ok_or_else(|| Error::Usage(format!("{s:?} is not a transaction id")))?;
    OwnedObjectPath::try_from(tx_path(id)).map_err(|e| Error::Failed(e.to_string()))
}

async fn tx_proxy(
    conn: &zbus::Connection,
    path: &OwnedObjectPath,
) -> Result<TransactionProxy<'static>, Error> {
    Ok(TransactionProxy::builder(conn)
        .path(path.clone())?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?)
}

/// Everything a transaction object says, for `tx show`, `explain` and the end of `sale`.
#[derive(Debug, Serialize)]
pub struct TxView {
    pub id: i64,
    pub amount_fen: i64,
    pub amount: String,
    pub currency: String,
    pub order_ref: String,
    pub state: String,
    pub scheme: String,
    pub code_masked: String,
    pub out_trade_no: String,
    pub acquirer_trade_no: String,
    pub paid_fen: i64,
    pub refunded_fen: i64,
    pub funding_channels: Vec<String>,
    pub cause: String,
    pub error_code: String,
    pub instruction_zh: String,
    pub instruction_en: String,
    pub acquirer_message: String,
    pub hint: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

async fn view(t: &TransactionProxy<'_>) -> Result<TxView, Error> {
    let amount_fen = t.amount_fen().await?;
    Ok(TxView {
        id: t.id().await?,
        amount_fen,
        amount: yuan(amount_fen),
        currency: t.currency().await?,
        order_ref: t.order_ref().await?,
        state: t.state().await?,
        scheme: t.scheme().await?,
        code_masked: t.code_masked().await?,
        out_trade_no: t.out_trade_no().await?,
        acquirer_trade_no: t.acquirer_trade_no().await?,
        paid_fen: t.paid_fen().await?,
        refunded_fen: t.refunded_fen().await?,
        funding_channels: t.funding_channels().await?,
        cause: t.cause().await?,
        error_code: t.error_code().await?,
        instruction_zh: t.instruction_zh().await?,
        instruction_en: t.instruction_en().await?,
        acquirer_message: t.acquirer_message().await?,
        hint: t.hint().await?,
        created_at_ms: t.created_at_ms().await?,
        updated_at_ms: t.updated_at_ms().await?,
    })
}

/// How a funding channel reads at the till.
fn funding_label(c: &str) -> String {
    match c {
        "huabei" => "花呗 Huabei".into(),
        "huabei_instalments" => "花呗分期 Huabei instalments".into(),
        "balance" => "余额 balance".into(),
        "bank_card" => "银行卡 bank card".into(),
        "credit_card" => "信用卡 credit card".into(),
        other => other.into(),
    }
}

fn terminal(state: &str) -> bool {
    matches!(state, "succeeded" | "failed" | "cancelled")
}

/// The error code paymentd gives a sale nobody could resolve within its resolution window
/// (`smartpos_payment::service::OUTCOME_UNKNOWN`): the till must not charge again.
const OUTCOME_UNKNOWN: &str = "sale.outcome_unknown";

/// Exit status of `posctl sale` for that outcome: "outcome unknown, do not charge again".
pub const EXIT_OUTCOME_UNKNOWN: i32 = 2;

/// Where `posctl sale` stops waiting: a final state, or an outcome the terminal itself
/// declared unknown (it goes on resolving it in the background).
fn settled_for_the_till(state: &str, error_code: &str) -> bool {
    terminal(state) || (state == "unknown" && error_code == OUTCOME_UNKNOWN)
}

/// With `--code`: the sale went back to waiting for a code with a reason — the payment was
/// provably never sent (no path reached, a certificate refused, …) or its order number was
/// someone else's. Nothing was charged and nothing more will happen to this code: say so at
/// once instead of waiting for a scan that `--code` will never make.
fn back_to_the_scanner(with_code: bool, state: &str, error_code: &str) -> bool {
    with_code && state == "awaiting_code" && !error_code.is_empty()
}

fn outcome_line(v: &TxView) -> String {
    match v.state.as_str() {
        "awaiting_code" if !v.error_code.is_empty() => format!(
            "NOT SENT — nothing was charged — cause: {} ({}) — {} / {} — sale {} waits for a new scan",
            v.cause, v.error_code, v.instruction_zh, v.instruction_en, v.id
        ),
        "succeeded" => {
            let funding: Vec<String> = v
                .funding_channels
                .iter()
                .map(|c| funding_label(c))
                .collect();
            format!(
                "PAID {} {} with {} — funding: {} — acquirer trade {}",
                v.amount,
                v.currency,
                v.scheme,
                if funding.is_empty() {
                    "not reported".into()
                } else {
                    funding.join(", ")
                },
                v.acquirer_trade_no
            )
        }
        _ if !v.cause.is_empty() => format!(
            "{} — cause: {} ({}) — {} / {}{}",
            v.state.to_uppercase(),
            v.cause,
            v.error_code,
            v.instruction_zh,
            v.instruction_en,
            if v.acquirer_message.is_empty() {
                String::new()
            } else {
                format!(" — acquirer said: {}", v.acquirer_message)
            }
        ),
        _ => v.state.to_uppercase(),
    }
}

pub struct SaleArgs {
    pub amount: String,
    pub order_ref: Option<String>,
    pub code: Option<String>,
    pub timeout: u32,
    pub no_wait: bool,
    pub disable_funding: Vec<String>,
    pub virtual_goods: bool,
}

/// Exit status of a sale: 0 paid, 1 not paid (with `--code`: also never sent, the sale
/// waiting for a new scan), 2 outcome unknown (do not charge again; the
/// terminal keeps resolving it), 75 still open when we stopped waiting.
pub async fn sale(a: SaleArgs, json: bool) -> Result<i32, Error> {
    let fen = parse_yuan(&a.amount)?;
    let (conn, p) = connect().await?;
    let order_ref = a.order_ref.unwrap_or_else(|| {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        format!("posctl-{ms}")
    });
    let mut options: HashMap<&str, Value<'_>> = HashMap::new();
    if !a.disable_funding.is_empty() {
        options.insert("disable_funding", Value::from(a.disable_funding.clone()));
    }
    if a.virtual_goods {
        options.insert("virtual_goods", Value::from(true));
    }
    options.insert(
        "scan_timeout_ms",
        Value::from(a.timeout.saturating_mul(1000).clamp(1, 600_000)),
    );
    let path = match &a.code {
        Some(code) => {
            options.remove("scan_timeout_ms");
            p.pay_with_code(fen, "CNY", &order_ref, options, code)
                .await?
        }
        None => p.sale(fen, "CNY", &order_ref, options).await?,
    };
    let t = tx_proxy(&conn, &path).await?;
    // Subscribe first, then read: a change between the two is not lost.
    let mut changes = t.receive_changed().await?;
    let first = view(&t).await?;
    if !json {
        println!(
            "sale {} for {} CNY (order {}): {}",
            first.id, first.amount, first.order_ref, first.state
        );
        if first.state == "awaiting_code" && a.code.is_none() {
            println!("  show the customer's payment code (付款码) to the scanner");
        }
        if !first.hint.is_empty() {
            println!("  hint: {}", first.hint);
        }
    }
    if a.no_wait {
        if json {
            println!(
                "{}",
                serde_json::to_string(&first).map_err(|e| Error::Failed(e.to_string()))?
            );
        }
        return Ok(0);
    }
    let mut state = first.state.clone();
    let mut error_code = first.error_code.clone();
    let mut hint = first.hint.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(a.timeout) + 120);
    let with_code = a.code.is_some();
    while !settled_for_the_till(&state, &error_code)
        && !back_to_the_scanner(with_code, &state, &error_code)
    {
        match tokio::time::timeout_at(deadline, changes.next()).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(Error::Failed("the payment service left the bus".into())),
            Err(_) => break,
        }
        let v = view(&t).await?;
        if !json && v.state != state {
            println!("  … {}", v.state);
        }
        if !json && v.hint != hint && !v.hint.is_empty() {
            println!("  hint: {}", v.hint);
        }
        state = v.state;
        error_code = v.error_code;
        hint = v.hint;
    }
    let v = view(&t).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&v).map_err(|e| Error::Failed(e.to_string()))?
        );
    } else {
        println!("{}", outcome_line(&v));
    }
    Ok(match v.state.as_str() {
        "succeeded" => 0,
        s if terminal(s) => 1,
        s if back_to_the_scanner(with_code, s, &v.error_code) => 1,
        "unknown" if v.error_code == OUTCOME_UNKNOWN => EXIT_OUTCOME_UNKNOWN,
        _ => 75,
    })
}

pub async fn refund(
    tx: &str,
    amount: &str,
    refund_ref: Option<String>,
    json: bool,
) -> Result<i32, Error> {
    let fen = parse_yuan(amount)?;
    let path = tx_arg(tx)?;
    let (_conn, p) = connect().await?;
    let refund_ref = refund_ref.unwrap_or_else(|| {
        format!(
            "posctl-refund-{}-{fen}",
            path.as_str().rsplit('/').next().unwrap_or("")
        )
    });
    let r = p.refund(&ObjectPath::from(&path), fen, &refund_ref).await?;
    let get = |k: &str| {
        r.get(k)
            .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
            .unwrap_or_default()
    };
    let state = get("state");
    if json {
        let m: HashMap<&str, String> =
            ["state", "cause", "code", "instruction_zh", "instruction_en"]
                .into_iter()
                .map(|k| (k, get(k)))
                .collect();
        println!(
            "{}",
            serde_json::json!({"refund_ref": refund_ref, "amount_fen": fen, "result": m})
        );
    } else if get("cause").is_empty() {
        println!("refund of {} CNY ({}): {state}", yuan(fen), refund_ref);
    } else {
        println!(
            "refund of {} CNY ({}): {state} — cause: {} ({}) — {} / {}",
            yuan(fen),
            refund_ref,
            get("cause"),
            get("code"),
            get("instruction_zh"),
            get("instruction_en")
        );
    }
    Ok(if state == "succeeded" { 0 } else { 1 })
}

pub async fn list(limit: u32, json: bool) -> Result<(), Error> {
    let (conn, p) = connect().await?;
    let mut rows = Vec::new();
    for path in p.list_transactions(limit).await? {
        rows.push(view(&tx_proxy(&conn, &path).await?).await?);
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| Error::Failed(e.to_string()))?
        );
        return Ok(());
    }
    println!(
        "{:>5} {:>10} {:<22} {:<8} {:<20} CAUSE",
        "TX", "AMOUNT", "STATE", "SCHEME", "FUNDING"
    );
    for v in rows {
        println!(
            "{:>5} {:>10} {:<22} {:<8} {:<20} {}",
            v.id,
            v.amount,
            v.state,
            if v.scheme.is_empty() { "-" } else { &v.scheme },
            if v.funding_channels.is_empty() {
                "-".into()
            } else {
                v.funding_channels.join(",")
            },
            if v.cause.is_empty() {
                "-".into()
            } else {
                format!("{} ({})", v.cause, v.error_code)
            }
        );
    }
    Ok(())
}

pub async fn show(tx: &str, json: bool) -> Result<(), Error> {
    let path = tx_arg(tx)?;
    let (conn, _p) = connect().await?;
    let v = view(
        &tx_proxy(&conn, &path)
            .await
            .map_err(|_| Error::Usage(format!("no transaction {tx}")))?,
    )
    .await
    .map_err(|e| Error::Usage(format!("no transaction {tx}: {e}")))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| Error::Failed(e.to_string()))?
        );
        return Ok(());
    }
    let value = serde_json::to_value(&v).map_err(|e| Error::Failed(e.to_string()))?;
    if let Some(map) = value.as_object() {
        for (k, val) in map {
            let shown = match val {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            println!("{k:<18} {shown}");
        }
    }
    println!("{:<18} {}", "outcome", outcome_line(&v));
    Ok(())
}

pub async fn explain(tx: &str, json: bool) -> Result<(), Error> {
    let path = tx_arg(tx)?;
    let (conn, _p) = connect().await?;
    let v = view(&tx_proxy(&conn, &path).await?)
        .await
        .map_err(|e| Error::Usage(format!("no transaction {tx}: {e}")))?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "tx": v.id, "state": v.state, "cause": v.cause, "code": v.error_code,
                "instruction_zh": v.instruction_zh, "instruction_en": v.instruction_en,
                "acquirer_message": v.acquirer_message, "hint": v.hint,
            })
        );
        return Ok(());
    }
    println!("sale {} ({} CNY): {}", v.id, v.amount, v.state);
    if v.cause.is_empty() {
        match v.state.as_str() {
            "succeeded" => println!("nothing to explain: it was paid ({})", outcome_line(&v)),
            _ => println!("no failure recorded"),
        }
    } else {
        println!("cause:       {}", v.cause);
        println!("code:        {}", v.error_code);
        println!("收银员请:    {}", v.instruction_zh);
        println!("cashier:     {}", v.instruction_en);
        if !v.acquirer_message.is_empty() {
            println!("acquirer:    {}", v.acquirer_message);
        }
    }
    if !v.hint.is_empty() {
        println!("last scan:   {}", v.hint);
    }
    Ok(())
}
