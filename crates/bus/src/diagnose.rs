//! The finding every daemon's `Diagnose()` returns, and the ten cause groups it is filed
//! under (the same groups a failed sale's `Cause` names; see docs/ARCHITECTURE.md).
//!
//! On the bus a finding is the struct `(ysssssss)`:
//! `(group, group_name, subject, verdict, evidence, code, instruction_zh, instruction_en)`.

use serde::{Deserialize, Serialize};
use zbus::zvariant::Type;

/// D-Bus signature of one finding.
pub const SIGNATURE: &str = "(ysssssss)";

/// The ten cause groups, numbered 1–10, as `Cause` strings of the transaction interface.
pub const GROUPS: [&str; 10] = [
    "hardware",
    "software",
    "network",
    "user_error",
    "guidance",
    "platform_incompatibility",
    "sync_delay",
    "merchant_config",
    "risk_control",
    "compliance",
];

/// The name of group `n` (1–10), or "" for any other number.
pub fn group_name(n: u8) -> &'static str {
    usize::from(n)
        .checked_sub(1)
        .and_then(|i| GROUPS.get(i))
        .copied()
        .unwrap_or("")
}

/// The number (1–10) of a group name, if it is one.
pub fn group_number(name: &str) -> Option<u8> {
    GROUPS
        .iter()
        .position(|g| *g == name)
        .and_then(|i| u8::try_from(i + 1).ok())
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Checked, and fine.
    Ok,
    /// Could not be checked (a daemon is missing or not running); the evidence says why.
    Unknown,
    /// Works, but something needs attention or failed recently for a reason outside the
    /// terminal (a customer's code, an acquirer's risk control).
    Warn,
    /// Payments of some kind cannot succeed until this is fixed.
    Fail,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Unknown => "unknown",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        [Verdict::Ok, Verdict::Unknown, Verdict::Warn, Verdict::Fail]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// One finding, as it crosses the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Finding {
    /// Cause group 1–10.
    pub group: u8,
    /// Its name, e.g. "merchant_config".
    pub group_name: String,
    /// What was checked, stable for programs: e.g. "config", "funding:alipay", "huabei",
    /// "path:alipay-direct", "camera:/dev/video0", "recent:user_error".
    pub subject: String,
    /// "ok", "warn", "fail" or "unknown" (see [`Verdict`]).
    pub verdict: String,
    /// What was seen, in English, with figures.
    pub evidence: String,
    /// A stable code when there is one (the acquirer's or a local one, e.g.
    /// "config.huabei_off", "ACQ.PAYMENT_REQUEST_HAS_RISK"), else "".
    pub code: String,
    /// What to do, in Chinese and English ("" when nothing needs doing).
    pub instruction_zh: String,
    pub instruction_en: String,
}

impl Finding {
    pub fn new(group: u8, subject: impl Into<String>, verdict: Verdict) -> Finding {
        Finding {
            group,
            group_name: group_name(group).to_owned(),
            subject: subject.into(),
            verdict: verdict.as_str().to_owned(),
            evidence: String::new(),
            code: String::new(),
            instruction_zh: String::new(),
            instruction_en: String::new(),
        }
    }

    pub fn evidence(mut self, e: impl Into<String>) -> Finding {
        self.evidence = e.into();
        self
    }

    pub fn code(mut self, c: impl Into<String>) -> Finding {
        self.code = c.into();
        self
    }

    pub fn instruction(mut self, zh: impl Into<String>, en: impl Into<String>) -> Finding {
        self.instruction_zh = zh.into();
        self.instruction_en = en.into();
        self
    }

    /// The verdict, parsed; an unrecognised string counts as unknown.
    pub fn verdict(&self) -> Verdict {
        Verdict::parse(&self.verdict).unwrap_or(Verdict::Unknown)
    }
}

/// The verdict of a group from its findings: any fail, else any warn, else any unknown (a
/// part could not be checked), else ok. No findings at all is unknown.
pub fn group_verdict<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Verdict {
    findings
        .into_iter()
        .map(Finding::verdict)
        .max()
        .unwrap_or(Verdict::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_signature_is_the_documented_one() {
        assert_eq!(Finding::SIGNATURE.to_string(), SIGNATURE);
    }

    #[test]
    fn groups_are_numbered_one_to_ten() {
        assert_eq!(group_name(1), "hardware");
        assert_eq!(group_name(8), "merchant_config");
        assert_eq!(group_name(11), "");
        assert_eq!(group_name(0), "");
        for n in 1..=10 {
            assert_eq!(group_number(group_name(n)), Some(n));
        }
    }

    #[test]
    fn a_group_is_as_bad_as_its_worst_finding() {
        let f = |v| Finding::new(3, "x", v);
        assert_eq!(
            group_verdict(&[f(Verdict::Ok), f(Verdict::Unknown)]),
            Verdict::Unknown
        );
        assert_eq!(
            group_verdict(&[f(Verdict::Unknown), f(Verdict::Warn)]),
            Verdict::Warn
        );
        assert_eq!(
            group_verdict(&[f(Verdict::Fail), f(Verdict::Warn)]),
            Verdict::Fail
        );
        assert_eq!(group_verdict(&[f(Verdict::Ok)]), Verdict::Ok);
        assert_eq!(group_verdict(&[]), Verdict::Unknown);
    }
}
