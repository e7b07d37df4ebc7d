//! Recorded evdev streams in the evemu-record text format, played back as a scanner.
//!
//! An event line is `E: <sec>.<usec> <type hex> <code hex> <value decimal>`, optionally followed
//! by a `#` comment; `#`, `N:`, `I:`, `P:`, `B:`, `A:` and `L:` lines describe the device and are
//! skipped. `evemu-record /dev/input/eventN > scan.evemu` on a terminal captures a real scanner;
//! [`EvemuWriter`] writes the same format so tests and the demo can make recordings.

use std::io::{self, Write};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::keymap::code;
use crate::{KeyEvent, KeySource, SourceError};

/// One `E:` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedEvent {
    pub time: Duration,
    pub kind: u16,
    pub code: u16,
    pub value: i32,
}

/// Why a recording could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EvemuError {
    /// The file could not be read.
    #[error("cannot read recording {path}: {source}; check the path")]
    Io { path: String, source: io::Error },
    /// A line that is neither a known header nor an `E:` event.
    #[error("recording line {line}: {what}; re-record it with evemu-record or EvemuWriter")]
    Syntax { line: usize, what: String },
}

/// Parse an evemu-record text into its events, in file order.
pub fn parse(text: &str) -> Result<Vec<RecordedEvent>, EvemuError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let bad = |what: &str| EvemuError::Syntax {
            line: i + 1,
            what: format!("{what} in {line:?}"),
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix("E:") else {
            if ["N:", "I:", "P:", "B:", "A:", "L:", "S:"]
                .iter()
                .any(|p| line.starts_with(p))
            {
                continue;
            }
            return Err(bad("unknown line kind"));
        };
        let fields = rest.split('#').next().unwrap_or("");
        let mut it = fields.split_whitespace();
        let (Some(t), Some(ty), Some(cd), Some(v)) = (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(bad("an event needs time, type, code and value"));
        };
        let time = parse_time(t).ok_or_else(|| bad("bad timestamp"))?;
        let kind = u16::from_str_radix(ty, 16).map_err(|_| bad("bad event type"))?;
        let code = u16::from_str_radix(cd, 16).map_err(|_| bad("bad event code"))?;
        let value = v.parse::<i32>().map_err(|_| bad("bad value"))?;
        out.push(RecordedEvent {
            time,
            kind,
            code,
            value,
        });
    }
    Ok(out)
}

/// `12.000345` → 12 s 345 µs. The fraction is microseconds, always six digits in evemu.
fn parse_time(t: &str) -> Option<Duration> {
    let (s, us) = t.split_once('.').unwrap_or((t, "0"));
    let secs: u64 = s.parse().ok()?;
    if us.is_empty() || us.len() > 9 || !us.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Scale whatever precision is written to nanoseconds.
    let nanos: u32 = format!("{us:0<9}").parse().ok()?;
    Some(Duration::new(secs, nanos))
}

/// Writes the evemu-record text format.
#[derive(Debug)]
pub struct EvemuWriter<W: Write> {
    out: W,
}

impl<W: Write> EvemuWriter<W> {
    /// Starts the file with a header describing a USB keyboard-wedge scanner called `name`.
    pub fn new(mut out: W, name: &str, vendor: u16, product: u16) -> io::Result<Self> {
        writeln!(out, "# EVEMU 1.3")?;
        writeln!(out, "# Input device name: \"{name}\"")?;
        writeln!(out, "N: {name}")?;
        writeln!(out, "I: 0003 {vendor:04x} {product:04x} 0110")?;
        Ok(EvemuWriter { out })
    }

    /// One event line.
    pub fn event(&mut self, ev: RecordedEvent) -> io::Result<()> {
        write!(
            self.out,
            "E: {}.{:06} {:04x} {:04x} {:04}",
            ev.time.as_secs(),
            ev.time.subsec_micros(),
            ev.kind,
            ev.code,
            ev.value
        )?;
        if ev.kind == code::EV_SYN {
            writeln!(self.out, "\t# ------------ SYN_REPORT (0) ----------")
        } else {
            writeln!(self.out)
        }
    }

    /// A key event followed by its SYN_REPORT, as the kernel delivers them.
    pub fn key(&mut self, k: KeyEvent) -> io::Result<()> {
        self.event(RecordedEvent {
            time: k.time,
            kind: code::EV_KEY,
            code: k.code,
            value: k.value,
        })?;
        self.event(RecordedEvent {
            time: k.time,
            kind: code::EV_SYN,
            code: 0,
            value: 0,
        })
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A recording of a US-layout scanner typing `text` (and Enter, if `enter`), one key every
/// `key_interval`, as evemu text.
pub fn record_typed_code(text: &str, key_interval: Duration, enter: bool) -> String {
    let mut w = EvemuWriter::new(Vec::new(), "smartpos recorded scanner", 0x1eab, 0x0d10)
        .expect("writing to a Vec cannot fail");
    for k in super::wedge::type_text(text, Duration::from_micros(1), key_interval, enter) {
        w.key(k).expect("writing to a Vec cannot fail");
    }
    String::from_utf8(w.finish().expect("writing to a Vec cannot fail"))
        .expect("the writer writes ASCII")
}

/// Plays a recording as a [`KeySource`], keeping its timing (scaled by `speed`).
///
/// The playback clock starts at the first call to `next_key`. [`KeySource::now`] and every
/// event's time are on the recording's own clock, so the wedge timeout behaves exactly as it
/// did when the recording was made, whatever the speed.
#[derive(Debug)]
pub struct RecordedKeySource {
    name: String,
    events: Vec<KeyEvent>,
    next: usize,
    speed: f64,
    started: Option<Instant>,
    looping: bool,
    loop_offset: Duration,
}

impl RecordedKeySource {
    /// `speed` 1.0 is real time, 10.0 is ten times faster. Non-positive or non-finite speeds
    /// are taken as 1.0.
    pub fn from_text(name: impl Into<String>, text: &str, speed: f64) -> Result<Self, EvemuError> {
        let events: Vec<KeyEvent> = parse(text)?
            .into_iter()
            .filter(|e| e.kind == code::EV_KEY)
            .map(|e| KeyEvent {
                code: e.code,
                value: e.value,
                time: e.time,
            })
            .collect();
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Ok(RecordedKeySource {
            name: name.into(),
            events,
            next: 0,
            speed,
            started: None,
            looping: false,
            loop_offset: Duration::ZERO,
        })
    }

    pub fn open(path: &Path, speed: f64) -> Result<Self, EvemuError> {
        let text = std::fs::read_to_string(path).map_err(|source| EvemuError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_text(path.display().to_string(), &text, speed)
    }

    /// Start again from the beginning when the recording ends (for the demo), one second later.
    pub fn looping(mut self, yes: bool) -> Self {
        self.looping = yes;
        self
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    fn origin(&self) -> Duration {
        self.events.first().map(|e| e.time).unwrap_or_default()
    }

    /// Position on the recording's clock.
    fn position(&self) -> Duration {
        let elapsed = self.started.map(|s| s.elapsed()).unwrap_or_default();
        self.origin() + elapsed.mul_f64(self.speed)
    }
}

impl KeySource for RecordedKeySource {
    fn name(&self) -> &str {
        &self.name
    }

    fn next_key(&mut self, timeout: Duration) -> Result<KeyEvent, SourceError> {
        self.started.get_or_insert_with(Instant::now);
        if self.next >= self.events.len() {
            if !self.looping || self.events.is_empty() {
                return Err(SourceError::EndOfStream);
            }
            let span = self.events.last().map(|e| e.time).unwrap_or_default() - self.origin();
            self.loop_offset += span + Duration::from_secs(1);
            self.next = 0;
        }
        let mut ev = self.events[self.next];
        ev.time += self.loop_offset;
        let now = self.position();
        if ev.time > now {
            let wait = (ev.time - now).div_f64(self.speed);
            if wait > timeout {
                thread::sleep(timeout);
                return Err(SourceError::Timeout(timeout));
            }
            thread::sleep(wait);
        }
        self.next += 1;
        Ok(ev)
    }

    fn now(&self) -> Duration {
        self.position()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hid::{CodeSource, EndedBy, WedgeReader, wedge::WedgeConfig};

    const REAL_RECORDING: &str = "\
# EVEMU 1.3
# Kernel: 6.1.0
# Input device name: \"Newland NLS-HR22 Scanner\"
# Input device ID: bus 0x03 vendor 0x1eab product 0x1a03 version 0x110
N: Newland NLS-HR22 Scanner
I: 0003 1eab 1a03 0110
P: 00 00 00 00 00 00 00 00
B: 00 0b 00 00 00 00 00 00 00
B: 01 fe ff ff ff ff ff ff ff
A: 00 0 255 0 0 0
L: 00 00
################################
#      Waiting for events      #
################################
E: 0.000001 0004 0004 458783	# EV_MSC / MSC_SCAN             458783
E: 0.000001 0001 0003 0001	# EV_KEY / KEY_2                1
E: 0.000001 0000 0000 0000	# ------------ SYN_REPORT (0) ---------- +0ms
E: 0.004012 0001 0003 0000	# EV_KEY / KEY_2                0
E: 0.004012 0000 0000 0000	# ------------ SYN_REPORT (0) ---------- +4ms
E: 0.008020 0001 0009 0001	# EV_KEY / KEY_8                1
E: 0.012031 0001 0009 0000	# EV_KEY / KEY_8                0
E: 0.016040 0001 001c 0001	# EV_KEY / KEY_ENTER            1
E: 0.020050 0001 001c 0000	# EV_KEY / KEY_ENTER            0
";

    #[test]
    fn a_real_evemu_recording_parses_and_skips_the_device_description() {
        let events = parse(REAL_RECORDING).unwrap();
        assert_eq!(events.len(), 9);
        assert_eq!(
            events[0],
            RecordedEvent {
                time: Duration::from_micros(1),
                kind: 4,
                code: 4,
                value: 458783
            }
        );
        assert_eq!(
            events[1],
            RecordedEvent {
                time: Duration::from_micros(1),
                kind: 1,
                code: 3,
                value: 1
            }
        );
        assert_eq!(events[8].time, Duration::from_micros(20050));
    }

    #[test]
    fn garbage_lines_are_named_by_number() {
        let err = parse("N: x\nE: 0.1 0001\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(parse("Q: what\n").is_err());
        assert!(parse("E: 0.x 0001 0002 1\n").is_err());
    }

    #[test]
    fn negative_values_and_short_fractions_parse() {
        let ev = parse("E: 3.5 0002 0000 -001\n").unwrap();
        assert_eq!(ev[0].time, Duration::from_millis(3500));
        assert_eq!(ev[0].value, -1);
    }

    #[test]
    fn the_writer_output_reads_back_as_the_same_keys() {
        let text = record_typed_code("Ab1:/?&=.-_%", Duration::from_millis(4), true);
        assert!(text.starts_with("# EVEMU 1.3\n"));
        assert!(
            text.contains("E: 0.000001 0001 002a 0001"),
            "shift pressed first for 'A':\n{text}"
        );
        let mut src = RecordedKeySource::from_text("rec", &text, 1000.0).unwrap();
        let mut seen = Vec::new();
        while let Ok(k) = src.next_key(Duration::from_secs(1)) {
            seen.push(k);
        }
        let expected = super::super::wedge::type_text(
            "Ab1:/?&=.-_%",
            Duration::from_micros(1),
            Duration::from_millis(4),
            true,
        );
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_recorded_scan_plays_back_as_a_code_at_recorded_speed() {
        let text = record_typed_code("286912345678901234", Duration::from_millis(3), true);
        let src = RecordedKeySource::from_text("recorded", &text, 1.0).unwrap();
        let mut reader = WedgeReader::new(src, WedgeConfig::default());
        let t0 = Instant::now();
        let code = reader.next_code(Duration::from_secs(2)).unwrap();
        let took = t0.elapsed();
        assert_eq!(code.text, "286912345678901234");
        // 19 keys, 3 ms apart: the playback took the recorded ~54 ms, not zero.
        assert!(
            took >= Duration::from_millis(50),
            "played too fast: {took:?}"
        );
        assert!(
            took < Duration::from_millis(1000),
            "played too slow: {took:?}"
        );
        assert!(matches!(
            reader.next_code(Duration::from_millis(100)),
            Err(SourceError::EndOfStream)
        ));
    }

    #[test]
    fn speeding_up_playback_keeps_the_inter_key_gaps_on_the_recorded_clock() {
        // Keys 30 ms apart, no Enter: at 20x speed they arrive 1.5 ms apart, but the wedge
        // still sees 30 ms gaps, so nothing is split and the code ends at the end of the stream.
        let text = record_typed_code("130000111122223333", Duration::from_millis(30), false);
        let src = RecordedKeySource::from_text("fast", &text, 20.0).unwrap();
        let mut reader = WedgeReader::new(src, WedgeConfig::default());
        let code = reader.next_code(Duration::from_secs(2)).unwrap();
        assert_eq!(code.text, "130000111122223333");
    }

    #[test]
    fn a_looping_demo_recording_scans_the_code_again_and_again() {
        let text = record_typed_code("281111222233334444", Duration::from_millis(1), true);
        // Fast, so the one-second pause between loops takes 10 ms.
        let src = RecordedKeySource::from_text("demo", &text, 100.0)
            .unwrap()
            .looping(true);
        let mut reader = WedgeReader::new(src, WedgeConfig::default());
        for _ in 0..3 {
            let code = reader.next_code(Duration::from_secs(2)).unwrap();
            assert_eq!(code.text, "281111222233334444");
            assert_eq!(code.ended_by, EndedBy::Enter);
        }
    }

    #[test]
    fn waiting_less_than_the_next_key_is_a_timeout() {
        let text = "E: 0.000000 0001 0002 0001\nE: 5.000000 0001 0002 0000\n";
        let mut src = RecordedKeySource::from_text("slow", text, 1.0).unwrap();
        assert!(src.next_key(Duration::from_millis(10)).is_ok());
        assert!(matches!(
            src.next_key(Duration::from_millis(10)),
            Err(SourceError::Timeout(_))
        ));
    }
}
