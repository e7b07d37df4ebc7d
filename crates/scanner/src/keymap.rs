//! Linux key codes → characters for keyboard-wedge scanners, US layout.
//!
//! A wedge scanner "types" what it reads as if it were a US keyboard, so the mapping has to
//! follow what the scanner sends, not the console's keymap. Everything a payment code or a
//! payment URL can contain (`A–Z a–z 0–9 : / ? & = . - _ % + # ~`) is covered, plus the keypad.

/// Linux input key codes used by name in this crate (from `linux/input-event-codes.h`).
pub mod code {
    pub const KEY_ESC: u16 = 1;
    pub const KEY_TAB: u16 = 15;
    pub const KEY_ENTER: u16 = 28;
    pub const KEY_LEFTCTRL: u16 = 29;
    pub const KEY_LEFTSHIFT: u16 = 42;
    pub const KEY_RIGHTSHIFT: u16 = 54;
    pub const KEY_LEFTALT: u16 = 56;
    pub const KEY_CAPSLOCK: u16 = 58;
    pub const KEY_KP7: u16 = 71;
    pub const KEY_KP8: u16 = 72;
    pub const KEY_KP9: u16 = 73;
    pub const KEY_KP4: u16 = 75;
    pub const KEY_KP5: u16 = 76;
    pub const KEY_KP6: u16 = 77;
    pub const KEY_KP1: u16 = 79;
    pub const KEY_KP2: u16 = 80;
    pub const KEY_KP3: u16 = 81;
    pub const KEY_KP0: u16 = 82;
    pub const KEY_KPENTER: u16 = 96;
    pub const KEY_RIGHTCTRL: u16 = 97;
    pub const KEY_RIGHTALT: u16 = 100;
    /// `EV_KEY`, the event type of key presses.
    pub const EV_KEY: u16 = 1;
    /// `EV_SYN`, the event type that closes a batch of events.
    pub const EV_SYN: u16 = 0;
}

/// (key code, unshifted, shifted) for every key that types a character.
const US_KEYS: &[(u16, char, char)] = &[
    (2, '1', '!'),
    (3, '2', '@'),
    (4, '3', '#'),
    (5, '4', '$'),
    (6, '5', '%'),
    (7, '6', '^'),
    (8, '7', '&'),
    (9, '8', '*'),
    (10, '9', '('),
    (11, '0', ')'),
    (12, '-', '_'),
    (13, '=', '+'),
    (16, 'q', 'Q'),
    (17, 'w', 'W'),
    (18, 'e', 'E'),
    (19, 'r', 'R'),
    (20, 't', 'T'),
    (21, 'y', 'Y'),
    (22, 'u', 'U'),
    (23, 'i', 'I'),
    (24, 'o', 'O'),
    (25, 'p', 'P'),
    (26, '[', '{'),
    (27, ']', '}'),
    (30, 'a', 'A'),
    (31, 's', 'S'),
    (32, 'd', 'D'),
    (33, 'f', 'F'),
    (34, 'g', 'G'),
    (35, 'h', 'H'),
    (36, 'j', 'J'),
    (37, 'k', 'K'),
    (38, 'l', 'L'),
    (39, ';', ':'),
    (40, '\'', '"'),
    (41, '`', '~'),
    (43, '\\', '|'),
    (44, 'z', 'Z'),
    (45, 'x', 'X'),
    (46, 'c', 'C'),
    (47, 'v', 'V'),
    (48, 'b', 'B'),
    (49, 'n', 'N'),
    (50, 'm', 'M'),
    (51, ',', '<'),
    (52, '.', '>'),
    (53, '/', '?'),
    (57, ' ', ' '),
    // Keypad: scanners in "keypad emulation" send these; NumLock state is not tracked
    // because the scanner, not the terminal, decides what it means.
    (55, '*', '*'),
    (74, '-', '-'),
    (78, '+', '+'),
    (83, '.', '.'),
    (98, '/', '/'),
    (117, '=', '='),
    (121, ',', ','),
    (71, '7', '7'),
    (72, '8', '8'),
    (73, '9', '9'),
    (75, '4', '4'),
    (76, '5', '5'),
    (77, '6', '6'),
    (79, '1', '1'),
    (80, '2', '2'),
    (81, '3', '3'),
    (82, '0', '0'),
];

/// The character a key types on a US keyboard, given the shift and caps-lock state.
///
/// Caps Lock only affects letters, as on a real keyboard; Shift with Caps Lock gives lower case.
pub fn us_char(code: u16, shift: bool, caps_lock: bool) -> Option<char> {
    let &(_, plain, shifted) = US_KEYS.iter().find(|(c, _, _)| *c == code)?;
    let upper = if plain.is_ascii_lowercase() {
        shift != caps_lock
    } else {
        shift
    };
    Some(if upper { shifted } else { plain })
}

/// The digit of a keypad key, for Alt+keypad character entry.
pub fn keypad_digit(code: u16) -> Option<u32> {
    use code::*;
    Some(match code {
        KEY_KP0 => 0,
        KEY_KP1 => 1,
        KEY_KP2 => 2,
        KEY_KP3 => 3,
        KEY_KP4 => 4,
        KEY_KP5 => 5,
        KEY_KP6 => 6,
        KEY_KP7 => 7,
        KEY_KP8 => 8,
        KEY_KP9 => 9,
        _ => return None,
    })
}

/// The control character Ctrl+key types, as scanners send GS1's FNC1 (GS, 0x1D) as Ctrl+`]`.
pub fn ctrl_char(code: u16) -> Option<char> {
    let base = us_char(code, false, false)?;
    let byte = match base {
        'a'..='z' => base as u8 - b'a' + 1,
        '[' => 0x1b,
        '\\' => 0x1c,
        ']' => 0x1d,
        _ => return None,
    };
    Some(char::from(byte))
}

/// How to type `c` on a US keyboard: (key code, needs shift). Newline is Enter.
///
/// Used to write recordings of a scanner typing a code; main-row keys are preferred over the
/// keypad, as a scanner in its default mode does.
pub fn us_key_for(c: char) -> Option<(u16, bool)> {
    if c == '\n' {
        return Some((code::KEY_ENTER, false));
    }
    US_KEYS.iter().find_map(|&(k, plain, shifted)| {
        if plain == c {
            Some((k, false))
        } else if shifted == c {
            Some((k, true))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_and_letters_follow_the_us_layout() {
        assert_eq!(us_char(2, false, false), Some('1'));
        assert_eq!(us_char(11, false, false), Some('0'));
        assert_eq!(us_char(30, false, false), Some('a'));
        assert_eq!(us_char(30, true, false), Some('A'));
        assert_eq!(us_char(30, false, true), Some('A'));
        assert_eq!(us_char(30, true, true), Some('a'));
        // Caps Lock does not shift digits.
        assert_eq!(us_char(2, false, true), Some('1'));
    }

    #[test]
    fn every_url_character_can_be_typed_and_read_back() {
        let url = "https://qr.alipay.com/bax08431?a=1&b=%20_x-y.z~#+;'\"[]{}<>|\\`,!@$^*()";
        for c in url.chars() {
            let (k, shift) = us_key_for(c).unwrap_or_else(|| panic!("no key for {c:?}"));
            assert_eq!(us_char(k, shift, false), Some(c), "round trip of {c:?}");
        }
    }

    #[test]
    fn keypad_types_digits_whatever_numlock_says() {
        assert_eq!(us_char(code::KEY_KP0, false, false), Some('0'));
        assert_eq!(us_char(code::KEY_KP9, true, false), Some('9'));
        assert_eq!(keypad_digit(code::KEY_KP5), Some(5));
        assert_eq!(keypad_digit(code::KEY_ENTER), None);
    }

    #[test]
    fn ctrl_right_bracket_is_the_gs1_group_separator() {
        assert_eq!(ctrl_char(27), Some('\u{1d}'));
        assert_eq!(ctrl_char(30), Some('\u{1}'));
        assert_eq!(ctrl_char(2), None);
    }

    #[test]
    fn modifiers_and_function_keys_type_nothing() {
        for k in [
            code::KEY_LEFTSHIFT,
            code::KEY_ENTER,
            code::KEY_ESC,
            59,
            code::KEY_CAPSLOCK,
        ] {
            assert_eq!(us_char(k, false, false), None);
        }
    }
}
