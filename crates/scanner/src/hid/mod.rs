//! Keyboard-wedge (HID) scanners: key events in, codes out.
//!
//! - [`wedge`]: the pure state machine that turns key events into codes.
//! - [`evemu`]: recorded evdev streams (evemu-record text) played back as a scanner.
//! - [`device`]: real scanners through evdev, grabbed, several at once, with hotplug.
//!
//! Both [`WedgeReader`] (any [`KeySource`], e.g. a recording) and [`device::HidScanners`]
//! implement [`CodeSource`], so the daemon reads codes the same way from either.

pub mod device;
pub mod evemu;
pub mod wedge;

pub use device::{HidConfig, HidDeviceInfo, HidMatch, HidScanners, HidStatusHandle};
pub use evemu::{EvemuWriter, RecordedKeySource, record_typed_code};
pub use wedge::{EndedBy, WedgeAssembler, WedgeCode, WedgeConfig, WedgeCounters};

use std::time::{Duration, Instant};

use crate::{KeySource, SourceError};

/// Something that yields whole scanned codes. Blocking, like the other sources.
pub trait CodeSource: Send {
    fn name(&self) -> &str;
    /// Wait at most `timeout` for the next code.
    fn next_code(&mut self, timeout: Duration) -> Result<WedgeCode, SourceError>;
}

/// Reads one [`KeySource`] through a [`WedgeAssembler`].
#[derive(Debug)]
pub struct WedgeReader<K: KeySource> {
    source: K,
    assembler: WedgeAssembler,
}

impl<K: KeySource> WedgeReader<K> {
    pub fn new(source: K, config: WedgeConfig) -> Self {
        let assembler = WedgeAssembler::new(config, source.name().to_string());
        WedgeReader { source, assembler }
    }

    pub fn counters(&self) -> WedgeCounters {
        self.assembler.counters()
    }

    pub fn into_inner(self) -> K {
        self.source
    }
}

impl<K: KeySource> CodeSource for WedgeReader<K> {
    fn name(&self) -> &str {
        self.source.name()
    }

    fn next_code(&mut self, timeout: Duration) -> Result<WedgeCode, SourceError> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(SourceError::Timeout(timeout));
            }
            let mut wait = deadline - now;
            // Wake up in time to end a pending code by timeout.
            if let Some(d) = self.assembler.deadline() {
                wait = wait.min(d.saturating_sub(self.source.now()) + Duration::from_millis(1));
            }
            match self.source.next_key(wait) {
                Ok(ev) => {
                    if let Some(code) = self.assembler.feed(ev) {
                        return Ok(code);
                    }
                }
                Err(SourceError::Timeout(_)) => {
                    if let Some(code) = self.assembler.poll_idle(self.source.now()) {
                        return Ok(code);
                    }
                }
                Err(SourceError::EndOfStream) => {
                    return self.assembler.finish().ok_or(SourceError::EndOfStream);
                }
                Err(e) => return Err(e),
            }
        }
    }
}
