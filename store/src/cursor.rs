//! Where a timeline page ends.

/// The position of the last row of a page; the next page starts after it. Rows are ordered
/// by event time, then by local sequence, both descending, so a cursor stays valid while
/// new events arrive (they sort before it) and while retention removes old ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub(crate) time_ns: i64,
    pub(crate) seq: i64,
}

impl Cursor {
    /// The cursor as a URL query parameter value (`<time_ns>_<seq>`, URL-safe).
    pub fn to_param(&self) -> String {
        format!("{}_{}", self.time_ns, self.seq)
    }

    /// A cursor from [`Cursor::to_param`]'s text; `None` for anything else.
    pub fn from_param(text: &str) -> Option<Cursor> {
        let (time_ns, seq) = text.split_once('_')?;
        Some(Cursor {
            time_ns: time_ns.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_its_url_form_and_junk_is_refused() {
        let c = Cursor {
            time_ns: -5,
            seq: 42,
        };
        assert_eq!(Cursor::from_param(&c.to_param()), Some(c));
        for junk in ["", "_", "1", "1_", "_1", "a_1", "1_b", "1_2_3", "1 _2"] {
            assert_eq!(Cursor::from_param(junk), None, "{junk:?}");
        }
    }
}
