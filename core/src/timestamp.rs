//! RFC 3339 timestamps with nanoseconds in UTC, the one time format of `vigil.event/v1`.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Formats `t` as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub fn format_nanos(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

/// Formats `t` as `YYYY-MM-DDTHH:MM:SS.uuuuuuZ` (microseconds: RFC 5424's precision).
pub fn format_micros(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// The current time, formatted.
pub fn now() -> String {
    format_nanos(OffsetDateTime::now_utc())
}

/// Normalizes an RFC 3339 timestamp to UTC with nine fraction digits. Returns `None` when
/// `s` is not RFC 3339, or when its offset moves it out of the years 0000–9999 that RFC 3339
/// can write (`9999-12-31T23:30:00-01:00`).
///
/// The common case, a UTC time with 0–9 fraction digits as kube-apiserver writes it, is
/// padded without a full parse because it is on the hot path of every audit event.
pub fn normalize(s: &str) -> Option<String> {
    if let Some(fast) = normalize_utc_fast(s) {
        return Some(fast);
    }
    // `to_offset` would panic past year 9999, and a year before 0000 has no RFC 3339 form.
    let utc = OffsetDateTime::parse(s, &Rfc3339)
        .ok()?
        .checked_to_offset(time::UtcOffset::UTC)?;
    (0..=9999).contains(&utc.year()).then(|| format_nanos(utc))
}

fn normalize_utc_fast(s: &str) -> Option<String> {
    let b = s.as_bytes();
    // "YYYY-MM-DDTHH:MM:SS" is 19 bytes; anything shorter or without a trailing Z takes the
    // slow path, which also validates ranges.
    if b.len() < 20 || !b.ends_with(b"Z") || b[10] != b'T' {
        return None;
    }
    let digits_at = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    if digits_at.iter().any(|&i| !b[i].is_ascii_digit())
        || b[4] != b'-'
        || b[7] != b'-'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let month = (b[5] - b'0') * 10 + (b[6] - b'0');
    let day = (b[8] - b'0') * 10 + (b[9] - b'0');
    let hour = (b[11] - b'0') * 10 + (b[12] - b'0');
    let minute = (b[14] - b'0') * 10 + (b[15] - b'0');
    let second = (b[17] - b'0') * 10 + (b[18] - b'0');
    // Leap seconds and impossible dates go the slow way, which rejects what is invalid.
    if !(1..=12).contains(&month)
        || !(1..=28).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let frac = &b[19..b.len() - 1];
    let frac_digits = match frac {
        [] => &[][..],
        [b'.', rest @ ..] if !rest.is_empty() && rest.len() <= 9 => rest,
        _ => return None,
    };
    if !frac_digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut out = String::with_capacity(30);
    out.push_str(&s[..19]);
    out.push('.');
    // The bytes are ASCII digits, checked above.
    for &d in frac_digits {
        out.push(char::from(d));
    }
    for _ in frac_digits.len()..9 {
        out.push('0');
    }
    out.push('Z');
    Some(out)
}

/// Formats milliseconds since the Unix epoch (CloudWatch timestamps).
pub fn from_unix_millis(ms: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .map(format_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_fractions_to_nanoseconds() {
        assert_eq!(
            normalize("2024-05-02T10:15:30.123456Z").as_deref(),
            Some("2024-05-02T10:15:30.123456000Z")
        );
        assert_eq!(
            normalize("2024-05-02T10:15:30Z").as_deref(),
            Some("2024-05-02T10:15:30.000000000Z")
        );
        assert_eq!(
            normalize("2024-05-02T10:15:30.123456789Z").as_deref(),
            Some("2024-05-02T10:15:30.123456789Z")
        );
    }

    #[test]
    fn converts_offsets_to_utc() {
        assert_eq!(
            normalize("2024-05-02T12:15:30.5+02:00").as_deref(),
            Some("2024-05-02T10:15:30.500000000Z")
        );
        assert_eq!(
            normalize("2024-12-31T23:30:00-01:00").as_deref(),
            Some("2025-01-01T00:30:00.000000000Z")
        );
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for bad in [
            "",
            "yesterday",
            "2024-13-02T10:15:30Z",
            "2024-02-30T10:15:30Z",
            "2024-05-02T10:15:30.Z",
            "2024-05-02T25:15:30Z",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    /// An offset can carry a time out of the four-digit years: past 9999 the conversion to
    /// UTC panics, and before 0000 the year has no RFC 3339 form (it was written `-001`).
    #[test]
    fn refuses_times_an_offset_moves_out_of_four_digit_years() {
        assert_eq!(normalize("9999-12-31T23:59:59-01:00"), None);
        assert_eq!(normalize("0000-01-01T00:30:00+01:00"), None);
        assert_eq!(
            normalize("9999-12-31T23:59:59+01:00").as_deref(),
            Some("9999-12-31T22:59:59.000000000Z")
        );
        assert_eq!(
            normalize("0000-01-01T00:30:00-01:00").as_deref(),
            Some("0000-01-01T01:30:00.000000000Z")
        );
    }

    #[test]
    fn drops_digits_below_a_nanosecond() {
        assert_eq!(
            normalize("2024-05-02T10:15:30.1234567891Z").as_deref(),
            Some("2024-05-02T10:15:30.123456789Z")
        );
    }

    #[test]
    fn accepts_the_space_separator_rfc3339_allows() {
        assert_eq!(
            normalize("2024-05-02 10:15:30Z").as_deref(),
            Some("2024-05-02T10:15:30.000000000Z")
        );
    }

    #[test]
    fn slow_path_agrees_with_fast_path() {
        for s in ["2024-05-29T10:15:30.1Z", "2024-02-29T23:59:59.999999Z"] {
            let fast = normalize(s);
            let slow = OffsetDateTime::parse(s, &Rfc3339).ok().map(format_nanos);
            assert_eq!(fast, slow, "{s}");
        }
    }

    #[test]
    fn formats_cloudwatch_millis() {
        assert_eq!(
            from_unix_millis(1_714_644_930_123).as_deref(),
            Some("2024-05-02T10:15:30.123000000Z")
        );
    }
}
