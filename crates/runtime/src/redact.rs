//! Payment codes are bearer tokens: whoever holds one can spend the customer's money for a
//! minute. They never appear whole in a log line, a D-Bus error or a journal note.

pub use smartpos_text::{mask_code, mask_digits_in};
