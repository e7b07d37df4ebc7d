//! Rolling statistics of one probe target over its last N probes: p50/p95 latency of the
//! successful ones, loss (the share that failed), the last error and since when the target
//! has been failing, the last success.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub at: SystemTime,
    /// Total time of a successful probe.
    pub latency: Option<Duration>,
    /// Why it failed: a stable code (the transport's error class code, `net.dns` …).
    pub error: Option<ProbeError>,
}

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeError {
    /// Stable code, e.g. `net.dns`, `net.refused`, `net.cert_expired`, `net.timeout`.
    pub code: String,
    /// What was seen, for a technician ("no answer from 192.168.1.1 within 2 s").
    pub detail: String,
}

/// The summary a client reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Probes in the window.
    pub probes: u32,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    /// Failed probes / probes in the window, 0–1.
    pub loss: f64,
    pub last_error: Option<ProbeError>,
    /// Unix seconds of the last error.
    pub last_error_at: Option<u64>,
    /// Unix seconds of the first failure of the current run of failures (None when the last
    /// probe succeeded).
    pub failing_since: Option<u64>,
    /// Unix seconds of the last success.
    pub last_success_at: Option<u64>,
    /// Whether the last probe succeeded (None before the first).
    pub last_ok: Option<bool>,
}

/// The last `capacity` samples of one target.
#[derive(Debug, Clone)]
pub struct Window {
    capacity: usize,
    samples: VecDeque<Sample>,
    last_error: Option<(ProbeError, SystemTime)>,
    last_success: Option<SystemTime>,
    failing_since: Option<SystemTime>,
}

impl Window {
    pub fn new(capacity: usize) -> Window {
        Window {
            capacity: capacity.max(1),
            samples: VecDeque::new(),
            last_error: None,
            last_success: None,
            failing_since: None,
        }
    }

    pub fn push(&mut self, s: Sample) {
        match &s.error {
            Some(e) => {
                self.last_error = Some((e.clone(), s.at));
                self.failing_since.get_or_insert(s.at);
            }
            None => {
                self.last_success = Some(s.at);
                self.failing_since = None;
            }
        }
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    pub fn last(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// Since when the target has failed every probe, if it does now.
    pub fn failing_since(&self) -> Option<SystemTime> {
        self.failing_since
    }

    pub fn summary(&self) -> Summary {
        let mut ok: Vec<f64> = self
            .samples
            .iter()
            .filter_map(|s| s.latency)
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        ok.sort_by(f64::total_cmp);
        let n = self.samples.len();
        let failed = self.samples.iter().filter(|s| s.error.is_some()).count();
        #[allow(clippy::cast_precision_loss)]
        let loss = if n == 0 {
            0.0
        } else {
            failed as f64 / n as f64
        };
        Summary {
            probes: u32::try_from(n).unwrap_or(u32::MAX),
            p50_ms: percentile(&ok, 50),
            p95_ms: percentile(&ok, 95),
            loss,
            last_error: self.last_error.as_ref().map(|(e, _)| e.clone()),
            last_error_at: self.last_error.as_ref().map(|(_, t)| unix(*t)),
            failing_since: self.failing_since.map(unix),
            last_success_at: self.last_success.map(unix),
            last_ok: self.samples.back().map(|s| s.error.is_none()),
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: usize) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ms: u64, at: u64) -> Sample {
        Sample {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(at),
            latency: Some(Duration::from_millis(ms)),
            error: None,
        }
    }

    fn fail(code: &str, at: u64) -> Sample {
        Sample {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(at),
            latency: None,
            error: Some(ProbeError {
                code: code.into(),
                detail: "x".into(),
            }),
        }
    }

    #[test]
    fn percentiles_and_loss_over_the_last_n() {
        let mut w = Window::new(20);
        for i in 1..=20 {
            w.push(ok(i * 10, i));
        }
        let s = w.summary();
        assert_eq!(s.probes, 20);
        assert_eq!(s.p50_ms, Some(100.0));
        assert_eq!(s.p95_ms, Some(190.0));
        assert!(s.loss.abs() < f64::EPSILON);
        // Five failures push five old successes out of the window: loss 5/20.
        for i in 21..=25 {
            w.push(fail("net.dns", i));
        }
        let s = w.summary();
        assert_eq!(s.probes, 20);
        assert!((s.loss - 0.25).abs() < 1e-9, "{}", s.loss);
        assert_eq!(s.failing_since, Some(21));
        assert_eq!(s.last_error_at, Some(25));
        assert_eq!(s.last_success_at, Some(20));
        assert_eq!(s.last_ok, Some(false));
    }

    #[test]
    fn a_success_ends_the_run_of_failures_but_the_last_error_is_kept() {
        let mut w = Window::new(5);
        w.push(fail("net.refused", 1));
        w.push(fail("net.refused", 2));
        assert_eq!(w.summary().failing_since, Some(1));
        w.push(ok(30, 3));
        let s = w.summary();
        assert_eq!(s.failing_since, None);
        assert_eq!(s.last_error.unwrap().code, "net.refused");
        assert_eq!(s.last_ok, Some(true));
    }
}
