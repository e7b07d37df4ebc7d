//! `posctl doctor`: one verdict per cause group for the live terminal, from what every
//! daemon's `Diagnose()` says over the bus (never from files behind their backs), and from
//! the update daemon's properties (the running system's version against what the fleet
//! offered; otad serves no `Diagnose()`).
//!
//! A daemon that is not running makes its groups UNKNOWN and is itself a finding of the
//! software group. Exit code: 0 when every checked group is OK, 1 when any is FAIL, 2 when
//! the worst is WARN (UNKNOWN alone does not change it: it is what could not be checked).
//! `--huabei` looks at what matters for a Huabei payment and ends in one sentence for the
//! merchant.

use std::time::Duration;

use smartpos_bus::diagnose::{Finding, GROUPS, Verdict, group_verdict};
use smartpos_bus::{
    network::NetworkProxy, payment::PaymentProxy, scanner::ScannerProxy, update::UpdateProxy,
};
use zbus::names::BusName;
use zbus::proxy::CacheProperties;

use crate::Error;

/// Which language the instructions are printed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Zh,
    En,
    Both,
}

const SCANNER: &str = "org.smartpos.Scanner1";
const PAYMENT: &str = "org.smartpos.Payment1";
const NETWORK: &str = "org.smartpos.Network1";
const UPDATE: &str = "org.smartpos.Update1";

/// The groups a Huabei payment depends on: reading the code, reaching Alipay, the synced
/// configuration, the merchant's switches, risk control and policy.
const HUABEI_GROUPS: [u8; 6] = [1, 3, 7, 8, 9, 10];

const GROUPS_ZH: [&str; 10] = [
    "硬件",
    "软件",
    "网络",
    "操作",
    "引导",
    "平台兼容",
    "同步延迟",
    "商户配置",
    "风控",
    "合规",
];

/// A `Diagnose()` call may probe acquirers over TLS; give it time, but not forever.
const CALL_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, serde::Serialize)]
struct Group {
    group: u8,
    name: &'static str,
    verdict: Verdict,
    findings: Vec<Finding>,
}

#[derive(Debug, serde::Serialize)]
struct Report {
    verdict: Verdict,
    exit: u8,
    daemons: Vec<(String, bool)>,
    groups: Vec<Group>,
    #[serde(skip_serializing_if = "Option::is_none")]
    huabei: Option<Sentence>,
}

#[derive(Debug, Clone, serde::Serialize)]
struct Sentence {
    verdict: Verdict,
    en: String,
    zh: String,
}

fn not_running(group: u8, daemon: &str, verdict: Verdict) -> Finding {
    Finding::new(group, daemon, verdict)
        .evidence(format!("{daemon} is not running: nothing of this group could be asked"))
        .code("local.daemon_not_running")
        .instruction(
            format!("{daemon} 未运行,请重启终端;仍不运行请联系技术支持"),
            format!(
                "{daemon} is not running: restart it (systemctl restart {daemon}) or the terminal; call support if it stays down"
            ),
        )
}

fn call_failed(group: u8, daemon: &str, e: &str) -> Finding {
    Finding::new(group, daemon, Verdict::Unknown)
        .evidence(format!("{daemon} did not answer Diagnose: {e}"))
}

/// Ask every daemon and gather the findings.
async fn gather(conn: &zbus::Connection) -> Result<(Vec<(String, bool)>, Vec<Finding>), Error> {
    let dbus = zbus::fdo::DBusProxy::new(conn).await?;
    let mut running = Vec::new();
    for name in [SCANNER, PAYMENT, NETWORK, UPDATE] {
        let up = dbus
            .name_has_owner(BusName::try_from(name).map_err(|e| Error::Failed(e.to_string()))?)
            .await
            .unwrap_or(false);
        running.push((name.to_owned(), up));
    }
    let up = |n: &str| running.iter().any(|(x, u)| x == n && *u);
    let mut all = Vec::new();

    if up(SCANNER) {
        let p = ScannerProxy::new(conn).await?;
        match tokio::time::timeout(CALL_LIMIT, p.diagnose()).await {
            Ok(Ok(f)) => all.extend(f),
            Ok(Err(e)) => all.push(call_failed(1, "smartpos-scannerd", &e.to_string())),
            Err(_) => all.push(call_failed(1, "smartpos-scannerd", "timed out")),
        }
    } else {
        all.push(not_running(1, "smartpos-scannerd", Verdict::Unknown));
        all.push(not_running(2, "smartpos-scannerd", Verdict::Warn));
    }

    if up(PAYMENT) {
        let p = PaymentProxy::new(conn).await?;
        match tokio::time::timeout(CALL_LIMIT, p.diagnose()).await {
            Ok(Ok(f)) => all.extend(f),
            Ok(Err(e)) => {
                let e = crate::Error::from(e);
                if matches!(e, Error::Denied(_)) {
                    return Err(e);
                }
                for g in 3..=10 {
                    all.push(call_failed(g, "smartpos-paymentd", &e.to_string()));
                }
            }
            Err(_) => {
                for g in 3..=10 {
                    all.push(call_failed(g, "smartpos-paymentd", "timed out"));
                }
            }
        }
    } else {
        all.push(not_running(2, "smartpos-paymentd", Verdict::Fail));
        for g in 3..=10 {
            all.push(not_running(g, "smartpos-paymentd", Verdict::Unknown));
        }
    }

    // The network daemon owns links, gateway probes, the clock and certificates.
    if up(NETWORK) {
        let p = NetworkProxy::new(conn).await?;
        match tokio::time::timeout(CALL_LIMIT, p.diagnose()).await {
            Ok(Ok(f)) => {
                if let Ok(v) = p.version().await {
                    all.push(
                        Finding::new(2, "smartpos-netd", Verdict::Ok)
                            .evidence(format!("smartpos-netd {v}")),
                    );
                }
                all.extend(f);
            }
            Ok(Err(e)) => all.push(call_failed(3, "smartpos-netd", &e.to_string())),
            Err(_) => all.push(call_failed(3, "smartpos-netd", "timed out")),
        }
    } else {
        all.push(Finding::new(3, "links", Verdict::Unknown).evidence(
            "links, gateway probes, clock and certificates are checked by smartpos-netd, which is not running on this terminal; only the acquirer paths above were probed",
        ));
    }
    // The update daemon knows the running system's version and what the fleet offered.
    if up(UPDATE) {
        let p = UpdateProxy::builder(conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        match tokio::time::timeout(CALL_LIMIT, update_status(&p)).await {
            Ok(Ok(u)) => {
                all.push(
                    Finding::new(2, "smartpos-otad", Verdict::Ok)
                        .evidence(format!("smartpos-otad {}", u.daemon)),
                );
                all.push(fleet_finding(&u));
            }
            Ok(Err(e)) => all.push(call_failed(6, "smartpos-otad", &e.to_string())),
            Err(_) => all.push(call_failed(6, "smartpos-otad", "timed out")),
        }
    } else {
        all.push(Finding::new(6, "fleet", Verdict::Unknown).evidence(format!(
            "posctl {}; smartpos-otad is not running, so the running system's version and whether the fleet offers a newer one are unknown",
            smartpos_runtime::VERSION
        )));
    }
    Ok((running, all))
}

/// What smartpos-otad shows on the bus (`org.smartpos.Update1`'s properties).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct UpdateStatus {
    /// otad's own version.
    daemon: String,
    /// The running system's version ("" if otad does not know it).
    current: String,
    /// The version being downloaded or installed ("" when none).
    pending: String,
    state: String,
    last_error: String,
}

async fn update_status(p: &UpdateProxy<'_>) -> zbus::Result<UpdateStatus> {
    Ok(UpdateStatus {
        daemon: p.version().await?,
        current: p.current_version().await?,
        pending: p.pending_version().await?,
        state: p.state().await?,
        last_error: p.last_error().await?,
    })
}

/// Group 6: the running system's version against what the fleet offered, from otad.
/// A newer version on its way, or an update that failed, is a warning: the terminal runs an
/// older stack than the fleet means it to, which is how parameter and signature mismatches
/// with an acquirer begin. An update that installs between sales needs nothing from anyone.
fn fleet_finding(u: &UpdateStatus) -> Finding {
    let running = if u.current.is_empty() {
        "the running system's version is unknown to smartpos-otad".to_owned()
    } else {
        format!("running system {}", u.current)
    };
    let fleet = |v: Verdict| Finding::new(6, "fleet", v);
    if u.state == "failed" || (!u.last_error.is_empty() && u.pending.is_empty()) {
        return fleet(Verdict::Warn)
            .evidence(format!(
                "{running}; the last update did not install: {}",
                if u.last_error.is_empty() {
                    "no reason given"
                } else {
                    &u.last_error
                }
            ))
            .code("update.failed")
            .instruction(
                "上次系统更新未能安装,终端仍在使用旧版本;如果反复出现,请联系技术支持",
                "the last system update did not install and the terminal keeps its current version: call support if this repeats",
            );
    }
    if !u.pending.is_empty() {
        let (what, zh, en) = match u.state.as_str() {
            "awaiting-reboot" => (
                "installed, waiting for the reboot",
                "新版本已安装,请在营业间隙重启终端",
                "the new version is installed: restart the terminal between customers",
            ),
            "waiting-for-sale" => (
                "waiting for the sale in flight to end",
                "新版本将在当前交易结束后自动安装,请保持终端开机",
                "the new version installs by itself when the sale in flight ends: keep the terminal on",
            ),
            _ => (
                "on its way",
                "新版本正在自动下载安装,请保持终端开机",
                "the new version is being downloaded and installed by itself: keep the terminal on",
            ),
        };
        return fleet(Verdict::Warn)
            .evidence(format!(
                "{running}; the fleet offers {} ({what}; smartpos-otad is {})",
                u.pending, u.state
            ))
            .code("update.pending")
            .instruction(zh, en);
    }
    fleet(Verdict::Ok).evidence(format!(
        "{running}; smartpos-otad is {} with no update pending and none failed",
        if u.state.is_empty() { "idle" } else { &u.state }
    ))
}

fn groups_of(findings: Vec<Finding>, only: Option<&[u8]>) -> Vec<Group> {
    (1u8..=10)
        .filter(|g| only.is_none_or(|o| o.contains(g)))
        .map(|g| {
            let fs: Vec<Finding> = findings.iter().filter(|f| f.group == g).cloned().collect();
            Group {
                group: g,
                name: GROUPS[usize::from(g - 1)],
                verdict: group_verdict(&fs),
                findings: fs,
            }
        })
        .collect()
}

/// 0 all OK, 1 any FAIL, 2 the worst is WARN.
fn exit_of(verdicts: impl IntoIterator<Item = Verdict>) -> u8 {
    let worst = verdicts
        .into_iter()
        .filter(|v| *v != Verdict::Unknown)
        .max()
        .unwrap_or(Verdict::Ok);
    match worst {
        Verdict::Fail => 1,
        Verdict::Warn => 2,
        _ => 0,
    }
}

/// The merchant's sentence: what stops Huabei, and what to do.
fn huabei_sentence(findings: &[Finding]) -> Sentence {
    let say = |f: &Finding| Sentence {
        verdict: f.verdict(),
        en: join(&f.evidence, &f.instruction_en),
        zh: f.instruction_zh.clone(),
    };
    let h = findings.iter().find(|f| f.subject == "huabei");
    if let Some(h) = h
        && h.verdict() == Verdict::Fail
    {
        return say(h);
    }
    if let Some(hw) = findings
        .iter()
        .find(|f| f.group == 1 && f.verdict() == Verdict::Fail)
    {
        return Sentence {
            verdict: Verdict::Fail,
            en: join(
                &format!("the terminal cannot read payment codes ({})", hw.evidence),
                &hw.instruction_en,
            ),
            zh: format!("终端无法读取付款码:{}", hw.instruction_zh),
        };
    }
    match h {
        Some(h) => say(h),
        None => Sentence {
            verdict: Verdict::Unknown,
            en: "the payment service is not running, so nothing can be paid, with Huabei or otherwise: restart the terminal, and call support if it stays down".into(),
            zh: "支付服务未运行,无法收款:请重启终端,仍不行请联系技术支持".into(),
        },
    }
}

fn join(evidence: &str, instruction: &str) -> String {
    let mut s = String::new();
    let mut chars = evidence.chars();
    if let Some(c) = chars.next() {
        s.extend(c.to_uppercase());
        s.push_str(chars.as_str());
    }
    if !instruction.is_empty() {
        s.push_str(": ");
        s.push_str(instruction);
    }
    s
}

fn label(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "OK",
        Verdict::Warn => "WARN",
        Verdict::Fail => "FAIL",
        Verdict::Unknown => "UNKNOWN",
    }
}

/// Run the checks; returns the exit code.
pub async fn run(lang: Lang, huabei: bool, json: bool) -> Result<u8, Error> {
    let conn = smartpos_runtime::bus::connect_system().await?;
    let (daemons, findings) = gather(&conn).await?;
    let sentence = huabei.then(|| huabei_sentence(&findings));
    let groups = groups_of(
        findings,
        if huabei {
            Some(&HUABEI_GROUPS[..])
        } else {
            None
        },
    );
    // The sentence counts too: a Huabei check that fails is a failure even when the group
    // it belongs to is not shown.
    let exit = exit_of(
        groups
            .iter()
            .map(|g| g.verdict)
            .chain(sentence.iter().map(|s| s.verdict)),
    );
    let verdict = match exit {
        1 => Verdict::Fail,
        2 => Verdict::Warn,
        _ => Verdict::Ok,
    };
    let report = Report {
        verdict,
        exit,
        daemons,
        groups,
        huabei: sentence,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Error::Failed(e.to_string()))?
        );
    } else {
        print_text(&report, lang);
    }
    Ok(exit)
}

fn print_text(r: &Report, lang: Lang) {
    for g in &r.groups {
        let name = match lang {
            Lang::En => g.name.to_owned(),
            Lang::Zh => GROUPS_ZH[usize::from(g.group - 1)].to_owned(),
            Lang::Both => format!("{} {}", g.name, GROUPS_ZH[usize::from(g.group - 1)]),
        };
        println!("{:>2}. {:<34} {}", g.group, name, label(g.verdict));
        for f in &g.findings {
            println!(
                "    {:<7} {}: {}",
                label(f.verdict()),
                f.subject,
                f.evidence
            );
            if f.verdict() == Verdict::Ok && f.subject != "huabei" {
                continue;
            }
            if matches!(lang, Lang::Zh | Lang::Both) && !f.instruction_zh.is_empty() {
                println!("            → {}", f.instruction_zh);
            }
            if matches!(lang, Lang::En | Lang::Both) && !f.instruction_en.is_empty() {
                println!("            → {}", f.instruction_en);
            }
        }
    }
    println!();
    match &r.huabei {
        Some(s) => {
            if matches!(lang, Lang::En | Lang::Both) {
                println!("Huabei: {}", s.en);
            }
            if matches!(lang, Lang::Zh | Lang::Both) {
                println!("花呗:{}", s.zh);
            }
        }
        None => println!("overall: {} (exit {})", label(r.verdict), r.exit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_ignores_what_could_not_be_checked() {
        use Verdict::*;
        assert_eq!(exit_of([Ok, Unknown]), 0);
        assert_eq!(exit_of([Ok, Warn, Unknown]), 2);
        assert_eq!(exit_of([Warn, Fail]), 1);
        assert_eq!(exit_of([]), 0);
    }

    #[test]
    fn the_fleet_finding_compares_the_running_system_with_what_otad_was_offered() {
        let idle = UpdateStatus {
            daemon: "0.1.0".into(),
            current: "1.0.0".into(),
            state: "idle".into(),
            ..UpdateStatus::default()
        };
        let f = fleet_finding(&idle);
        assert_eq!((f.group, f.verdict()), (6, Verdict::Ok));
        assert!(
            f.evidence.contains("running system 1.0.0"),
            "{}",
            f.evidence
        );

        // The fleet offered 1.1.0 and it waits for the customer at the till.
        let waiting = UpdateStatus {
            pending: "1.1.0".into(),
            state: "waiting-for-sale".into(),
            ..idle.clone()
        };
        let f = fleet_finding(&waiting);
        assert_eq!(
            (f.verdict(), f.code.as_str()),
            (Verdict::Warn, "update.pending")
        );
        assert!(
            f.evidence.contains("running system 1.0.0; the fleet offers 1.1.0 (waiting for the sale in flight to end"),
            "{}",
            f.evidence
        );
        assert!(f.instruction_en.contains("keep the terminal on"));

        // RAUC refused the bundle: the terminal stays on 1.0.0 and says why.
        let failed = UpdateStatus {
            state: "failed".into(),
            last_error: "the bundle's signature does not verify".into(),
            ..idle.clone()
        };
        let f = fleet_finding(&failed);
        assert_eq!(
            (f.verdict(), f.code.as_str()),
            (Verdict::Warn, "update.failed")
        );
        assert!(
            f.evidence.ends_with(
                "the last update did not install: the bundle's signature does not verify"
            ),
            "{}",
            f.evidence
        );
        assert!(!f.instruction_zh.is_empty() && !f.instruction_en.is_empty());
    }

    #[test]
    fn the_huabei_sentence_is_the_cause_then_what_to_do() {
        let off = Finding::new(8, "huabei", Verdict::Fail)
            .evidence("Huabei is switched off in this shop's configuration (version 42, synced 3 days ago)")
            .instruction("请联系服务商为本商户开通花呗收款", "ask your service provider to enable 花呗 for this merchant");
        let s = huabei_sentence(&[off]);
        assert_eq!(
            s.en,
            "Huabei is switched off in this shop's configuration (version 42, synced 3 days ago): ask your service provider to enable 花呗 for this merchant"
        );
        assert_eq!(s.verdict, Verdict::Fail);
        let none = huabei_sentence(&[]);
        assert!(none.en.contains("not running"), "{}", none.en);
    }
}
