//! Daemon configuration: TOML at `/etc/smartpos/<daemon>.toml`, or the file given with
//! `--config FILE`.
//!
//! A config struct derives `Deserialize` with `#[serde(deny_unknown_fields, default)]`, so a
//! misspelt key is an error rather than a silently ignored line. Every error names the file,
//! the line, the key and what was expected, because the person reading it is a technician
//! with a terminal, not a developer with a debugger.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// The default location of a daemon's configuration.
pub fn default_path(daemon: &str) -> PathBuf {
    PathBuf::from(format!("/etc/smartpos/{daemon}.toml"))
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named with `--config` does not exist or cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong kind.
    #[error("config file {path}, line {line}{key}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    /// The values parse but do not make sense together.
    #[error("config file {path}: {message}")]
    Semantic { path: PathBuf, message: String },
}

/// Load `T` from `explicit` if given (it must exist), else from the default path if it
/// exists, else `T::default()`.
pub fn load<T: DeserializeOwned + Default>(
    daemon: &str,
    explicit: Option<&Path>,
) -> Result<(T, Option<PathBuf>), ConfigError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = default_path(daemon);
            if !p.exists() {
                return Ok((T::default(), None));
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let value = parse(&path, &text)?;
    Ok((value, Some(path)))
}

/// Parse TOML text that came from `path` (used for messages only).
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let (line, key) = match e.span() {
            Some(span) => locate(text, span.start),
            None => (0, String::new()),
        };
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            key: if key.is_empty() {
                key
            } else {
                format!(", key `{key}`")
            },
            message: e.message().trim().to_owned(),
        }
    })
}

/// The 1-based line of byte `offset`, and the key assigned on that line (if any), so an
/// error about a value names the key it belongs to.
fn locate(text: &str, offset: usize) -> (usize, String) {
    let offset = offset.min(text.len());
    let line_no = text[..offset].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let key = match line.split_once('=') {
        Some((k, _)) => k.trim().trim_matches('"').to_owned(),
        None => String::new(),
    };
    (line_no, key)
}

impl ConfigError {
    /// For daemons that validate values after parsing.
    pub fn semantic(path: Option<&Path>, message: impl Into<String>) -> Self {
        ConfigError::Semantic {
            path: path.map_or_else(|| PathBuf::from("(defaults)"), Path::to_path_buf),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Cam {
        fps: u32,
        device: String,
    }

    #[test]
    fn a_misspelt_key_names_the_file_line_and_key() {
        let err =
            parse::<Cam>(Path::new("/etc/smartpos/x.toml"), "fps = 30\nfsp = 2\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/etc/smartpos/x.toml"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.contains("fsp"), "{msg}");
        assert!(msg.contains("expected `fps` or `device`"), "{msg}");
    }

    #[test]
    fn a_bad_value_names_the_key_and_what_is_expected() {
        let err = parse::<Cam>(
            Path::new("c.toml"),
            "device = \"/dev/video0\"\nfps = \"fast\"\n",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("key `fps`"), "{msg}");
        assert!(msg.contains("u32"), "{msg}");
    }

    #[test]
    fn an_explicit_missing_file_is_an_error_but_a_missing_default_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        assert!(matches!(
            load::<Cam>("x", Some(&missing)),
            Err(ConfigError::Read { .. })
        ));
        let (cam, from) = load::<Cam>("smartpos-test-no-such-daemon", None).unwrap();
        assert_eq!(cam.fps, 0);
        assert!(from.is_none());
    }
}
