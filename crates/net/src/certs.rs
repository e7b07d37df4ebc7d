//! Validity of the pinned CAs and client certificates the configuration names: a warning
//! some days before a certificate expires, an error once it has expired or while it is not
//! yet valid (which, for a CA that was valid yesterday, usually means the clock is wrong).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// How a certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertState {
    Ok,
    /// Expires within the warning window.
    ExpiresSoon,
    Expired,
    NotYetValid,
    /// The file is missing or holds no certificate.
    Unreadable,
}

/// One certificate of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertStatus {
    /// Who uses it: the acquirer path or "fleet".
    pub owner: String,
    /// "ca" (pinned root) or "client".
    pub role: String,
    pub file: PathBuf,
    pub subject: String,
    /// Unix seconds.
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    /// Whole days left until `not_after` (negative once expired).
    pub days_left: Option<i64>,
    pub state: CertState,
    /// Why it is unreadable.
    pub problem: String,
}

/// Check every certificate in the PEM file `file` at time `now`.
pub fn check(owner: &str, role: &str, file: &Path, now: SystemTime, warn: Duration) -> Vec<CertStatus> {
    let unreadable = |problem: String| CertStatus {
        owner: owner.to_owned(),
        role: role.to_owned(),
        file: file.to_owned(),
        subject: String::new(),
        not_before: None,
        not_after: None,
        days_left: None,
        state: CertState::Unreadable,
        problem,
    };
    let pem = match std::fs::read(file) {
        Ok(p) => p,
        Err(e) => return vec![unreadable(e.to_string())],
    };
    let ders: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .filter_map(Result::ok)
        .collect();
    if ders.is_empty() {
        return vec![unreadable("no PEM certificate in the file".into())];
    }
    let now_s = i64::try_from(crate::stats::unix(now)).unwrap_or(i64::MAX);
    let warn_s = i64::try_from(warn.as_secs()).unwrap_or(i64::MAX);
    ders.iter()
        .map(|der| match x509_parser::parse_x509_certificate(der.as_ref()) {
            Ok((_, cert)) => {
                let nb = cert.validity().not_before.timestamp();
                let na = cert.validity().not_after.timestamp();
                let state = if now_s < nb {
                    CertState::NotYetValid
                } else if now_s > na {
                    CertState::Expired
                } else if na - now_s <= warn_s {
                    CertState::ExpiresSoon
                } else {
                    CertState::Ok
                };
                CertStatus {
                    owner: owner.to_owned(),
                    role: role.to_owned(),
                    file: file.to_owned(),
                    subject: cert.subject().to_string(),
                    not_before: Some(nb),
                    not_after: Some(na),
                    days_left: Some((na - now_s).div_euclid(86_400)),
                    state,
                    problem: String::new(),
                }
            }
            Err(e) => unreadable(format!("not an X.509 certificate: {e}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(dir: &Path, name: &str, from_days: i64, to_days: i64) -> PathBuf {
        let mut p = rcgen::CertificateParams::new(vec!["acquirer.test".into()]).unwrap();
        let now = rcgen::date_time_ymd(2030, 1, 1);
        p.not_before = shift(now, from_days);
        p.not_after = shift(now, to_days);
        let key = rcgen::KeyPair::generate().unwrap();
        let c = p.self_signed(&key).unwrap();
        let f = dir.join(name);
        std::fs::write(&f, c.pem()).unwrap();
        f
    }

    fn shift<T>(t: T, days: i64) -> T
    where
        T: std::ops::Add<Duration, Output = T> + std::ops::Sub<Duration, Output = T>,
    {
        let d = Duration::from_secs(days.unsigned_abs() * 86_400);
        if days < 0 { t - d } else { t + d }
    }

    fn at_2030() -> SystemTime {
        // 2030-01-01T00:00:00Z
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000)
    }

    #[test]
    fn expiry_is_warned_thirty_days_ahead_and_an_error_once_past() {
        let d = tempfile::tempdir().unwrap();
        let warn = Duration::from_secs(30 * 86_400);
        let fine = cert(d.path(), "fine.pem", -10, 400);
        let soon = cert(d.path(), "soon.pem", -300, 12);
        let gone = cert(d.path(), "gone.pem", -300, -2);
        let future = cert(d.path(), "future.pem", 700, 1000);
        let s = |f: &Path| check("alipay", "ca", f, at_2030(), warn).remove(0);
        assert_eq!(s(&fine).state, CertState::Ok);
        let soon = s(&soon);
        assert_eq!((soon.state, soon.days_left), (CertState::ExpiresSoon, Some(12)));
        let gone = s(&gone);
        assert_eq!((gone.state, gone.days_left), (CertState::Expired, Some(-2)));
        assert_eq!(s(&future).state, CertState::NotYetValid);
        let missing = s(&d.path().join("missing.pem"));
        assert_eq!(missing.state, CertState::Unreadable);
    }
}
