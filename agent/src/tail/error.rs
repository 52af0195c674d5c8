use std::io;
use std::path::PathBuf;

/// Errors of the tail engine. Per-file I/O problems during reading are not
/// returned but reported through
/// [`TailObserver::io_error`](super::TailObserver::io_error) and retried, so
/// one unreadable file does not stop the others.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// A [`TailConfig`](super::TailConfig) field is out of range.
    #[error("invalid tail configuration: {0}")]
    InvalidConfig(&'static str),
    /// An I/O operation on `path` failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The checkpoint file is not valid checkpoint JSON (or is too large); it
    /// was treated as empty.
    #[error("checkpoint file {} is corrupt: {reason}", path.display())]
    CheckpointCorrupt {
        /// The checkpoint file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The checkpoint file has a version this code does not understand; it was
    /// treated as empty.
    #[error("checkpoint file {} has unsupported version {version}", path.display())]
    CheckpointVersion {
        /// The checkpoint file.
        path: PathBuf,
        /// The version found in it.
        version: u64,
    },
    /// The file watcher could not start or could not watch a directory;
    /// polling covers for it.
    #[error("file watcher: {0}")]
    Watch(String),
}

impl TailError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
