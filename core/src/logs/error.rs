/// Why a container log line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogParseError {
    /// Nothing but whitespace.
    #[error("empty line")]
    Empty,
    /// The line ends before all of its fields (a CRI line cut short, a truncated write).
    #[error("line ends before its {0} field")]
    Truncated(&'static str),
    /// The timestamp is not RFC 3339.
    #[error("timestamp {0:?} is not RFC 3339")]
    BadTimestamp(String),
    /// The stream is neither `stdout` nor `stderr`.
    #[error("stream is neither stdout nor stderr")]
    BadStream,
    /// The CRI tag is neither `P` nor `F` (optionally followed by `:` and more tags).
    #[error("CRI tag is neither P nor F")]
    BadTag,
    /// A json-file line that is not the expected JSON object.
    #[error("json-file line: {0}")]
    Json(String),
}

impl LogParseError {
    /// A short stable name, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            LogParseError::Empty => "log_empty",
            LogParseError::Truncated(_) => "log_truncated",
            LogParseError::BadTimestamp(_) => "log_bad_timestamp",
            LogParseError::BadStream => "log_bad_stream",
            LogParseError::BadTag => "log_bad_tag",
            LogParseError::Json(_) => "log_bad_json",
        }
    }

    /// An error naming at most the first 64 bytes of a hostile timestamp field.
    pub(crate) fn bad_timestamp(field: &[u8]) -> Self {
        let shown = &field[..field.len().min(64)];
        LogParseError::BadTimestamp(String::from_utf8_lossy(shown).into_owned())
    }
}
