//! The source threads: capture → health → decode for the camera, key events → codes for
//! HID scanners. Blocking I/O and CPU-heavy decoding live here, never on the bus runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use smartpos_scanner::capture::resilient::StatusHandle;
use smartpos_scanner::decode::{FrameDecoder, StreamConfig};
use smartpos_scanner::health::{HealthConfig, HealthMonitor};
use smartpos_scanner::hid::CodeSource;
use smartpos_scanner::hid::device::HidStatusHandle;
use smartpos_scanner::{FrameSource, SourceError};
use tokio::sync::mpsc::Sender;

use crate::service::{LastFrame, Scanned, Shared};

/// CLOCK_MONOTONIC in microseconds, `ago` before now.
fn monotonic_us(ago: Duration) -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| {
            Duration::new(
                u64::try_from(t.tv_sec()).unwrap_or(0),
                u32::try_from(t.tv_nsec()).unwrap_or(0),
            )
        })
        .unwrap_or_default();
    u64::try_from(now.saturating_sub(ago).as_micros()).unwrap_or(u64::MAX)
}

fn wall_us(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// With no session armed, one frame in this interval is analysed for health (and kept for
/// Snapshot); the rest only count for the frame rate. See docs/scanner.md for the CPU this
/// saves.
pub const IDLE_SAMPLE: Duration = Duration::from_millis(500);

/// Run a camera until `stop` or the source ends.
pub fn run_camera(
    mut source: Box<dyn FrameSource>,
    status: Option<StatusHandle>,
    shared: Arc<Shared>,
    tx: Sender<Scanned>,
    stop: Arc<AtomicBool>,
) {
    let name = source.name().to_owned();
    let label = format!("camera:{name}");
    let mut decoder = FrameDecoder::new(StreamConfig::default());
    let mut health = HealthMonitor::new(HealthConfig::default());
    let mut was_scanning = false;
    let mut stalled = false;
    let mut last_sample: Option<Instant> = None;
    shared.set_source("camera", &name, "opening");
    while !stop.load(Ordering::Relaxed) {
        match source.next_frame(Duration::from_secs(2)) {
            Ok(frame) => {
                let scanning = shared.scanning();
                // With no session armed nothing is decoded, and health needs no more than a
                // couple of frames a second: the others only count for the frame rate.
                if !scanning && last_sample.is_some_and(|t: Instant| t.elapsed() < IDLE_SAMPLE) {
                    // The published snapshot (frame rate included) is refreshed with the
                    // sampled frames.
                    health.record_frame_time(frame.captured);
                    stalled = false;
                    continue;
                }
                last_sample = Some(Instant::now());
                let luma = match frame.to_luma() {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!("{label}: unusable frame: {e}");
                        shared.set_source("camera", &name, &format!("bad frames: {e}"));
                        continue;
                    }
                };
                health.observe_frame(&luma, frame.captured);
                stalled = false;
                shared.set_source("camera", &name, "streaming");
                if scanning != was_scanning {
                    // A new session starts from a clean slate: no region of interest carried over.
                    decoder.reset();
                    was_scanning = scanning;
                }
                let codes = if scanning {
                    let out = decoder.decode(&luma);
                    health.record_decode(!out.codes.is_empty());
                    if out.panicked {
                        tracing::warn!(
                            "{label}: the QR decoder panicked on frame {} (contained)",
                            frame.seq
                        );
                    }
                    // Health first, so a client that reacts to CodeScanned sees this frame counted.
                    *lock(&shared.health) = Some(health.snapshot(Instant::now()));
                    let ago = frame.captured.elapsed();
                    for c in &out.codes {
                        hand_over(
                            &tx,
                            &shared,
                            Scanned {
                                text: c.text.clone(),
                                symbology: c.symbology.as_str().to_owned(),
                                kind: "camera",
                                source: label.clone(),
                                monotonic_us: monotonic_us(ago),
                                wall_us: wall_us(frame.wall),
                            },
                        );
                    }
                    out.codes
                } else {
                    Vec::new()
                };
                *lock(&shared.last_frame) = Some(LastFrame { image: luma, codes });
            }
            Err(SourceError::Timeout(d)) => {
                // A live camera reports its own state (absent, reopening) below; say it once.
                if !stalled {
                    tracing::warn!("{label}: no frame for {d:?}");
                    stalled = true;
                }
                if status.is_none() {
                    shared.set_source("camera", &name, "stalled");
                }
            }
            Err(SourceError::EndOfStream) => {
                tracing::info!("{label}: end of replay");
                shared.set_source("camera", &name, "ended");
                *lock(&shared.health) = Some(health.snapshot(Instant::now()));
                return;
            }
            Err(SourceError::Gone(e)) => {
                tracing::warn!("{label}: device gone: {e}");
                shared.set_source("camera", &name, &format!("absent: {e}"));
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(SourceError::Other(e)) => {
                tracing::warn!("{label}: {e}");
                shared.set_source("camera", &name, &format!("error: {e}"));
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        if let Some(h) = &status {
            // A live camera says more than our own view: reopening, absent, the last error.
            let st = h.status();
            let state = json_name(&st.state);
            let text = match &st.last_error {
                Some(e) if state != "streaming" => format!("{state}: {e}"),
                _ => state,
            };
            shared.set_source("camera", &name, &text);
        }
        *lock(&shared.health) = Some(health.snapshot(Instant::now()));
    }
}

fn json_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

/// Run a keyboard-wedge code source until `stop` or the source ends.
pub fn run_codes(
    mut source: Box<dyn CodeSource>,
    devices: Option<HidStatusHandle>,
    shared: Arc<Shared>,
    tx: Sender<Scanned>,
    stop: Arc<AtomicBool>,
) {
    let name = source.name().to_owned();
    if devices.is_none() {
        shared.set_source("hid", &name, "listening");
    }
    while !stop.load(Ordering::Relaxed) {
        if let Some(h) = &devices {
            // Real scanners come and go: list what is open now, or say that none is.
            let open = h.devices();
            let entries = if open.is_empty() {
                vec![(name.clone(), "no scanner connected".to_owned())]
            } else {
                open.iter()
                    .map(|d| {
                        let state = if d.grabbed {
                            "grabbed"
                        } else {
                            "open (not grabbed)"
                        };
                        (
                            format!(
                                "{} ({} {:04x}:{:04x})",
                                d.path.display(),
                                d.name,
                                d.vendor,
                                d.product
                            ),
                            state.to_owned(),
                        )
                    })
                    .collect()
            };
            shared.set_group("hid", &name, entries);
        }
        match source.next_code(Duration::from_millis(500)) {
            Ok(code) => {
                hand_over(
                    &tx,
                    &shared,
                    Scanned {
                        text: code.text.clone(),
                        symbology: "hid".to_owned(),
                        kind: "hid",
                        source: format!("hid:{}", code.source),
                        monotonic_us: monotonic_us(Duration::ZERO),
                        wall_us: wall_us(SystemTime::now()),
                    },
                );
            }
            Err(SourceError::Timeout(_)) => {}
            Err(SourceError::EndOfStream) => {
                shared.set_source("hid", &name, "ended");
                return;
            }
            Err(SourceError::Gone(e)) | Err(SourceError::Other(e)) => {
                tracing::warn!("hid:{name}: {e}");
                shared.set_source("hid", &name, &format!("error: {e}"));
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// Give a code to the bus side. The channel is bounded ([`crate::service::CODE_QUEUE`]): if
/// the bus side has fallen that far behind, the newest code is dropped and counted rather
/// than memory growing without end (the customer's code is shown again; a duplicate of it is
/// suppressed anyway).
fn hand_over(tx: &Sender<Scanned>, shared: &Shared, code: Scanned) {
    match tx.try_send(code) {
        Ok(()) => {}
        Err(tokio::sync::mpsc::error::TrySendError::Full(code)) => {
            let n = shared
                .dropped_codes
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1);
            tracing::warn!(source = %code.source, dropped = n, "the bus side is behind: code dropped");
        }
        // The bus side has stopped: we are shutting down.
        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {}
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::CODE_QUEUE;

    fn scanned(n: usize) -> Scanned {
        Scanned {
            text: format!("28{n:016}"),
            symbology: "hid".to_owned(),
            kind: "hid",
            source: "hid:jammed".to_owned(),
            monotonic_us: 0,
            wall_us: 0,
        }
    }

    #[test]
    fn a_jammed_scanner_flooding_codes_while_the_bus_side_is_stuck_is_held_to_the_queue() {
        // A technician's story: a HID scanner with a stuck trigger fires 10,000 codes while
        // the bus side is stuck and reads none. The queue holds CODE_QUEUE codes, the newest
        // are dropped and counted (the log and the counter say so), and memory stays put.
        let shared = Shared::default();
        let (tx, mut rx) = tokio::sync::mpsc::channel(CODE_QUEUE);
        let flood = 10_000;
        for n in 0..flood {
            hand_over(&tx, &shared, scanned(n));
        }
        let dropped = shared.dropped_codes.load(Ordering::Relaxed);
        assert_eq!(dropped, u64::try_from(flood - CODE_QUEUE).unwrap());
        let mut waiting = Vec::new();
        while let Ok(c) = rx.try_recv() {
            waiting.push(c.text);
        }
        // The oldest codes waited; the newest were the ones dropped.
        let first: Vec<String> = (0..CODE_QUEUE).map(|n| scanned(n).text).collect();
        assert_eq!(waiting, first);

        // Once the bus side reads again, the next customer's code gets through.
        hand_over(&tx, &shared, scanned(flood));
        assert_eq!(rx.try_recv().map(|c| c.text), Ok(scanned(flood).text));
        assert_eq!(shared.dropped_codes.load(Ordering::Relaxed), dropped);
    }
}
