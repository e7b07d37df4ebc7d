//! What one probe of an endpoint measured, and the HTTP date format its `Date:` header uses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{ErrorClass, TransportError};

/// One probe ([`crate::Transport::probe`]): each step timed separately. A step not reached
/// is zero (`None` for the optional ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeReport {
    /// DNS lookup; `None` when the endpoint is an IP address (no lookup) or it was not reached.
    pub dns: Option<Duration>,
    /// TCP connect.
    pub connect: Duration,
    /// TLS handshake, certificate checks included.
    pub handshake: Duration,
    /// From the `HEAD` request written to its answer.
    pub response: Option<Duration>,
    /// The answer's status (any status is an answer: the server is there).
    pub http_status: Option<u16>,
    /// The server's `Date:`, to compare with the local clock.
    pub date_header: Option<SystemTime>,
    pub total: Duration,
    /// Whether an already open connection was used (then DNS, connect and handshake are
    /// zero). [`crate::Transport::probe`] always opens a fresh one.
    pub reused: bool,
    /// What failed: a step, or an HTTP status of 500 and above.
    pub error: Option<ErrorClass>,
    /// The failure in the libraries' words, for logs and technicians.
    pub detail: Option<String>,
}

impl ProbeReport {
    pub(crate) fn fail(&mut self, e: TransportError) {
        self.error = Some(e.class);
        self.detail = Some(e.detail);
    }

    /// The probe reached the server and it answered below 500.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// An HTTP date in the preferred IMF-fixdate form (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110
/// §5.6.7). The two obsolete forms are not accepted: every server today sends this one.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (_weekday, rest) = s.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let sec: u64 = hms.next()?.parse().ok()?;
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 || year < 1970 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + sec;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the well-known era-based formula).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse_to_the_second() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("date");
        assert_eq!(
            t.duration_since(UNIX_EPOCH).expect("after epoch").as_secs(),
            784_111_777
        );
        let t = parse_http_date("Tue, 01 Dec 2026 17:36:43 GMT").expect("date");
        assert_eq!(
            t.duration_since(UNIX_EPOCH).expect("after epoch").as_secs(),
            1_796_146_603
        );
        assert!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT").is_none());
        assert!(parse_http_date("Sun, 06 Nov 1994 08:49:37 CET").is_none());
        assert!(parse_http_date("").is_none());
    }
}
