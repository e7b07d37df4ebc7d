//! Changes to the merchant configuration as the fleet server would sync them: a new version
//! with Huabei switched off, a sync time. paymentd reads the file at start, so a change takes
//! effect when paymentd is restarted (tests and the demo restart it).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The merchant configuration [`crate::acquirer::paymentd_config`] wrote under `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("merchant.toml")
}

fn edit(file: &Path, f: impl FnOnce(&str) -> String) {
    let text = std::fs::read_to_string(file).expect("read merchant.toml");
    std::fs::write(file, f(&text)).expect("write merchant.toml");
}

/// Replace the line starting with `key =` (top level or in a table) by `key = value`.
fn set_line(text: &str, key: &str, value: &str) -> String {
    let prefix = format!("{key} =");
    let mut found = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if !found && l.starts_with(&prefix) {
                found = true;
                format!("{key} = {value}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(found, "merchant.toml has no {key}");
    out.join("\n") + "\n"
}

/// `t` as RFC 3339 in UTC, e.g. `2026-12-01T14:35:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let days = i64::try_from(secs / 86_400).expect("days fit");
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (the proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The configuration was confirmed with the fleet server `ago` before now.
pub fn synced(dir: &Path, ago: Duration) {
    let at = rfc3339(SystemTime::now() - ago);
    edit(&path(dir), |t| {
        set_line(t, "synced_at", &format!("\"{at}\""))
    });
}

/// A new configuration version from the fleet: this merchant no longer takes Huabei (花呗)
/// or its instalments.
pub fn huabei_off(dir: &Path, version: u64) {
    edit(&path(dir), |t| {
        let t = set_line(t, "version", &version.to_string());
        set_line(&t, "funding", r#"["balance", "bank_card", "credit_card"]"#)
    });
}

/// Set the merchant category (MCC) the policy table matches.
pub fn category(dir: &Path, mcc: &str) {
    edit(&path(dir), |t| {
        set_line(t, "category", &format!("\"{mcc}\""))
    });
}

/// Add a policy rule: no sale above `max_fen` for this merchant (a compliance cap).
pub fn policy_cap(dir: &Path, name: &str, max_fen: i64) {
    edit(&path(dir), |t| {
        // Top-level tables must come before the first [[path]]; insert the rule there.
        let at = t.find("[[path]]").expect("a [[path]] table");
        format!(
            "{}[[policy]]\nname = \"{name}\"\nmax_per_sale_fen = {max_fen}\nreason_zh = \"超过合规限额\"\nreason_en = \"above the compliance cap for payment codes\"\n\n{}",
            &t[..at],
            &t[at..]
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_as_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_000_000)),
            "2026-11-18T11:06:40Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }
}
