//! The CRI log format: `<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <content>`.

use std::borrow::Cow;

use super::{LogLine, LogParseError, Stream};

/// The longest timestamp taken for one: RFC 3339 with nine fraction digits and a numeric
/// zone is 35 bytes, so anything longer is not a time.
const MAX_TIME_LEN: usize = 40;

/// Splits `line` (without its newline) into its fields without copying. The content is
/// everything after the single space that follows the tag, spaces included; a line that
/// ends right after the tag has empty content.
///
/// This runs once per line of every container, so the fields are compared in place and
/// the timestamp's characters checked against a table.
pub fn parse_cri(line: &[u8]) -> Result<LogLine<'_>, LogParseError> {
    let Some(time_len) = time_field_len(line) else {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Err(LogParseError::Empty);
        }
        return Err(match line.iter().position(|&b| b == b' ') {
            None => LogParseError::Truncated("stream"),
            Some(end) => LogParseError::bad_timestamp(&line[..end]),
        });
    };
    let time = &line[..time_len];
    let rest = &line[time_len + 1..];
    let (stream, rest) = split_space(rest).ok_or(LogParseError::Truncated("tag"))?;
    let stream = Stream::from_bytes(stream)?;
    let (partial, content) = match rest {
        [b'P', tail @ ..] => (true, after_tag(tail)?),
        [b'F', tail @ ..] => (false, after_tag(tail)?),
        _ => return Err(LogParseError::BadTag),
    };
    // Every byte of `time` was checked to be ASCII by `time_field_len`.
    let time = std::str::from_utf8(time).map_err(|_| LogParseError::bad_timestamp(time))?;
    Ok(LogLine {
        time: Cow::Borrowed(time),
        stream,
        partial,
        content: Cow::Borrowed(content),
    })
}

/// The length of the timestamp that starts `line` and is followed by a space, when it has
/// the shape of one: `YYYY-MM-DDTHH:MM:SS`, then only time characters, 20 to
/// [`MAX_TIME_LEN`] bytes. A cheap shape check; the full validation happens when the
/// event's time is normalized.
fn time_field_len(line: &[u8]) -> Option<usize> {
    let len = line
        .iter()
        .take(MAX_TIME_LEN + 1)
        .position(|&b| b == b' ')?;
    let time = &line[..len];
    let plausible = len >= 20
        && time[..4].iter().all(u8::is_ascii_digit)
        && time[4] == b'-'
        && time[10] == b'T'
        && time.iter().all(|&b| TIME_CHARS[usize::from(b)]);
    plausible.then_some(len)
}

/// The bytes a timestamp may hold: digits and `-:.TZ+` (a table, since every line's
/// timestamp goes through it).
static TIME_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = b'0';
    while b <= b'9' {
        table[b as usize] = true;
        b += 1;
    }
    table[b'-' as usize] = true;
    table[b':' as usize] = true;
    table[b'.' as usize] = true;
    table[b'T' as usize] = true;
    table[b'Z' as usize] = true;
    table[b'+' as usize] = true;
    table
};

/// The content after a `P` or `F`: the rest of a `:tags` suffix is skipped, then one
/// space; nothing at all is an empty message (`... stdout F`).
fn after_tag(tail: &[u8]) -> Result<&[u8], LogParseError> {
    match tail {
        [] => Ok(&[]),
        [b' ', content @ ..] => Ok(content),
        [b':', tags @ ..] => Ok(split_space(tags).map_or(&[][..], |(_, content)| content)),
        _ => Err(LogParseError::BadTag),
    }
}

fn split_space(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|&c| c == b' ')?;
    Some((&b[..i], &b[i + 1..]))
}
