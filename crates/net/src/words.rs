//! Durations and offsets in words a cashier reads: "3 minutes", "2 years"; 3分钟, 2年.

use std::time::Duration;

const UNITS: [(u64, &str, &str); 6] = [
    (365 * 86_400, "year", "年"),
    (30 * 86_400, "month", "个月"),
    (86_400, "day", "天"),
    (3_600, "hour", "小时"),
    (60, "minute", "分钟"),
    (1, "second", "秒"),
];

/// The largest whole unit: 200 s is "3 minutes", 800 days "2 years".
pub fn en(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, name, _) in UNITS {
        if s >= unit {
            let n = s / unit;
            return format!("{n} {name}{}", if n == 1 { "" } else { "s" });
        }
    }
    "a moment".to_owned()
}

pub fn zh(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, _, name) in UNITS {
        if s >= unit {
            return format!("{}{name}", s / unit);
        }
    }
    "片刻".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_units_as_people_say_them() {
        assert_eq!(en(Duration::from_secs(200)), "3 minutes");
        assert_eq!(en(Duration::from_secs(60)), "1 minute");
        assert_eq!(en(Duration::from_secs(800 * 86_400)), "2 years");
        assert_eq!(en(Duration::ZERO), "a moment");
        assert_eq!(zh(Duration::from_secs(200)), "3分钟");
    }
}
