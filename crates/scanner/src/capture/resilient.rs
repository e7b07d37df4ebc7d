//! Keep a camera alive: reopen it when it goes away or stops delivering, with capped
//! exponential backoff, and say what is happening.
//!
//! A USB camera on a counter gets knocked, unplugged and replugged, and some cheap modules
//! stop delivering frames without an error. [`ResilientSource`] wraps any opener and:
//!
//! - on [`SourceError::Gone`] or any other error from the device: closes it and reopens after
//!   the next backoff delay (0.5 s, 1 s, 2 s … capped at 30 s by default);
//! - when no frame has come for `stall_after` (3 s) while open: declares it stalled, closes it
//!   and reopens the same way;
//! - resets the backoff once a frame arrives again.
//!
//! Its `next_frame` never fails with `Gone`: while the device is away it just times out, so the
//! capture thread keeps its simple loop. State and last error are published through a
//! [`StatusHandle`] that the daemon reads from its bus thread.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::{CaptureConfig, CaptureState, CaptureStatus, V4l2Source};
use crate::{Frame, FrameSource, SourceError};

/// Capped exponential backoff.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: f64,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, factor: f64) -> Self {
        let factor = if factor.is_finite() && factor >= 1.0 {
            factor
        } else {
            2.0
        };
        let initial = initial.min(max);
        Backoff {
            initial,
            max,
            factor,
            next: initial,
        }
    }

    /// The delay before the next attempt; each call makes the following one longer, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = self.next.mul_f64(self.factor).min(self.max);
        d
    }

    /// The device works again: start from the initial delay next time.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// Timings of [`ResilientSource`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ResiliencePolicy {
    pub initial_backoff_secs: f64,
    pub max_backoff_secs: f64,
    pub backoff_factor: f64,
    /// No frame for this long while open → stalled → reopen. Well above a frame period even
    /// at 5 fps, and short enough that a cashier does not wait long.
    pub stall_after_secs: f64,
}

impl Default for ResiliencePolicy {
    fn default() -> Self {
        ResiliencePolicy {
            initial_backoff_secs: 0.5,
            max_backoff_secs: 30.0,
            backoff_factor: 2.0,
            stall_after_secs: 3.0,
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

impl ResiliencePolicy {
    pub fn backoff(&self) -> Backoff {
        Backoff::new(
            secs(self.initial_backoff_secs),
            secs(self.max_backoff_secs),
            self.backoff_factor,
        )
    }

    pub fn stall_after(&self) -> Duration {
        secs(self.stall_after_secs)
    }
}

#[derive(Debug)]
struct Shared {
    state: CaptureState,
    since: Instant,
    source: String,
    last_error: Option<String>,
    frames: u64,
    reopens: u64,
    last_frame: Option<Instant>,
    next_attempt: Option<Instant>,
}

/// Read-only view of a [`ResilientSource`]'s status, cheap to clone and safe to read from
/// another thread.
#[derive(Debug, Clone)]
pub struct StatusHandle(Arc<Mutex<Shared>>);

impl StatusHandle {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep reporting it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn status(&self) -> CaptureStatus {
        let s = self.lock();
        let now = Instant::now();
        CaptureStatus {
            state: s.state,
            source: s.source.clone(),
            last_error: s.last_error.clone(),
            state_secs: now.saturating_duration_since(s.since).as_secs_f64(),
            frames: s.frames,
            reopens: s.reopens,
            last_frame_age_secs: s
                .last_frame
                .map(|t| now.saturating_duration_since(t).as_secs_f64()),
            next_attempt_in_secs: s
                .next_attempt
                .map(|t| t.saturating_duration_since(now).as_secs_f64()),
        }
    }
}

type Opener<S> = Box<dyn FnMut() -> Result<S, SourceError> + Send>;

/// A [`FrameSource`] that reopens its device as needed; see the module docs.
pub struct ResilientSource<S: FrameSource> {
    name: String,
    opener: Opener<S>,
    inner: Option<S>,
    opened_at: Instant,
    last_frame: Option<Instant>,
    next_attempt: Instant,
    backoff: Backoff,
    stall_after: Duration,
    ever_opened: bool,
    status: StatusHandle,
}

impl<S: FrameSource> std::fmt::Debug for ResilientSource<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientSource")
            .field("name", &self.name)
            .field("status", &self.status.status())
            .finish()
    }
}

impl ResilientSource<V4l2Source> {
    /// A V4L2 camera that survives unplugs and stalls.
    pub fn v4l2(cfg: CaptureConfig, policy: &ResiliencePolicy) -> Self {
        let name = cfg.camera.to_string();
        ResilientSource::new(name, move || V4l2Source::open(&cfg), policy)
    }
}

impl<S: FrameSource> ResilientSource<S> {
    /// `opener` is called for the first open and every reopen. It should return
    /// [`SourceError::Gone`] when the device is not there at all (reported as `Absent`).
    pub fn new(
        name: impl Into<String>,
        opener: impl FnMut() -> Result<S, SourceError> + Send + 'static,
        policy: &ResiliencePolicy,
    ) -> Self {
        let name = name.into();
        let now = Instant::now();
        let status = StatusHandle(Arc::new(Mutex::new(Shared {
            state: CaptureState::Starting,
            since: now,
            source: name.clone(),
            last_error: None,
            frames: 0,
            reopens: 0,
            last_frame: None,
            next_attempt: None,
        })));
        ResilientSource {
            name,
            opener: Box::new(opener),
            inner: None,
            opened_at: now,
            last_frame: None,
            next_attempt: now,
            backoff: policy.backoff(),
            stall_after: policy.stall_after(),
            ever_opened: false,
            status,
        }
    }

    pub fn status_handle(&self) -> StatusHandle {
        self.status.clone()
    }

    pub fn status(&self) -> CaptureStatus {
        self.status.status()
    }

    fn set_state(&self, state: CaptureState, error: Option<String>, next_attempt: Option<Instant>) {
        let mut s = self.status.lock();
        if s.state != state {
            s.state = state;
            s.since = Instant::now();
        }
        if error.is_some() {
            s.last_error = error;
        }
        s.next_attempt = next_attempt;
    }

    /// Close the device and schedule the next open after the backoff delay.
    fn fail(&mut self, state: CaptureState, error: String) {
        self.inner = None;
        let delay = self.backoff.next_delay();
        self.next_attempt = Instant::now() + delay;
        let news = {
            let s = self.status.lock();
            s.state != state || s.last_error.as_deref() != Some(error.as_str())
        };
        // An absent camera is retried for hours; say so once per change, not every attempt.
        if news {
            tracing::warn!(camera = %self.name, ?state, retry_in = ?delay, %error, "camera not delivering; will reopen");
        } else {
            tracing::debug!(camera = %self.name, ?state, retry_in = ?delay, "camera still not delivering");
        }
        self.set_state(state, Some(error), Some(self.next_attempt));
    }

    fn try_open(&mut self) {
        match (self.opener)() {
            Ok(src) => {
                let now = Instant::now();
                {
                    let mut s = self.status.lock();
                    s.source = src.name().to_string();
                    if self.ever_opened {
                        s.reopens += 1;
                    }
                    s.next_attempt = None;
                }
                tracing::info!(camera = %src.name(), reopen = self.ever_opened, "camera open");
                self.ever_opened = true;
                self.opened_at = now;
                self.inner = Some(src);
            }
            Err(SourceError::Gone(e)) => self.fail(CaptureState::Absent, e),
            Err(e) => self.fail(CaptureState::Reopening, e.to_string()),
        }
    }
}

impl<S: FrameSource> FrameSource for ResilientSource<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn next_frame(&mut self, timeout: Duration) -> Result<Frame, SourceError> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if self.inner.is_none() {
                if now < self.next_attempt {
                    if now >= deadline {
                        return Err(SourceError::Timeout(timeout));
                    }
                    thread::sleep(self.next_attempt.min(deadline) - now);
                    continue;
                }
                self.try_open();
                if self.inner.is_none() {
                    continue;
                }
            }
            let now = Instant::now();
            let quiet_since = self
                .last_frame
                .map_or(self.opened_at, |t| t.max(self.opened_at));
            let stall_at = quiet_since + self.stall_after;
            if now >= stall_at {
                let quiet = now - quiet_since;
                self.fail(
                    CaptureState::Stalled,
                    format!(
                        "no frame for {:.1} s; the camera stopped delivering, reopening it",
                        quiet.as_secs_f64()
                    ),
                );
                continue;
            }
            if now >= deadline {
                return Err(SourceError::Timeout(timeout));
            }
            let wait = deadline.min(stall_at) - now;
            let Some(inner) = self.inner.as_mut() else {
                continue;
            };
            match inner.next_frame(wait) {
                Ok(frame) => {
                    let at = Instant::now();
                    self.last_frame = Some(at);
                    self.backoff.reset();
                    {
                        let mut s = self.status.lock();
                        s.frames += 1;
                        s.last_frame = Some(at);
                    }
                    self.set_state(CaptureState::Streaming, None, None);
                    return Ok(frame);
                }
                Err(SourceError::Timeout(_)) => {}
                Err(SourceError::EndOfStream) => return Err(SourceError::EndOfStream),
                Err(SourceError::Gone(e)) => self.fail(CaptureState::Reopening, e),
                Err(SourceError::Other(e)) => self.fail(CaptureState::Reopening, e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LumaImage;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30), 2.0);
        let delays: Vec<f64> = (0..9).map(|_| b.next_delay().as_secs_f64()).collect();
        assert_eq!(
            delays,
            vec![0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
        );
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }

    #[test]
    fn a_nonsense_backoff_factor_falls_back_to_doubling() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10), f64::NAN);
        b.next_delay();
        assert_eq!(b.next_delay(), Duration::from_secs(2));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Frame,
        Gone,
        Silent,
    }

    /// A camera that follows a script, then goes silent.
    struct Scripted {
        name: String,
        steps: VecDeque<Step>,
    }

    impl FrameSource for Scripted {
        fn name(&self) -> &str {
            &self.name
        }

        fn next_frame(&mut self, timeout: Duration) -> Result<Frame, SourceError> {
            match self.steps.pop_front().unwrap_or(Step::Silent) {
                Step::Frame => Ok(Frame::from_luma(
                    LumaImage {
                        width: 1,
                        height: 1,
                        data: vec![7],
                    },
                    0,
                )),
                Step::Gone => Err(SourceError::Gone("ENODEV".into())),
                Step::Silent => {
                    thread::sleep(timeout);
                    Err(SourceError::Timeout(timeout))
                }
            }
        }
    }

    fn fast_policy() -> ResiliencePolicy {
        ResiliencePolicy {
            initial_backoff_secs: 0.01,
            max_backoff_secs: 0.04,
            backoff_factor: 2.0,
            stall_after_secs: 0.1,
        }
    }

    #[test]
    fn a_camera_plugged_in_late_is_found_by_retrying() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let mut src = ResilientSource::new(
            "cam",
            move || match c.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(SourceError::Gone("/dev/video0 does not exist".into())),
                _ => Ok(Scripted {
                    name: "/dev/video0 (USB Camera)".into(),
                    steps: [Step::Frame].into(),
                }),
            },
            &fast_policy(),
        );
        let status = src.status_handle();
        assert!(matches!(
            src.next_frame(Duration::from_millis(1)),
            Err(SourceError::Timeout(_))
        ));
        assert_eq!(status.status().state, CaptureState::Absent);
        assert!(
            status
                .status()
                .last_error
                .unwrap()
                .contains("does not exist")
        );
        let frame = src.next_frame(Duration::from_secs(2)).unwrap();
        assert_eq!(frame.data, vec![7]);
        let st = status.status();
        assert_eq!(st.state, CaptureState::Streaming);
        assert_eq!(st.source, "/dev/video0 (USB Camera)");
        assert_eq!((st.frames, st.reopens), (1, 0));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn an_unplugged_camera_is_reopened_and_streams_again() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let mut src = ResilientSource::new(
            "cam",
            move || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                let steps = if n == 0 {
                    vec![Step::Frame, Step::Frame, Step::Gone]
                } else {
                    vec![Step::Frame; 3]
                };
                Ok(Scripted {
                    name: format!("open #{n}"),
                    steps: steps.into(),
                })
            },
            &fast_policy(),
        );
        let status = src.status_handle();
        for _ in 0..4 {
            src.next_frame(Duration::from_secs(2)).unwrap();
        }
        let st = status.status();
        assert_eq!(st.state, CaptureState::Streaming);
        assert_eq!((st.frames, st.reopens), (4, 1));
        assert_eq!(st.source, "open #1");
        assert!(
            st.last_error.unwrap().contains("ENODEV"),
            "the last trouble stays visible"
        );
    }

    #[test]
    fn a_camera_that_goes_silent_is_declared_stalled_and_reopened() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let mut src = ResilientSource::new(
            "cam",
            move || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                let steps = if n == 0 {
                    vec![Step::Frame]
                } else {
                    vec![Step::Frame, Step::Frame]
                };
                Ok(Scripted {
                    name: format!("open #{n}"),
                    steps: steps.into(),
                })
            },
            // The reopen waits 200 ms, so it cannot happen inside the 105 ms wait below.
            &ResiliencePolicy {
                initial_backoff_secs: 0.2,
                ..fast_policy()
            },
        );
        let status = src.status_handle();
        src.next_frame(Duration::from_secs(1)).unwrap();
        // Silent for longer than the 100 ms stall time: a timeout first, and a stall.
        assert!(matches!(
            src.next_frame(Duration::from_millis(105)),
            Err(SourceError::Timeout(_))
        ));
        assert_eq!(status.status().state, CaptureState::Stalled);
        assert!(status.status().last_error.unwrap().contains("no frame for"));
        src.next_frame(Duration::from_secs(1)).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(status.status().state, CaptureState::Streaming);
    }

    #[test]
    fn a_camera_that_never_comes_back_is_retried_at_the_capped_pace() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let mut src = ResilientSource::<Scripted>::new(
            "cam",
            move || {
                c.fetch_add(1, Ordering::SeqCst);
                Err(SourceError::Other(
                    "VIDIOC_STREAMON: Input/output error".into(),
                ))
            },
            &fast_policy(),
        );
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(300) {
            assert!(matches!(
                src.next_frame(Duration::from_millis(50)),
                Err(SourceError::Timeout(_))
            ));
        }
        // Delays 10, 20, 40, 40, 40 … ms: about 9 attempts in 300 ms, never a busy loop.
        let n = calls.load(Ordering::SeqCst);
        assert!((5..=12).contains(&n), "{n} attempts");
        let st = src.status();
        assert_eq!(st.state, CaptureState::Reopening);
        assert!(st.next_attempt_in_secs.unwrap() <= 0.04 + 1e-3);
    }

    #[test]
    fn a_replay_that_ends_is_reported_as_the_end() {
        let frames = vec![Frame::from_luma(
            LumaImage {
                width: 1,
                height: 1,
                data: vec![1],
            },
            0,
        )];
        let mut src = ResilientSource::new(
            "replay",
            move || {
                Ok(crate::replay::VecSource::new(
                    "replay",
                    frames.clone(),
                    Default::default(),
                ))
            },
            &fast_policy(),
        );
        src.next_frame(Duration::from_secs(1)).unwrap();
        assert!(matches!(
            src.next_frame(Duration::from_secs(1)),
            Err(SourceError::EndOfStream)
        ));
    }

    #[test]
    fn status_serialises_for_the_bus() {
        let src = ResilientSource::<Scripted>::new(
            "cam",
            || Err(SourceError::Gone("x".into())),
            &fast_policy(),
        );
        let json = serde_json::to_string(&src.status()).unwrap();
        assert!(json.contains("\"state\":\"starting\""), "{json}");
    }

    #[test]
    fn tiny_waits_do_not_spin() {
        let mut src = ResilientSource::new(
            "cam",
            || {
                Ok(Scripted {
                    name: "s".into(),
                    steps: VecDeque::new(),
                })
            },
            &fast_policy(),
        );
        let t0 = Instant::now();
        let _ = src.next_frame(5 * MS);
        assert!(t0.elapsed() < Duration::from_millis(100));
    }
}
