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
pub fn check(
    owner: &str,
    role: &str,
    file: &Path,
    now: SystemTime,
    warn: Duration,
) -> Vec<CertStatus> {
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
        .map(|der| match validity(der.as_ref()) {
            Some((nb, na, subject)) => {
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
                    subject,
                    not_before: Some(nb),
                    not_after: Some(na),
                    days_left: Some((na - now_s).div_euclid(86_400)),
                    state,
                    problem: String::new(),
                }
            }
            None => unreadable("not an X.509 certificate".into()),
        })
        .collect()
}

/// One DER TLV: (tag, contents, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first & 0x80 == 0 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*input.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((tag, input.get(header..end)?, input.get(end..)?))
}

/// notBefore and notAfter (Unix seconds) and the subject's common name, read from the DER
/// of an X.509 certificate (RFC 5280 §4.1: tbsCertificate is version?, serialNumber,
/// signature, issuer, validity, subject, …). Only these fields are read: the certificate's
/// signature is the TLS library's business, not this report's.
fn validity(der: &[u8]) -> Option<(i64, i64, String)> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    let (tag, _, after_version) = tlv(rest)?;
    if tag == 0xa0 {
        rest = after_version;
    }
    let (_, _, rest) = tlv(rest)?; // serialNumber
    let (_, _, rest) = tlv(rest)?; // signature algorithm
    let (_, _, rest) = tlv(rest)?; // issuer
    let (_, validity, rest) = tlv(rest)?;
    let (t1, nb, more) = tlv(validity)?;
    let (t2, na, _) = tlv(more)?;
    let (_, subject, _) = tlv(rest)?;
    Some((time(t1, nb)?, time(t2, na)?, common_name(subject)))
}

/// UTCTime (YYMMDDHHMMSSZ, years 1950–2049) or GeneralizedTime (YYYYMMDDHHMMSSZ).
fn time(tag: u8, v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = s.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
        }
        0x18 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let n = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (mo, d, h, mi, se) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    Some(days_from_civil(year, mo, d) * 86_400 + h * 3_600 + mi * 60 + se)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// "CN=…" of a Name, or "" when it has none.
fn common_name(name: &[u8]) -> String {
    const CN: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    name.windows(CN.len())
        .position(|w| w == CN)
        .and_then(|i| tlv(name.get(i + CN.len()..)?))
        .map(|(_, v, _)| format!("CN={}", String::from_utf8_lossy(v)))
        .unwrap_or_default()
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
    fn dates_as_the_certificate_writes_them() {
        assert_eq!(time(0x17, b"300101000000Z"), Some(1_893_456_000));
        assert_eq!(time(0x18, b"20300101000000Z"), Some(1_893_456_000));
        assert_eq!(time(0x17, b"700101000001Z"), Some(1));
        assert_eq!(time(0x17, b"garbage"), None);
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
        assert_eq!(
            (soon.state, soon.days_left),
            (CertState::ExpiresSoon, Some(12))
        );
        let gone = s(&gone);
        assert_eq!((gone.state, gone.days_left), (CertState::Expired, Some(-2)));
        assert_eq!(s(&future).state, CertState::NotYetValid);
        assert_eq!(s(&fine).subject, "CN=rcgen self signed cert");
        let missing = s(&d.path().join("missing.pem"));
        assert_eq!(missing.state, CertState::Unreadable);
    }
}
