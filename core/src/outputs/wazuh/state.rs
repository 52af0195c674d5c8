//! What a Wazuh agent keeps across restarts: its key (`client.keys`) and its message
//! counters.

use std::path::{Path, PathBuf};

use super::codec::Counters;
use super::keys::{AgentKey, KeyError};
use crate::durable::write_atomic;

/// Why the agent's state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `client.keys` does not parse.
    #[error("{path}: {source}")]
    Keys {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: KeyError,
    },
}

/// Reads the first key of a `client.keys` file; `None` when the file is missing or holds no
/// key (a fresh agent).
pub fn load_key(path: &Path) -> Result<Option<AgentKey>, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let keys = AgentKey::parse_file(&text).map_err(|source| StateError::Keys {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(keys.into_iter().next())
}

/// Stores the key as a one-line `client.keys`, readable by the owner only.
pub fn store_key(path: &Path, key: &AgentKey) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut line = key.to_line();
    line.push('\n');
    write_atomic(path, line.as_bytes(), 0o600).map_err(io)
}

/// The counters to start from: the global counter after the one saved, so that frames of
/// this run always count above those of the last one even if it died between two saves.
pub fn load_counters(path: &Path) -> Counters {
    let saved = std::fs::read_to_string(path).ok().and_then(|t| {
        let (g, l) = t.trim().split_once(' ')?;
        Some((g.parse::<u32>().ok()?, l.parse::<u32>().ok()?))
    });
    match saved {
        Some((global, _)) => Counters::new(global.wrapping_add(1), 0),
        None => Counters::new(0, 0),
    }
}

/// Saves the counters (the global one is what matters across restarts).
pub fn store_counters(path: &Path, counters: Counters) -> Result<(), StateError> {
    let (g, l) = counters.current();
    write_atomic(path, format!("{g} {l}\n").as_bytes(), 0o600).map_err(|source| StateError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str =
        "001 node-a any 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn the_key_survives_a_round_trip_and_a_missing_file_is_a_fresh_agent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wazuh/client.keys");
        assert!(load_key(&path).unwrap().is_none());
        let key = AgentKey::parse_line(LINE).unwrap().unwrap();
        store_key(&path, &key).unwrap();
        let back = load_key(&path).unwrap().unwrap();
        assert_eq!(back.to_line(), LINE);
    }

    #[test]
    fn a_damaged_keys_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.keys");
        std::fs::write(&path, "001 node-a any short\n").unwrap();
        let e = load_key(&path).unwrap_err();
        assert!(e.to_string().contains("client.keys"), "{e}");
    }

    #[test]
    fn counters_restart_above_the_saved_global_counter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counters");
        assert_eq!(load_counters(&path).current(), (0, 0));
        store_counters(&path, Counters::new(7, 1234)).unwrap();
        assert_eq!(load_counters(&path).current(), (8, 0));
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(load_counters(&path).current(), (0, 0));
    }
}
