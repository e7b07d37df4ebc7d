//! Bundle versions: dot-separated numbers (`1.2.0`, semver as goosebit demands), compared
//! number by number. A pre-release or build suffix (`1.2.0-rc1`, `+git`) is compared as text
//! after the numbers, so `1.2.0-rc1 < 1.2.0` as in semver.

use std::cmp::Ordering;

/// Compare two version strings; `None` if either has no leading number (then the caller
/// cannot tell a downgrade and must refuse unless forced).
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let (an, ap) = split(a)?;
    let (bn, bp) = split(b)?;
    let len = an.len().max(bn.len());
    for i in 0..len {
        let x = an.get(i).copied().unwrap_or(0);
        let y = bn.get(i).copied().unwrap_or(0);
        match x.cmp(&y) {
            Ordering::Equal => {}
            o => return Some(o),
        }
    }
    Some(match (ap, bp) {
        (None, None) => Ordering::Equal,
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (Some(x), Some(y)) => x.cmp(y),
    })
}

fn split(v: &str) -> Option<(Vec<u64>, Option<&str>)> {
    let v = v.trim().trim_start_matches('v');
    let v = v.split('+').next().unwrap_or(v);
    let (nums, pre) = match v.split_once('-') {
        Some((n, p)) => (n, Some(p)),
        None => (v, None),
    };
    let parsed: Result<Vec<u64>, _> = nums.split('.').map(str::parse).collect();
    let parsed = parsed.ok().filter(|p| !p.is_empty())?;
    Some((parsed, pre))
}

/// Is `offered` older than `running`? Unknown counts as older: a version we cannot read is
/// not proof that it is newer.
pub fn is_downgrade(offered: &str, running: &str) -> bool {
    if running.is_empty() {
        return false;
    }
    !matches!(
        compare(offered, running),
        Some(Ordering::Greater | Ordering::Equal)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_number_by_number_not_as_text() {
        assert_eq!(compare("1.10.0", "1.9.3"), Some(Ordering::Greater));
        assert_eq!(compare("1.2", "1.2.0"), Some(Ordering::Equal));
        assert_eq!(compare("1.2.0-rc1", "1.2.0"), Some(Ordering::Less));
        assert_eq!(compare("v2.0.0+build7", "1.99.0"), Some(Ordering::Greater));
        assert_eq!(compare("nightly", "1.0.0"), None);
    }

    #[test]
    fn an_older_or_unreadable_bundle_is_a_downgrade_a_newer_or_same_is_not() {
        assert!(is_downgrade("1.0.0", "1.1.0"));
        assert!(is_downgrade("nightly", "1.1.0"));
        assert!(!is_downgrade("1.2.0", "1.1.0"));
        assert!(!is_downgrade("1.1.0", "1.1.0"));
        // A factory image that knows no version of its own accepts the first update.
        assert!(!is_downgrade("1.0.0", ""));
    }
}
