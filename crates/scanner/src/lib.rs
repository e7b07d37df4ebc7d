//! smartpos scanning: frames come in from a camera (V4L2), a replay folder or a test,
//! key events come in from a keyboard-wedge scanner (evdev) or a recording, and payment
//! codes come out.
//!
//! Data flows one way: [`FrameSource`] → [`Frame`] → luma → decoder → codes, and
//! [`KeySource`] → key events → wedge assembler → codes.

pub mod decode;
pub mod frame;
pub mod imagefile;
// capture, replay, HID, health
pub mod capture;
pub mod health;
pub mod hid;
pub mod keymap;
pub mod replay;
pub mod snapshot;

pub use frame::{Frame, FrameError, LumaImage, PixelFormat};

use std::time::Duration;

/// Why a source could not deliver.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The device went away (unplugged); the caller should reopen with backoff.
    #[error("device gone: {0}")]
    Gone(String),
    /// No frame or event arrived within the wait; the device may have stalled.
    #[error("no data within {0:?}")]
    Timeout(Duration),
    /// A replay source has played everything it has (and does not loop).
    #[error("end of stream")]
    EndOfStream,
    /// Anything else, with what to do about it.
    #[error("{0}")]
    Other(String),
}

/// Something that produces camera frames: a V4L2 device, a replay folder, a test.
///
/// Blocking by design: capture runs on its own thread, never on the bus thread.
pub trait FrameSource: Send {
    /// A short human name: device path, card name or replay folder.
    fn name(&self) -> &str;
    /// Wait at most `timeout` for the next frame.
    fn next_frame(&mut self, timeout: Duration) -> Result<Frame, SourceError>;
}

/// One key event as evdev reports it (`EV_KEY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEvent {
    /// Linux input key code (`KEY_A` = 30, `KEY_ENTER` = 28, …).
    pub code: u16,
    /// 0 = release, 1 = press, 2 = autorepeat.
    pub value: i32,
    /// The event's own timestamp, on its source's clock ([`KeySource::now`]): CLOCK_REALTIME
    /// since the Unix epoch for evdev devices, the recording's clock for a recording.
    pub time: Duration,
}

/// Something that produces key events: an evdev keyboard-wedge scanner or a recording.
pub trait KeySource: Send {
    /// A short human name: device path and name, or the recording file.
    fn name(&self) -> &str;
    /// Wait at most `timeout` for the next key event.
    fn next_key(&mut self, timeout: Duration) -> Result<KeyEvent, SourceError>;
    /// The current time on the clock of [`KeyEvent::time`], so that an inter-key timeout can
    /// be judged while no key comes. Defaults to CLOCK_REALTIME, which evdev stamps events with.
    fn now(&self) -> Duration {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    }
}
