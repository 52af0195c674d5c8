//! Docker's `json-file` log driver: one JSON object per line.

use std::borrow::Cow;

use serde::Deserialize;

use super::{LogLine, LogParseError, Stream};

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    log: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stream: Option<Cow<'a, str>>,
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
}

/// Parses one json-file line. A `log` without a trailing newline is a part that continues
/// in the next line of the same stream (the driver splits lines at 16 KiB); the newline of
/// a complete one is removed. Other keys (`attrs`) are ignored.
pub fn parse_docker_json(line: &[u8]) -> Result<LogLine<'_>, LogParseError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(LogParseError::Empty);
    }
    let raw: Raw<'_> =
        serde_json::from_slice(line).map_err(|e| LogParseError::Json(e.to_string()))?;
    let log = raw.log.ok_or(LogParseError::Truncated("log"))?;
    let stream = raw.stream.ok_or(LogParseError::Truncated("stream"))?;
    let stream = Stream::from_bytes(stream.as_bytes())?;
    let time = raw.time.ok_or(LogParseError::Truncated("time"))?;
    let (partial, content) = match log {
        Cow::Borrowed(s) => match s.strip_suffix('\n') {
            Some(s) => (false, Cow::Borrowed(s.as_bytes())),
            None => (true, Cow::Borrowed(s.as_bytes())),
        },
        Cow::Owned(mut s) => {
            let partial = !s.ends_with('\n');
            if !partial {
                s.pop();
            }
            (partial, Cow::Owned(s.into_bytes()))
        }
    };
    Ok(LogLine {
        time,
        stream,
        partial,
        content,
    })
}
