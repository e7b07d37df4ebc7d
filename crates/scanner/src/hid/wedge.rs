//! Key events → scanned codes: the keyboard-wedge state machine, with no I/O in it.
//!
//! # When a code ends
//!
//! * **Enter** (`KEY_ENTER` or `KEY_KPENTER`) ends a code, whatever its length. This is how
//!   nearly every scanner is configured out of the box, and a lone Enter (empty buffer) is
//!   ignored.
//! * **A gap longer than `inter_key_timeout`** (50 ms by default) also ends it. A scanner types
//!   a whole code in one burst, a few ms per key; a longer pause means the burst is over. This
//!   is the only terminator for scanners configured without a suffix. Such a code is emitted
//!   only if it has at least `min_len_on_timeout` characters (6 by default): a shorter burst is
//!   far more likely a half-read or a stray key than a code, and every payment code is longer
//!   (18 digits and up). Set it to 0 to drop every unterminated burst, for scanners that are
//!   known to send Enter.
//!   The gap is measured on the events' kernel timestamps, taken when the USB report arrives,
//!   so a busy terminal does not split codes. (Events injected through uinput are stamped when
//!   the injecting thread writes them; tests that inject under load need a longer timeout.)
//!   Those timestamps are CLOCK_REALTIME; a clock step either way also counts as a gap.
//! * More than `max_len` characters without a terminator means a stuck key or a device that
//!   is not a scanner: the buffer is dropped and the rest up to the next terminator ignored.
//!
//! Modifiers are tracked from press and release (Shift, Caps Lock, Ctrl for GS1 separators,
//! Alt+keypad digits for scanners that type every character as an Alt code — the number is a
//! Unicode code point, which equals ASCII for everything a payment code contains).
//! Autorepeat events (value 2) are ignored: a scanner never holds a key.

use std::fmt;
use std::time::Duration;

use crate::KeyEvent;
use crate::keymap::{self, code};

/// How a code was recognised as complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EndedBy {
    Enter,
    Timeout,
}

/// One code typed by a scanner.
#[derive(Clone, PartialEq, Eq)]
pub struct WedgeCode {
    /// What the scanner typed, without the terminator.
    pub text: String,
    pub ended_by: EndedBy,
    /// Time of the first and last key of the code, on the key source's clock.
    pub first_key: Duration,
    pub last_key: Duration,
    /// Which device typed it.
    pub source: String,
}

// Payment codes are bearer tokens: Debug (and thus every log line) shows a masked form.
impl fmt::Debug for WedgeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WedgeCode")
            .field("text", &mask_code(&self.text))
            .field("len", &self.text.chars().count())
            .field("ended_by", &self.ended_by)
            .field("source", &self.source)
            .finish()
    }
}

/// Keep the first 2 and last 4 characters of a code (the one rule, from `smartpos-text`).
pub use smartpos_text::mask_code;

/// Tuning of [`WedgeAssembler`]; see the module docs for what each value decides.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct WedgeConfig {
    #[serde(with = "millis")]
    pub inter_key_timeout: Duration,
    pub min_len_on_timeout: usize,
    pub max_len: usize,
}

impl Default for WedgeConfig {
    fn default() -> Self {
        WedgeConfig {
            inter_key_timeout: Duration::from_millis(50),
            min_len_on_timeout: 6,
            max_len: 4096,
        }
    }
}

mod millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms: u64 = serde::Deserialize::deserialize(d)?;
        Ok(Duration::from_millis(ms))
    }
}

/// What the assembler has thrown away, for the daemon's diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WedgeCounters {
    pub codes: u64,
    /// Bursts that ended by timeout too short to be a code.
    pub fragments_dropped: u64,
    /// Bursts longer than `max_len`.
    pub overflows: u64,
    /// Key presses that type nothing we know (function keys, …).
    pub unmapped_keys: u64,
}

/// The per-device state machine: feed it key events, get codes out.
#[derive(Debug, Clone)]
pub struct WedgeAssembler {
    config: WedgeConfig,
    source: String,
    buffer: String,
    first_key: Option<Duration>,
    last_event: Option<Duration>,
    left_shift: bool,
    right_shift: bool,
    caps_lock: bool,
    ctrl: u8,
    alt: u8,
    alt_code: Option<u32>,
    overflowed: bool,
    counters: WedgeCounters,
}

impl WedgeAssembler {
    /// `source` names the device in the codes it produces.
    pub fn new(config: WedgeConfig, source: impl Into<String>) -> Self {
        WedgeAssembler {
            config,
            source: source.into(),
            buffer: String::new(),
            first_key: None,
            last_event: None,
            left_shift: false,
            right_shift: false,
            caps_lock: false,
            ctrl: 0,
            alt: 0,
            alt_code: None,
            overflowed: false,
            counters: WedgeCounters::default(),
        }
    }

    pub fn counters(&self) -> WedgeCounters {
        self.counters
    }

    pub fn config(&self) -> &WedgeConfig {
        &self.config
    }

    /// Whether a partial code is waiting for more keys, a terminator or the timeout.
    pub fn is_pending(&self) -> bool {
        !self.buffer.is_empty() || self.overflowed
    }

    /// When the pending code times out, on the key clock; `None` when nothing is pending.
    pub fn deadline(&self) -> Option<Duration> {
        if self.is_pending() {
            self.last_event.map(|t| t + self.config.inter_key_timeout)
        } else {
            None
        }
    }

    /// Feed one key event. Returns a code when this event completes one, or when the gap
    /// before it shows that the previous burst had ended.
    pub fn feed(&mut self, ev: KeyEvent) -> Option<WedgeCode> {
        let timed_out = match self.last_event {
            // evdev stamps with CLOCK_REALTIME, which NTP may step (right after boot, say):
            // a jump either way is a break in the burst, never a reason to merge two codes.
            Some(last) => ev.time.abs_diff(last) > self.config.inter_key_timeout,
            None => false,
        };
        let flushed = if timed_out {
            self.end_by_timeout()
        } else {
            None
        };
        self.last_event = Some(ev.time);
        let ended = self.key(ev);
        // After a timeout flush the buffer is empty, so this key cannot complete a second code.
        flushed.or(ended)
    }

    /// Call when no key has come for a while: ends the pending code if its timeout has passed.
    pub fn poll_idle(&mut self, now: Duration) -> Option<WedgeCode> {
        match (self.deadline(), self.last_event) {
            (Some(deadline), _) if now >= deadline => self.end_by_timeout(),
            // The clock stepped back: waiting for the deadline could take hours.
            (Some(_), Some(last)) if last.saturating_sub(now) > self.config.inter_key_timeout => {
                self.end_by_timeout()
            }
            _ => None,
        }
    }

    /// Events were lost (the kernel reported SYN_DROPPED): forget the partial code and the
    /// modifier state, which may both be wrong now.
    pub fn discard(&mut self) {
        if self.is_pending() {
            self.counters.fragments_dropped += 1;
        }
        *self = WedgeAssembler {
            counters: self.counters,
            ..WedgeAssembler::new(self.config.clone(), self.source.clone())
        };
    }

    /// The key source has ended (a recording played out): treat it as a timeout.
    pub fn finish(&mut self) -> Option<WedgeCode> {
        self.end_by_timeout()
    }

    fn key(&mut self, ev: KeyEvent) -> Option<WedgeCode> {
        let pressed = match ev.value {
            0 => false,
            1 => true,
            _ => return None,
        };
        match ev.code {
            code::KEY_LEFTSHIFT => self.left_shift = pressed,
            code::KEY_RIGHTSHIFT => self.right_shift = pressed,
            code::KEY_LEFTCTRL | code::KEY_RIGHTCTRL => self.ctrl = counted(self.ctrl, pressed),
            code::KEY_LEFTALT | code::KEY_RIGHTALT => {
                self.alt = counted(self.alt, pressed);
                if pressed {
                    self.alt_code = Some(0).filter(|_| self.alt == 1).or(self.alt_code);
                } else if self.alt == 0
                    && let Some(c) = self
                        .alt_code
                        .take()
                        .and_then(char::from_u32)
                        .filter(|&c| c != '\0')
                {
                    self.push(c, ev.time);
                }
            }
            code::KEY_CAPSLOCK if pressed => self.caps_lock = !self.caps_lock,
            code::KEY_ENTER | code::KEY_KPENTER if pressed => return self.end_by_enter(),
            k if pressed => self.typed(k, ev.time),
            _ => {}
        }
        None
    }

    fn typed(&mut self, k: u16, at: Duration) {
        if self.alt > 0 {
            match (keymap::keypad_digit(k), self.alt_code.as_mut()) {
                (Some(d), Some(acc)) => *acc = acc.saturating_mul(10).saturating_add(d),
                _ => self.counters.unmapped_keys += 1,
            }
            return;
        }
        let c = if self.ctrl > 0 {
            keymap::ctrl_char(k)
        } else {
            keymap::us_char(k, self.left_shift || self.right_shift, self.caps_lock)
        };
        match c {
            Some(c) => self.push(c, at),
            None => self.counters.unmapped_keys += 1,
        }
    }

    fn push(&mut self, c: char, at: Duration) {
        if self.overflowed {
            return;
        }
        if self.buffer.is_empty() {
            self.first_key = Some(at);
        }
        self.buffer.push(c);
        if self.buffer.len() > self.config.max_len {
            tracing::warn!(source = %self.source, max = self.config.max_len,
                "keyboard-wedge input too long without Enter; dropping it (stuck key, or not a scanner?)");
            self.counters.overflows += 1;
            self.buffer.clear();
            self.overflowed = true;
        }
    }

    fn end_by_enter(&mut self) -> Option<WedgeCode> {
        if self.overflowed {
            self.overflowed = false;
            return None;
        }
        self.take(EndedBy::Enter)
    }

    fn end_by_timeout(&mut self) -> Option<WedgeCode> {
        self.alt_code = None;
        if self.overflowed {
            self.overflowed = false;
            return None;
        }
        let len = self.buffer.chars().count();
        if len == 0 {
            return None;
        }
        let min = self.config.min_len_on_timeout;
        if min == 0 || len < min {
            tracing::debug!(source = %self.source, len, "dropping a short unterminated key burst");
            self.counters.fragments_dropped += 1;
            self.buffer.clear();
            return None;
        }
        self.take(EndedBy::Timeout)
    }

    fn take(&mut self, ended_by: EndedBy) -> Option<WedgeCode> {
        if self.buffer.is_empty() {
            return None;
        }
        self.counters.codes += 1;
        let last_key = self.last_event.unwrap_or_default();
        Some(WedgeCode {
            text: std::mem::take(&mut self.buffer),
            ended_by,
            first_key: self.first_key.take().unwrap_or(last_key),
            last_key,
            source: self.source.clone(),
        })
    }
}

/// Left and right modifiers count together, so releasing one while the other is held keeps it.
fn counted(n: u8, pressed: bool) -> u8 {
    if pressed {
        n.saturating_add(1).min(2)
    } else {
        n.saturating_sub(1)
    }
}

/// Key events a US-layout scanner sends to type `text`, `key_interval` apart, starting at
/// `start`: press and release per character, Shift around shifted characters, and Enter at
/// the end when `enter` is set. Characters with no US key are skipped, with a warning.
pub fn type_text(
    text: &str,
    start: Duration,
    key_interval: Duration,
    enter: bool,
) -> Vec<KeyEvent> {
    let mut t = start;
    let mut out = Vec::new();
    let ev = |out: &mut Vec<KeyEvent>, code: u16, value: i32, t: Duration| {
        out.push(KeyEvent {
            code,
            value,
            time: t,
        });
    };
    let keys = text.chars().filter_map(|c| {
        let k = keymap::us_key_for(c);
        if k.is_none() {
            tracing::warn!(?c, "no US key types this character; skipped");
        }
        k
    });
    let terminator = enter.then_some((code::KEY_ENTER, false));
    for (k, shift) in keys.chain(terminator) {
        if shift {
            ev(&mut out, code::KEY_LEFTSHIFT, 1, t);
        }
        ev(&mut out, k, 1, t);
        ev(&mut out, k, 0, t + key_interval / 2);
        if shift {
            ev(&mut out, code::KEY_LEFTSHIFT, 0, t + key_interval / 2);
        }
        t += key_interval;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn feed_all(a: &mut WedgeAssembler, events: &[KeyEvent]) -> Vec<WedgeCode> {
        events.iter().filter_map(|&e| a.feed(e)).collect()
    }

    fn assembler() -> WedgeAssembler {
        WedgeAssembler::new(WedgeConfig::default(), "test-scanner")
    }

    #[test]
    fn a_scanner_types_an_alipay_code_and_presses_enter() {
        let mut a = assembler();
        let codes = feed_all(
            &mut a,
            &type_text("286912345678901234", Duration::ZERO, 4 * MS, true),
        );
        assert_eq!(codes.len(), 1);
        assert_eq!(codes[0].text, "286912345678901234");
        assert_eq!(codes[0].ended_by, EndedBy::Enter);
        assert_eq!(codes[0].source, "test-scanner");
        assert!(!a.is_pending());
    }

    #[test]
    fn a_payment_url_keeps_its_punctuation_and_capitals() {
        let url = "https://qr.alipay.com/FKX07914ZqAAaB?t=1&x=%2F_a-b.c";
        let mut a = assembler();
        let codes = feed_all(&mut a, &type_text(url, Duration::ZERO, 2 * MS, true));
        assert_eq!(
            codes.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
            vec![url]
        );
    }

    #[test]
    fn keypad_enter_ends_a_code_too() {
        let mut a = assembler();
        let mut ev = type_text("134567890123456789", Duration::ZERO, MS, false);
        let t = ev.last().unwrap().time + MS;
        ev.push(KeyEvent {
            code: code::KEY_KPENTER,
            value: 1,
            time: t,
        });
        let codes = feed_all(&mut a, &ev);
        assert_eq!(codes.len(), 1);
        assert_eq!(codes[0].ended_by, EndedBy::Enter);
    }

    #[test]
    fn a_scanner_without_suffix_is_ended_by_the_pause_after_it() {
        let mut a = assembler();
        let ev = type_text("130000111122223333", Duration::ZERO, 3 * MS, false);
        assert!(feed_all(&mut a, &ev).is_empty());
        let last = ev.last().unwrap().time;
        assert_eq!(
            a.poll_idle(last + 10 * MS),
            None,
            "too early: more keys may come"
        );
        let code = a.poll_idle(last + 60 * MS).expect("ended by the pause");
        assert_eq!(code.text, "130000111122223333");
        assert_eq!(code.ended_by, EndedBy::Timeout);
    }

    #[test]
    fn the_next_burst_after_a_pause_ends_the_previous_code() {
        let mut a = assembler();
        let mut ev = type_text("281111222233334444", Duration::ZERO, 3 * MS, false);
        ev.extend(type_text(
            "255555666677778888",
            Duration::from_secs(2),
            3 * MS,
            true,
        ));
        let codes = feed_all(&mut a, &ev);
        let texts: Vec<_> = codes
            .iter()
            .map(|c| (c.text.as_str(), c.ended_by))
            .collect();
        assert_eq!(
            texts,
            vec![
                ("281111222233334444", EndedBy::Timeout),
                ("255555666677778888", EndedBy::Enter)
            ]
        );
    }

    #[test]
    fn a_clock_step_back_during_a_burst_does_not_glue_two_codes_together() {
        let mut a = assembler();
        let start = Duration::from_secs(1_800_000_000);
        feed_all(&mut a, &type_text("130000111122223333", start, MS, false));
        // NTP steps the clock back an hour; the idle check still ends the code.
        let code = a
            .poll_idle(start - Duration::from_secs(3600))
            .expect("ended");
        assert_eq!(code.text, "130000111122223333");
        // And keys stamped before the previous ones start a new code.
        feed_all(&mut a, &type_text("2811", start, MS, false));
        let codes = feed_all(
            &mut a,
            &type_text(
                "255555666677778888",
                start - Duration::from_secs(60),
                MS,
                true,
            ),
        );
        assert_eq!(codes.last().unwrap().text, "255555666677778888");
    }

    #[test]
    fn a_stray_key_is_not_a_code() {
        let mut a = assembler();
        feed_all(&mut a, &type_text("7", Duration::ZERO, MS, false));
        assert_eq!(a.poll_idle(Duration::from_secs(1)), None);
        assert_eq!(a.counters().fragments_dropped, 1);
        assert!(!a.is_pending());
    }

    #[test]
    fn with_min_len_zero_only_enter_ends_a_code() {
        let cfg = WedgeConfig {
            min_len_on_timeout: 0,
            ..WedgeConfig::default()
        };
        let mut a = WedgeAssembler::new(cfg, "s");
        feed_all(
            &mut a,
            &type_text("281111222233334444", Duration::ZERO, MS, false),
        );
        assert_eq!(a.poll_idle(Duration::from_secs(1)), None);
    }

    #[test]
    fn caps_lock_and_right_shift_work_like_a_keyboard() {
        let mut a = assembler();
        let k = |code, value, ms| KeyEvent {
            code,
            value,
            time: ms * MS,
        };
        let ev = [
            k(code::KEY_CAPSLOCK, 1, 0),
            k(code::KEY_CAPSLOCK, 0, 1),
            k(30, 1, 2), // A
            k(30, 0, 3),
            k(code::KEY_RIGHTSHIFT, 1, 4),
            k(30, 1, 5), // a (shift inverts caps)
            k(30, 0, 6),
            k(3, 1, 7), // @
            k(3, 0, 8),
            k(code::KEY_RIGHTSHIFT, 0, 9),
            k(code::KEY_ENTER, 1, 10),
        ];
        assert_eq!(feed_all(&mut a, &ev)[0].text, "Aa@");
    }

    #[test]
    fn alt_keypad_codes_type_any_character() {
        let mut a = assembler();
        let k = |code, value, ms| KeyEvent {
            code,
            value,
            time: ms * MS,
        };
        // Alt + 0 6 5 → 'A', then Alt + 4 9 → '1'.
        let ev = [
            k(code::KEY_LEFTALT, 1, 0),
            k(code::KEY_KP0, 1, 1),
            k(code::KEY_KP6, 1, 2),
            k(code::KEY_KP5, 1, 3),
            k(code::KEY_LEFTALT, 0, 4),
            k(code::KEY_LEFTALT, 1, 5),
            k(code::KEY_KP4, 1, 6),
            k(code::KEY_KP9, 1, 7),
            k(code::KEY_LEFTALT, 0, 8),
            k(code::KEY_ENTER, 1, 9),
        ];
        assert_eq!(feed_all(&mut a, &ev)[0].text, "A1");
    }

    #[test]
    fn ctrl_bracket_gives_the_gs1_separator() {
        let mut a = assembler();
        let k = |code, value, ms| KeyEvent {
            code,
            value,
            time: ms * MS,
        };
        let ev = [
            k(2, 1, 0),
            k(code::KEY_LEFTCTRL, 1, 1),
            k(27, 1, 2),
            k(27, 0, 3),
            k(code::KEY_LEFTCTRL, 0, 4),
            k(3, 1, 5),
            k(code::KEY_ENTER, 1, 6),
        ];
        assert_eq!(feed_all(&mut a, &ev)[0].text, "1\u{1d}2");
    }

    #[test]
    fn autorepeat_and_unknown_keys_type_nothing() {
        let mut a = assembler();
        let k = |code, value, ms| KeyEvent {
            code,
            value,
            time: ms * MS,
        };
        let ev = [
            k(2, 1, 0),
            k(2, 2, 1),
            k(59, 1, 2),
            k(2, 0, 3),
            k(code::KEY_ENTER, 1, 4),
        ];
        assert_eq!(feed_all(&mut a, &ev)[0].text, "1");
        assert_eq!(a.counters().unmapped_keys, 1);
    }

    #[test]
    fn a_stuck_key_is_dropped_until_the_next_enter() {
        let cfg = WedgeConfig {
            max_len: 10,
            ..WedgeConfig::default()
        };
        let mut a = WedgeAssembler::new(cfg, "s");
        let mut ev = type_text(&"9".repeat(30), Duration::ZERO, MS, true);
        ev.extend(type_text("12345678", Duration::from_millis(40), MS, true));
        let codes = feed_all(&mut a, &ev);
        assert_eq!(
            codes.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
            vec!["12345678"]
        );
        assert_eq!(a.counters().overflows, 1);
    }

    #[test]
    fn lost_events_throw_away_the_partial_code_and_a_stuck_shift() {
        let mut a = assembler();
        let k = |code, value, ms| KeyEvent {
            code,
            value,
            time: ms * MS,
        };
        feed_all(
            &mut a,
            &[k(code::KEY_LEFTSHIFT, 1, 0), k(30, 1, 1), k(30, 0, 2)],
        );
        a.discard();
        assert!(!a.is_pending());
        let codes = feed_all(
            &mut a,
            &type_text("28abc", Duration::from_millis(3), MS, true),
        );
        assert_eq!(codes[0].text, "28abc", "shift is no longer held");
        assert_eq!(a.counters().fragments_dropped, 1);
        assert_eq!(a.counters().codes, 1);
    }

    #[test]
    fn a_lone_enter_is_ignored() {
        let mut a = assembler();
        assert!(feed_all(&mut a, &type_text("", Duration::ZERO, MS, true)).is_empty());
    }

    #[test]
    fn debug_output_masks_the_code() {
        let code = WedgeCode {
            text: "286912345678901234".into(),
            ended_by: EndedBy::Enter,
            first_key: Duration::ZERO,
            last_key: Duration::ZERO,
            source: "s".into(),
        };
        let shown = format!("{code:?}");
        assert!(shown.contains("28************1234"), "{shown}");
        assert!(!shown.contains("286912345678901234"));
    }
}
