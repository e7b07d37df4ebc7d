//! Network faults on demand, for tests and the demo (never shipped in the image).
//!
//! [`FaultProxy`] listens on a loopback port and relays each connection to an upstream
//! loopback address, doing to it what its current [`Settings`] say: add latency, cap the
//! bandwidth, refuse connections (the listening socket is closed, so the kernel answers with
//! a reset), accept and drop them at once, swallow them (a black hole: accepted, never
//! answered), or reset the connection after so many bytes of the answer (a response cut off
//! in the middle). It counts the connections it accepted, which shows whether a client
//! reused one. The settings change at any time, from the test ([`FaultProxy::set`]) or over
//! the control socket in the control language ([`FaultProxy::command`], see the crate
//! README).
//!
//! [`certs`] makes TLS servers whose certificate is expired, for another name, from another
//! CA, or valid only for a realistic year (for clock tests).

pub mod certs;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

/// What happens to connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Relay (with the latency and bandwidth settings).
    Pass,
    /// The endpoint is down: the port is closed (connecting gets "connection refused") and
    /// the connections open when it went down are closed.
    Refuse,
    /// Accept, then close at once, before anything is relayed.
    Drop,
    /// Accept, read and discard everything, never answer.
    BlackHole,
    /// Relay, but reset the connection once this many bytes went from upstream to client:
    /// counted from its start for a connection accepted in this mode, from the moment the
    /// mode was set for one already open (so a kept-alive connection's next answer is cut).
    ResetAfter(u64),
}

/// The proxy's settings; changed as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub mode: Mode,
    /// Added before each chunk is passed on, in both directions.
    pub latency: Duration,
    /// Bytes per second in each direction; `None` is unlimited.
    pub bandwidth: Option<u64>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            mode: Mode::Pass,
            latency: Duration::ZERO,
            bandwidth: None,
        }
    }
}

/// The proxy cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("refusing {0}: the fault proxy only uses loopback addresses")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("control socket {path}: {source}")]
    Control {
        path: String,
        source: std::io::Error,
    },
}

struct Shared {
    upstream: SocketAddr,
    settings: watch::Sender<Settings>,
    accepted: AtomicU64,
    open: AtomicU64,
    live: Mutex<Vec<AbortHandle>>,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("settings", &*self.shared.settings.borrow())
            .finish_non_exhaustive()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.drop_all();
    }
}

/// Counts a live relayed connection for as long as it exists.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl FaultProxy {
    /// Listen on `listen` (port 0 for any) and relay to `upstream`; both loopback.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> Result<FaultProxy, ProxyError> {
        for a in [listen, upstream] {
            if !a.ip().is_loopback() {
                return Err(ProxyError::NotLoopback(a));
            }
        }
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ProxyError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: listen,
            source,
        })?;
        let (settings, _) = watch::channel(Settings::default());
        let shared = Arc::new(Shared {
            upstream,
            settings,
            accepted: AtomicU64::new(0),
            open: AtomicU64::new(0),
            live: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(accept_loop(shared.clone(), addr, listener));
        Ok(FaultProxy { shared, addr, task })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn settings(&self) -> Settings {
        *self.shared.settings.borrow()
    }

    pub fn set(&self, settings: Settings) {
        self.shared.settings.send_replace(settings);
        if settings.mode == Mode::Refuse {
            self.drop_all();
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.set(Settings {
            mode,
            ..self.settings()
        });
    }

    /// Connections accepted since the start (dropped and swallowed ones included).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Connections open right now.
    pub fn open(&self) -> u64 {
        self.shared.open.load(Ordering::Relaxed)
    }

    /// Close every open connection now (the clients see them closed).
    pub fn drop_all(&self) {
        let live = std::mem::take(&mut *self.shared.live.lock().unwrap_or_else(|p| p.into_inner()));
        for handle in live {
            handle.abort();
        }
    }

    /// Run one line of the control language; the answer is one line.
    ///
    /// `status` · `pass` · `refuse` · `drop` · `blackhole` · `reset-after BYTES` ·
    /// `latency MS` · `bandwidth BYTES_PER_S|off` · `drop-all`. Every command but `status`
    /// answers `ok` and then the status.
    pub fn command(&self, line: &str) -> Result<String, String> {
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or("");
        let arg = words.next();
        let number = |what: &str| -> Result<u64, String> {
            arg.and_then(|a| a.parse::<u64>().ok())
                .ok_or_else(|| format!("{verb} needs {what}"))
        };
        match verb {
            "status" => return Ok(self.status()),
            "pass" => self.set_mode(Mode::Pass),
            "refuse" => self.set_mode(Mode::Refuse),
            "drop" => self.set_mode(Mode::Drop),
            "blackhole" => self.set_mode(Mode::BlackHole),
            "reset-after" => self.set_mode(Mode::ResetAfter(number("a byte count")?)),
            "latency" => {
                let ms = number("milliseconds")?;
                self.shared
                    .settings
                    .send_modify(|s| s.latency = Duration::from_millis(ms));
            }
            "bandwidth" => {
                let cap = match arg {
                    Some("off") => None,
                    _ => Some(number("bytes per second or off")?.max(1)),
                };
                self.shared.settings.send_modify(|s| s.bandwidth = cap);
            }
            "drop-all" => self.drop_all(),
            "" => return Err("empty command".into()),
            other => return Err(format!("unknown command {other:?}")),
        }
        Ok(format!("ok {}", self.status()))
    }

    /// `mode=pass latency_ms=0 bandwidth=off accepted=3 open=1 listen=… upstream=…`
    pub fn status(&self) -> String {
        let s = self.settings();
        let mode = match s.mode {
            Mode::Pass => "pass".to_owned(),
            Mode::Refuse => "refuse".to_owned(),
            Mode::Drop => "drop".to_owned(),
            Mode::BlackHole => "blackhole".to_owned(),
            Mode::ResetAfter(n) => format!("reset-after:{n}"),
        };
        format!(
            "mode={mode} latency_ms={} bandwidth={} accepted={} open={} listen={} upstream={}",
            s.latency.as_millis(),
            s.bandwidth.map_or("off".to_owned(), |b| b.to_string()),
            self.accepted(),
            self.open(),
            self.addr,
            self.shared.upstream
        )
    }

    /// Serve the control language on a Unix socket at `path` (mode 0600): one command per
    /// line, one answer line each (`ok …`, a status, or `error: …`). Runs until the proxy
    /// is dropped.
    pub fn serve_control(self: &Arc<Self>, path: &Path) -> Result<JoinHandle<()>, ProxyError> {
        let err = |source| ProxyError::Control {
            path: path.display().to_string(),
            source,
        };
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(err)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        }
        let proxy = Arc::downgrade(self);
        Ok(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let proxy = proxy.clone();
                tokio::spawn(async move {
                    use tokio::io::AsyncBufReadExt;
                    let (read, mut write) = stream.into_split();
                    let mut lines = tokio::io::BufReader::new(read).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let Some(proxy) = proxy.upgrade() else { return };
                        let answer = match proxy.command(&line) {
                            Ok(s) => s,
                            Err(e) => format!("error: {e}"),
                        };
                        tracing::info!(command = %line.trim(), %answer, "control");
                        if write
                            .write_all(format!("{answer}\n").as_bytes())
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        }))
    }
}

async fn accept_loop(shared: Arc<Shared>, addr: SocketAddr, listener: TcpListener) {
    let mut settings = shared.settings.subscribe();
    let mut listener = Some(listener);
    loop {
        let mode = settings.borrow_and_update().mode;
        if mode == Mode::Refuse {
            // Closing the listening socket makes the kernel refuse new connections.
            listener = None;
            if settings.changed().await.is_err() {
                return;
            }
            continue;
        }
        let current = match &listener {
            Some(l) => l,
            None => match TcpListener::bind(addr).await {
                Ok(l) => listener.insert(l),
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "cannot listen again; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let accepted = tokio::select! {
            a = current.accept() => a,
            changed = settings.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        let Ok((client, _peer)) = accepted else {
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        shared.open.fetch_add(1, Ordering::Relaxed);
        let guard = OpenGuard(shared.clone());
        let task = tokio::spawn(handle(shared.clone(), client, mode, guard));
        let mut live = shared.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|h| !h.is_finished());
        live.push(task.abort_handle());
    }
}

async fn handle(shared: Arc<Shared>, client: TcpStream, mode: Mode, _open: OpenGuard) {
    match mode {
        Mode::Refuse | Mode::Drop => drop(client),
        Mode::BlackHole => {
            let mut client = client;
            let mut sink = [0u8; 4096];
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
        }
        Mode::Pass | Mode::ResetAfter(_) => {
            let Ok(upstream) = TcpStream::connect(shared.upstream).await else {
                return;
            };
            let _ = upstream.set_nodelay(true);
            let _ = client.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (ur, uw) = upstream.into_split();
            let settings = shared.settings.subscribe();
            tokio::select! {
                _ = pump(cr, uw, settings.clone(), None) => {}
                _ = pump(ur, cw, settings, Some(mode)) => {}
            }
        }
    }
}

/// Copy one direction chunk by chunk, applying latency and bandwidth. The direction towards
/// the client (`accepted_in` is the mode its connection was accepted in) also applies
/// [`Mode::ResetAfter`]: once the limit is reached it resets the client's connection.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    settings: watch::Receiver<Settings>,
    accepted_in: Option<Mode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut passed: u64 = 0;
    // The reset mode in force and the byte count it counts from.
    let mut armed: Option<(Mode, u64)> = match accepted_in {
        Some(m @ Mode::ResetAfter(_)) => Some((m, 0)),
        _ => None,
    };
    loop {
        let s = *settings.borrow();
        // Small reads under a cap, so the rate is smooth rather than bursty.
        let want = match s.bandwidth {
            Some(b) => usize::try_from((b / 10).clamp(1, buf.len() as u64)).unwrap_or(1),
            None => buf.len(),
        };
        let n = match from.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // The settings as they are now: the mode may have changed while the read waited.
        let s = *settings.borrow();
        let limit = match (accepted_in, s.mode) {
            (Some(_), m @ Mode::ResetAfter(n)) => {
                let base = match armed {
                    Some((a, base)) if a == m => base,
                    _ => passed,
                };
                armed = Some((m, base));
                Some(base + n)
            }
            _ => {
                armed = None;
                None
            }
        };
        let take = match limit {
            Some(l) => n.min(usize::try_from(l.saturating_sub(passed)).unwrap_or(usize::MAX)),
            None => n,
        };
        if !s.latency.is_zero() {
            tokio::time::sleep(s.latency).await;
        }
        if let Some(b) = s.bandwidth {
            tokio::time::sleep(Duration::from_secs_f64(take as f64 / b as f64)).await;
        }
        if to.write_all(&buf[..take]).await.is_err() {
            return;
        }
        passed += take as u64;
        if limit.is_some_and(|l| passed >= l) {
            reset(to);
            return;
        }
    }
}

/// Close the client's connection with a reset (RST) rather than a clean close (FIN): a zero
/// linger, and no shutdown of the write half.
fn reset(to: tokio::net::tcp::OwnedWriteHalf) {
    let _ = to.as_ref().set_zero_linger();
    to.forget();
}
