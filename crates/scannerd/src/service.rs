//! `org.smartpos.Scanner1`: sessions, duplicate suppression, health properties.
//!
//! Capture and decoding run on their own threads (see `pipeline`); they hand codes to the
//! async side through a channel, and health through [`Shared`]. Nothing here blocks.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use smartpos_runtime::{auth::Policy, error::BusError, redact::mask_code};
use smartpos_scanner::{LumaImage, decode::Code, health::HealthSnapshot, snapshot::Quad};
use zbus::{Connection, fdo, interface, message::Header, object_server::SignalEmitter};

/// The longest session a caller may ask for: 10 minutes.
pub const MAX_SESSION_MS: u32 = 600_000;

/// A code on its way from a source thread to the bus.
#[derive(Clone)]
pub struct Scanned {
    pub text: String,
    pub symbology: String,
    /// "camera" or "hid", for session filters.
    pub kind: &'static str,
    /// e.g. "camera:/dev/video0".
    pub source: String,
    pub monotonic_us: u64,
    pub wall_us: i64,
}

impl std::fmt::Debug for Scanned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanned")
            .field("text", &mask_code(&self.text))
            .field("symbology", &self.symbology)
            .field("source", &self.source)
            .finish()
    }
}

struct Session {
    until: Instant,
    /// Empty = every kind.
    kinds: Vec<String>,
}

/// The latest frame and what was read in it, for `Snapshot`.
pub struct LastFrame {
    pub image: LumaImage,
    pub codes: Vec<Code>,
}

/// State shared by the source threads and the bus side.
pub struct Shared {
    sessions: Mutex<HashMap<u64, Session>>,
    /// The last session id handed out. Starts at a random point (see [`first_session_id`]),
    /// so an id from before a restart of this daemon is never handed out again.
    next_session: Mutex<u64>,
    /// Sources: (kind, name, state).
    pub sources: Mutex<Vec<(String, String, String)>>,
    pub health: Mutex<Option<HealthSnapshot>>,
    pub last_frame: Mutex<Option<LastFrame>>,
    recent: Mutex<HashMap<String, Instant>>,
    /// Which `sources` entries each multi-device source (the evdev scanners) put there.
    groups: Mutex<HashMap<String, Vec<String>>>,
    /// Codes dropped because the bus side was [`CODE_QUEUE`] codes behind.
    pub dropped_codes: AtomicU64,
}

/// How many codes may wait between the source threads and the bus side.
pub const CODE_QUEUE: usize = 64;

impl Default for Shared {
    fn default() -> Self {
        Shared {
            sessions: Mutex::default(),
            next_session: Mutex::new(first_session_id()),
            sources: Mutex::default(),
            health: Mutex::default(),
            last_frame: Mutex::default(),
            recent: Mutex::default(),
            groups: Mutex::default(),
            dropped_codes: AtomicU64::new(0),
        }
    }
}

/// Where this run's session ids start: 52 random bits, so ids of two runs of the daemon do
/// not meet (a client — paymentd — may still hold an id from the last run and must not see it
/// handed to someone else), and counting up from there never wraps. Ids stay below 2^53 so a
/// client that reads them as a double (JavaScript) keeps them exact.
pub fn first_session_id() -> u64 {
    let mut b = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok();
    let seed = if random {
        u64::from_le_bytes(b)
    } else {
        // No urandom (a broken chroot): the boot-time clock in nanoseconds and the pid still
        // differ between runs.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        now ^ (u64::from(std::process::id()) << 32)
    };
    // 1 ..= 2^52: room for 2^52 sessions above it.
    (seed >> 12).max(1)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic on a source thread must not take the bus down with it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Is any session active (for any kind)? Source threads skip decoding when not.
    pub fn scanning(&self) -> bool {
        let now = Instant::now();
        lock(&self.sessions).values().any(|s| s.until > now)
    }

    pub fn set_source(&self, kind: &str, name: &str, state: &str) {
        let mut v = lock(&self.sources);
        match v.iter_mut().find(|(k, n, _)| k == kind && n == name) {
            Some(e) => state.clone_into(&mut e.2),
            None => v.push((kind.to_owned(), name.to_owned(), state.to_owned())),
        }
    }

    /// Replace the entries a multi-device source published last time with `entries`
    /// (name, state): scanners come and go.
    pub fn set_group(&self, kind: &str, group: &str, entries: Vec<(String, String)>) {
        let mut groups = lock(&self.groups);
        let mut v = lock(&self.sources);
        let old = groups.remove(group).unwrap_or_default();
        v.retain(|(k, n, _)| !(k == kind && old.contains(n)));
        let names = entries.iter().map(|(n, _)| n.clone()).collect();
        v.extend(entries.into_iter().map(|(n, s)| (kind.to_owned(), n, s)));
        groups.insert(group.to_owned(), names);
    }

    fn start(&self, timeout: Duration, kinds: Vec<String>) -> u64 {
        let mut next = lock(&self.next_session);
        *next += 1;
        let id = *next;
        lock(&self.sessions).insert(
            id,
            Session {
                until: Instant::now() + timeout,
                kinds,
            },
        );
        id
    }

    fn stop(&self, id: u64) -> bool {
        lock(&self.sessions).remove(&id).is_some()
    }

    /// Drop expired sessions; the ids dropped.
    pub fn expire(&self) -> Vec<u64> {
        let now = Instant::now();
        let mut s = lock(&self.sessions);
        let ended: Vec<u64> = s
            .iter()
            .filter(|(_, v)| v.until <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &ended {
            s.remove(id);
        }
        ended
    }

    /// The session a code of `kind` belongs to, if any (the newest that wants it), after
    /// duplicate suppression. `None` means: do not emit.
    pub fn admit(&self, code: &Scanned, window: Duration) -> Option<u64> {
        let now = Instant::now();
        let session = {
            let sessions = lock(&self.sessions);
            sessions
                .iter()
                .filter(|(_, s)| {
                    s.until > now && (s.kinds.is_empty() || s.kinds.iter().any(|k| k == code.kind))
                })
                .map(|(id, _)| *id)
                .max()?
        };
        let mut recent = lock(&self.recent);
        recent.retain(|_, t| now.duration_since(*t) < window);
        if recent.contains_key(&code.text) {
            tracing::debug!(code = %mask_code(&code.text), "duplicate within {window:?}, suppressed");
            return None;
        }
        recent.insert(code.text.clone(), now);
        Some(session)
    }
}

/// The D-Bus object.
pub struct ScannerService {
    pub shared: Arc<Shared>,
    pub operators: Policy,
    pub technicians: Policy,
    pub default_timeout_ms: u32,
    pub duplicate_window_ms: u32,
    pub has_camera: bool,
}

const KINDS: &[&str] = &["camera", "hid"];

#[interface(name = "org.smartpos.Scanner1")]
impl ScannerService {
    /// Arm the scanner; see the XML for the contract.
    #[zbus(out_args("session"))]
    async fn start_scan(
        &self,
        timeout_ms: u32,
        sources: Vec<String>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<u64, BusError> {
        self.operators.check(&hdr, conn, "start a scan").await?;
        if timeout_ms > MAX_SESSION_MS {
            return Err(fdo::Error::InvalidArgs(format!(
                "timeout_ms {timeout_ms} is longer than the {MAX_SESSION_MS} ms a session may last"
            ))
            .into());
        }
        if let Some(bad) = sources.iter().find(|s| !KINDS.contains(&s.as_str())) {
            return Err(fdo::Error::InvalidArgs(format!(
                "unknown source {bad:?}: expected \"camera\" or \"hid\""
            ))
            .into());
        }
        let ms = if timeout_ms == 0 {
            self.default_timeout_ms
        } else {
            timeout_ms
        };
        let was = self.shared.scanning();
        let id = self
            .shared
            .start(Duration::from_millis(u64::from(ms)), sources);
        tracing::info!(session = id, timeout_ms = ms, "scan session started");
        if !was {
            self.state_changed(&emitter).await?;
        }
        Ok(id)
    }

    /// End a session early.
    async fn stop_scan(
        &self,
        session: u64,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<(), BusError> {
        self.operators.check(&hdr, conn, "stop a scan").await?;
        if self.shared.stop(session) {
            tracing::info!(session, "scan session stopped");
            Self::session_ended(&emitter, session, "stopped").await?;
            if !self.shared.scanning() {
                self.state_changed(&emitter).await?;
            }
        }
        Ok(())
    }

    /// The latest frame as PNG with the codes read in it outlined.
    #[zbus(out_args("png"))]
    async fn snapshot(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<u8>, BusError> {
        self.technicians
            .check(&hdr, conn, "take a snapshot")
            .await?;
        snapshot_png(&self.shared, |image, quads| {
            smartpos_scanner::snapshot::encode_png(&image, &quads)
        })
        .await
    }

    /// Findings for the hardware and software groups (see `crate::diagnose`).
    #[zbus(out_args("findings"))]
    fn diagnose(&self) -> Vec<smartpos_bus::diagnose::Finding> {
        crate::diagnose::findings(&self.shared, self.has_camera)
    }

    #[zbus(signal)]
    pub async fn code_scanned(
        emitter: &SignalEmitter<'_>,
        text: &str,
        symbology: &str,
        source: &str,
        monotonic_us: u64,
        wall_us: i64,
        session: u64,
    ) -> zbus::Result<()>;

    /// A session ended: it timed out ("timeout") or was stopped ("stopped"). Its id is not
    /// used again, not even after a restart of the daemon.
    #[zbus(signal)]
    pub async fn session_ended(
        emitter: &SignalEmitter<'_>,
        session: u64,
        reason: &str,
    ) -> zbus::Result<()>;

    #[zbus(property)]
    pub fn version(&self) -> String {
        smartpos_runtime::VERSION.to_owned()
    }

    #[zbus(property)]
    pub fn state(&self) -> String {
        if self.shared.scanning() {
            "scanning"
        } else {
            "idle"
        }
        .to_owned()
    }

    #[zbus(property)]
    pub fn sources(&self) -> Vec<(String, String, String)> {
        lock(&self.shared.sources).clone()
    }

    #[zbus(property)]
    pub fn frames_per_second(&self) -> f64 {
        self.health(|h| h.fps).unwrap_or(0.0)
    }

    #[zbus(property)]
    pub fn decode_attempts(&self) -> u64 {
        self.health(|h| h.decode_attempts).unwrap_or(0)
    }

    #[zbus(property)]
    pub fn decode_successes(&self) -> u64 {
        self.health(|h| h.decode_successes).unwrap_or(0)
    }

    #[zbus(property)]
    pub fn brightness(&self) -> f64 {
        self.health(|h| h.last.as_ref().map(|s| f64::from(s.mean)))
            .flatten()
            .unwrap_or(0.0)
    }

    #[zbus(property)]
    pub fn contrast(&self) -> f64 {
        self.health(|h| h.last.as_ref().map(|s| f64::from(s.contrast)))
            .flatten()
            .unwrap_or(0.0)
    }

    #[zbus(property)]
    pub fn sharpness(&self) -> f64 {
        self.health(|h| h.last.as_ref().map(|s| f64::from(s.sharpness)))
            .flatten()
            .unwrap_or(0.0)
    }

    #[zbus(property)]
    pub fn verdict(&self) -> String {
        if !self.has_camera {
            return "no_camera".into();
        }
        self.health(|h| h.verdict.as_str().to_owned())
            .unwrap_or_else(|| "no_frames".into())
    }

    #[zbus(property)]
    pub fn advice(&self) -> String {
        if !self.has_camera {
            return "No camera is configured: set [camera] in /etc/smartpos/smartpos-scannerd.toml / 未配置摄像头".into();
        }
        self.health(|h| format!("{} / {}", h.instruction_en, h.instruction_zh))
            .unwrap_or_else(|| "Waiting for the first frame / 等待第一帧画面".into())
    }

    #[zbus(property)]
    pub fn duplicate_window_ms(&self) -> u32 {
        self.duplicate_window_ms
    }
}

impl ScannerService {
    fn health<T>(&self, f: impl FnOnce(&HealthSnapshot) -> T) -> Option<T> {
        lock(&self.shared.health).as_ref().map(f)
    }
}

/// The latest frame as PNG with the codes read in it outlined, made by `encode`.
///
/// The frame is copied under the lock (a memcpy the camera thread barely notices) and
/// encoded on a blocking thread with the lock released: PNG encoding of a 720p frame takes
/// tens of ms, which would otherwise stall both the camera thread (waiting for the lock) and
/// the bus runtime.
pub async fn snapshot_png<F, E>(shared: &Shared, encode: F) -> Result<Vec<u8>, BusError>
where
    F: FnOnce(LumaImage, Vec<Quad>) -> Result<Vec<u8>, E> + Send + 'static,
    E: std::fmt::Display,
{
    let (image, quads) = {
        let last = lock(&shared.last_frame);
        let Some(last) = last.as_ref() else {
            return Err(BusError::named(
                smartpos_bus::errors::UNAVAILABLE,
                "no camera frame yet: check `posctl scanner status` for the camera state",
            ));
        };
        let quads: Vec<Quad> = last.codes.iter().map(|c| c.corners).collect();
        (last.image.clone(), quads)
    };
    tokio::task::spawn_blocking(move || {
        encode(image, quads)
            .map_err(|e| fdo::Error::Failed(format!("cannot encode the snapshot: {e}")))
    })
    .await
    .map_err(|e| fdo::Error::Failed(format!("the snapshot encoder failed: {e}")))?
    .map_err(BusError::from)
}

/// Hand a code from the queue to the session it belongs to, through `emit` (the
/// `CodeScanned` signal); true if it went out. A signal that cannot be sent (the bus is
/// briefly full) is logged and is not a reason to stop scanning: the next code must still
/// reach its sale, so there is no error to return.
pub async fn deliver<F, Fut>(shared: &Shared, code: &Scanned, window: Duration, emit: F) -> bool
where
    F: FnOnce(u64) -> Fut,
    Fut: std::future::Future<Output = zbus::Result<()>>,
{
    let Some(session) = shared.admit(code, window) else {
        return false;
    };
    crate::diagnose::code_seen(code.kind, &code.symbology);
    tracing::info!(session, code = %mask_code(&code.text), symbology = %code.symbology, source = %code.source, "code scanned");
    match emit(session).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(session, "cannot emit CodeScanned: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_of_two_runs_do_not_start_at_the_same_place() {
        let (a, b) = (Shared::default(), Shared::default());
        let ida = a.start(Duration::from_secs(1), Vec::new());
        let idb = b.start(Duration::from_secs(1), Vec::new());
        assert_ne!(ida, idb);
        assert!(ida > 1 && idb > 1, "{ida} {idb}");
        assert!(ida < 1 << 53 && idb < 1 << 53);
        // Within a run, the newer session has the larger id (admit picks the newest).
        assert!(a.start(Duration::from_secs(1), Vec::new()) > ida);
    }

    #[test]
    fn an_expired_session_is_reported_once() {
        let s = Shared::default();
        let id = s.start(Duration::ZERO, Vec::new());
        assert_eq!(s.expire(), vec![id]);
        assert!(s.expire().is_empty());
    }

    fn scanned(text: &str) -> Scanned {
        Scanned {
            text: text.to_owned(),
            symbology: "qrcode".to_owned(),
            kind: "camera",
            source: "camera:/dev/video0".to_owned(),
            monotonic_us: 0,
            wall_us: 0,
        }
    }

    fn frame(shade: u8) -> LastFrame {
        LastFrame {
            image: LumaImage {
                width: 4,
                height: 2,
                data: vec![shade; 8],
            },
            codes: Vec::new(),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_technicians_snapshot_leaves_the_camera_streaming_while_it_is_encoded() {
        // A technician takes a snapshot while the camera streams. Encoding a frame is slow;
        // meanwhile the camera thread must be able to publish its next frame, and the bus
        // thread must stay free to answer others. So the encoder runs off the bus thread with
        // the frame lock released, and the picture is the frame of the moment of the call.
        let shared = Arc::new(Shared::default());
        *lock(&shared.last_frame) = Some(frame(0));
        let bus_thread = std::thread::current().id();
        let camera = shared.clone();
        let picture = snapshot_png(&shared, move |image, _quads| {
            if std::thread::current().id() == bus_thread {
                return Err("encoded on the bus thread");
            }
            // The camera thread publishes a new frame in the middle of the encode.
            let Ok(mut last) = camera.last_frame.try_lock() else {
                return Err("the frame lock is held while the snapshot is encoded");
            };
            *last = Some(frame(255));
            Ok(image.data)
        })
        .await
        .expect("the snapshot");
        assert_eq!(picture, vec![0; 8]);
        let newest = lock(&shared.last_frame)
            .as_ref()
            .map(|f| f.image.data.clone());
        assert_eq!(newest, Some(vec![255; 8]));

        // And the real encoder makes a PNG of it.
        let png = snapshot_png(&shared, |image, quads| {
            smartpos_scanner::snapshot::encode_png(&image, &quads)
        })
        .await
        .expect("a PNG");
        assert!(
            png.starts_with(b"\x89PNG"),
            "{:?}",
            &png[..8.min(png.len())]
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_code_the_bus_would_not_take_does_not_stop_the_next_customers_code() {
        // A cashier's story: the bus refuses one CodeScanned signal (it is full for a
        // moment). The cashier asks the customer to show the code again, and that scan
        // reaches the sale: scannerd did not stop relaying codes on the failure.
        let shared = Shared::default();
        let session = shared.start(Duration::from_secs(60), Vec::new());
        let (tx, mut rx) = tokio::sync::mpsc::channel(CODE_QUEUE);
        for text in ["281234567890123456", "281234567890654321"] {
            tx.send(scanned(text)).await.expect("queued");
        }
        drop(tx);
        let refuse_next = std::cell::Cell::new(true);
        let sent = std::cell::RefCell::new(Vec::new());
        let mut outcomes = Vec::new();
        while let Some(code) = rx.recv().await {
            let delivered = deliver(&shared, &code, Duration::from_secs(2), |s| {
                let r = if refuse_next.replace(false) {
                    Err(zbus::Error::Failure("the bus is full".into()))
                } else {
                    sent.borrow_mut().push((s, code.text.clone()));
                    Ok(())
                };
                std::future::ready(r)
            })
            .await;
            outcomes.push(delivered);
        }
        assert_eq!(outcomes, vec![false, true]);
        assert_eq!(
            sent.into_inner(),
            vec![(session, "281234567890654321".to_owned())]
        );
    }
}
