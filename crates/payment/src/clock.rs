//! Wall-clock helpers. Business dates are China Standard Time (UTC+8, no DST), the zone the
//! acquirers settle in; the journal stores UTC milliseconds.
//!
//! The wall clock is for what is stored and shown. Durations — polling windows, back-off,
//! the awaiting-code expiry, the resolution window — are measured on the monotonic clock
//! (`tokio::time::Instant`), because the wall clock jumps: a terminal boots with a stale RTC
//! and NTP steps it forward. [`step_wall_clock`] makes such a jump for tests.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const CST_OFFSET_MS: i64 = 8 * 3600 * 1000;

/// A step applied to the system clock's reading, as an NTP step would (tests only move it).
static WALL_STEP_MS: AtomicI64 = AtomicI64::new(0);

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        + WALL_STEP_MS.load(Ordering::Relaxed)
}

/// Step this process's wall clock by `delta_ms`, as NTP does at boot when the RTC was
/// wrong: for tests that show durations do not depend on it. Process-wide.
pub fn step_wall_clock(delta_ms: i64) {
    WALL_STEP_MS.fetch_add(delta_ms, Ordering::Relaxed);
}

/// Days since 1970-01-01 → (year, month, day); Howard Hinnant's civil-from-days.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYYMMDD` of the China business day containing `unix_ms`.
pub fn cst_date(unix_ms: i64) -> String {
    let (y, m, d) = civil_from_days((unix_ms + CST_OFFSET_MS).div_euclid(86_400_000));
    format!("{y:04}{m:02}{d:02}")
}

/// Start of the China business day containing `unix_ms`, in UTC milliseconds.
pub fn cst_day_start_ms(unix_ms: i64) -> i64 {
    (unix_ms + CST_OFFSET_MS).div_euclid(86_400_000) * 86_400_000 - CST_OFFSET_MS
}

/// Parse `YYYY-MM-DDTHH:MM:SSZ` or with a `+hh:mm` offset (the config's `synced_at`).
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[n..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset_s) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_business_day_turns_at_midnight_beijing_time() {
        // 2026-11-27T15:59:59Z is 23:59:59 in Beijing; one second later it is the 28th.
        let before = parse_rfc3339_ms("2026-11-27T15:59:59Z").expect("valid");
        assert_eq!(cst_date(before), "20261127");
        assert_eq!(cst_date(before + 1000), "20261128");
        assert_eq!(cst_day_start_ms(before + 1000), before + 1000);
    }

    #[test]
    fn offsets_and_fractions_parse() {
        let z = parse_rfc3339_ms("2026-11-27T10:00:00Z");
        assert_eq!(parse_rfc3339_ms("2026-11-27T18:00:00+08:00"), z);
        assert_eq!(parse_rfc3339_ms("2026-11-27T10:00:00.250Z"), z);
        assert_eq!(parse_rfc3339_ms("2026-13-27T10:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
    }
}
