//! Hashes over a streamed artifact. The server's hashes are checked all at once when the last
//! byte is in: sha256 when the server gives it, sha1 where that is all it gives (goosebit),
//! md5 never on its own (it proves nothing against a forger; the bundle's own signature,
//! checked by RAUC, is the real trust anchor, the hash only catches a wrong or cut file).

use ring::digest::{Context, SHA1_FOR_LEGACY_USE_ONLY, SHA256};

use crate::ddi::Hashes;

/// Running digests of the bytes seen so far.
pub struct Hasher {
    sha256: Context,
    sha1: Context,
    bytes: u64,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            sha256: Context::new(&SHA256),
            sha1: Context::new(&SHA1_FOR_LEGACY_USE_ONLY),
            bytes: 0,
        }
    }
}

/// Why a downloaded artifact is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("{file}: {got} bytes, the server announced {want}")]
    Size { file: String, want: u64, got: u64 },
    #[error("{file}: {algo} is {got}, the server announced {want}")]
    Hash {
        file: String,
        algo: &'static str,
        want: String,
        got: String,
    },
    #[error("{file}: the server gave neither sha256 nor sha1, nothing to check the file against")]
    NoHash { file: String },
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        self.sha1.update(data);
        self.bytes += data.len() as u64;
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Check size and every usable hash the server gave.
    pub fn check(self, file: &str, size: u64, want: &Hashes) -> Result<(), Mismatch> {
        if self.bytes != size {
            return Err(Mismatch::Size {
                file: file.to_owned(),
                want: size,
                got: self.bytes,
            });
        }
        let sha256 = hex::encode(self.sha256.finish());
        let sha1 = hex::encode(self.sha1.finish());
        let mut checked = false;
        for (algo, want, got) in [
            ("sha256", want.sha256.as_deref(), sha256),
            ("sha1", want.sha1.as_deref(), sha1),
        ] {
            let Some(want) = want else { continue };
            checked = true;
            if !want.eq_ignore_ascii_case(&got) {
                return Err(Mismatch::Hash {
                    file: file.to_owned(),
                    algo,
                    want: want.to_owned(),
                    got,
                });
            }
        }
        if checked {
            Ok(())
        } else {
            Err(Mismatch::NoHash {
                file: file.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(sha1: Option<&str>, sha256: Option<&str>) -> Hashes {
        Hashes {
            sha1: sha1.map(Into::into),
            sha256: sha256.map(Into::into),
            md5: None,
        }
    }

    // sha1("abc") and sha256("abc") from FIPS 180-2's examples.
    const SHA1_ABC: &str = "a9993e364706816aba3e25717850c26c9cd0d89d";
    const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn a_file_matching_every_hash_given_is_accepted() {
        let mut h = Hasher::default();
        h.update(b"a");
        h.update(b"bc");
        h.check("x", 3, &hashes(Some(SHA1_ABC), Some(SHA256_ABC)))
            .unwrap();
        let mut h = Hasher::default();
        h.update(b"abc");
        h.check("x", 3, &hashes(Some(SHA1_ABC), None)).unwrap();
    }

    #[test]
    fn a_tampered_byte_or_a_short_file_or_no_hash_at_all_is_refused() {
        let mut h = Hasher::default();
        h.update(b"abd");
        let e = h
            .check("pos.raucb", 3, &hashes(Some(SHA1_ABC), Some(SHA256_ABC)))
            .unwrap_err();
        assert!(matches!(e, Mismatch::Hash { algo: "sha256", .. }), "{e}");
        let mut h = Hasher::default();
        h.update(b"ab");
        assert!(matches!(
            h.check("x", 3, &hashes(Some(SHA1_ABC), None)),
            Err(Mismatch::Size { .. })
        ));
        let mut h = Hasher::default();
        h.update(b"abc");
        assert!(matches!(
            h.check("x", 3, &hashes(None, None)),
            Err(Mismatch::NoHash { .. })
        ));
    }
}
