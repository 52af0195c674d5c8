//! Container log files: the CRI format kubelet's runtimes write under `/var/log/pods` and
//! Docker's `json-file` format, parsed line by line, with partial lines reassembled into
//! messages and messages turned into `vigil.event/v1` events.
//!
//! This is the hot loop of the container-log source, so the common case allocates nothing
//! until the event is built: a CRI line is split in place ([`parse_cri`] borrows every
//! field), a complete line that needs no reassembly is passed through by reference
//! ([`Reassembler::push`]), and a UTC timestamp with nine fraction digits is copied as is.
//!
//! Nothing here panics on any input: malformed, truncated, oversized or binary lines come
//! back as a [`LogParseError`] whose [`kind`](LogParseError::kind) names a metric label.

mod cri;
mod docker_json;
mod error;
mod event;
mod path;
mod reassemble;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use cri::parse_cri;
pub use docker_json::parse_docker_json;
pub use error::LogParseError;
pub use event::{LogContext, message_event, normalize_time};
pub use path::{LogPath, is_restart_log_name};
pub use reassemble::{Message, Reassembler};

use std::borrow::Cow;

/// The stream a container wrote a line to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn from_bytes(b: &[u8]) -> Result<Self, LogParseError> {
        match b {
            b"stdout" => Ok(Stream::Stdout),
            b"stderr" => Ok(Stream::Stderr),
            _ => Err(LogParseError::BadStream),
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// One line of a container log file, parsed. CRI lines borrow everything; Docker
/// `json-file` lines borrow unless JSON escapes had to be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// The timestamp as written (RFC 3339, any fraction length, `Z` or a numeric offset);
    /// see [`normalize_time`].
    pub time: Cow<'a, str>,
    /// Which stream.
    pub stream: Stream,
    /// More of the same message follows in a later line of the same stream (CRI `P`, a
    /// json-file `log` without a trailing newline).
    pub partial: bool,
    /// The text, without the line's newline.
    pub content: Cow<'a, [u8]>,
}

/// The on-disk format of a container log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `<time> <stream> <P|F>[:tags] <content>`, as containerd and CRI-O write.
    Cri,
    /// Docker's `json-file` driver: `{"log":"...","stream":"...","time":"..."}`.
    DockerJson,
}

impl LogFormat {
    /// Tells the format from a file's first line: a json-file line is a JSON object; a CRI
    /// line starts with its timestamp.
    pub fn detect(first_line: &[u8]) -> Option<Self> {
        match first_line.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Some(LogFormat::DockerJson),
            Some(b) if b.is_ascii_digit() => Some(LogFormat::Cri),
            _ => None,
        }
    }

    /// Parses one line in this format.
    pub fn parse(self, line: &[u8]) -> Result<LogLine<'_>, LogParseError> {
        match self {
            LogFormat::Cri => parse_cri(line),
            LogFormat::DockerJson => parse_docker_json(line),
        }
    }

    /// `cri` or `docker_json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Cri => "cri",
            LogFormat::DockerJson => "docker_json",
        }
    }
}
