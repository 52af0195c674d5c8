//! Splits a byte stream into lines while holding at most `max_line_bytes` of
//! the pending line, whatever the length of the line.

/// What a newline completed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Completed {
    /// A line to emit. `original_len` is `Some` (the full length without the
    /// newline) if the line was cut to the limit.
    Line {
        offset: u64,
        end: u64,
        bytes: Vec<u8>,
        original_len: Option<u64>,
    },
    /// Bytes from the middle of a line up to its newline, not a line of ours.
    Skipped { offset: u64, end: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Collecting the line.
    Keep,
    /// The line passed the limit; only its length is counted.
    Overflow { len: u64 },
    /// Reading began inside a line; everything up to the newline is dropped.
    Skip,
}

#[derive(Debug)]
pub(crate) struct LineAssembler {
    max: usize,
    buf: Vec<u8>,
    mode: Mode,
    start: u64,
}

impl LineAssembler {
    /// An assembler whose next byte is at file offset `start`; `skip` means
    /// that byte is inside a line that is not ours.
    pub(crate) fn new(max: usize, start: u64, skip: bool) -> Self {
        let mut assembler = Self {
            max,
            buf: Vec::new(),
            mode: Mode::Keep,
            start,
        };
        assembler.reset(start, skip);
        assembler
    }

    /// Forgets the pending line and starts over at `start`.
    pub(crate) fn reset(&mut self, start: u64, skip: bool) {
        self.buf = Vec::new();
        self.start = start;
        self.mode = if skip { Mode::Skip } else { Mode::Keep };
    }

    /// Offset of the pending line: everything before it has been emitted or
    /// deliberately skipped.
    pub(crate) fn line_start(&self) -> u64 {
        self.start
    }

    /// Whether bytes of a line of ours are held back waiting for a newline.
    pub(crate) fn has_partial(&self, read_pos: u64) -> bool {
        self.mode != Mode::Skip && read_pos > self.start
    }

    /// Bytes of the pending line currently held in memory.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    /// Feeds `data`, which starts at file offset `at` right after the bytes
    /// fed before. Stops after the first newline and returns the bytes
    /// consumed (including the newline) and what it completed; without a
    /// newline, consumes everything.
    pub(crate) fn feed(&mut self, data: &[u8], at: u64) -> (usize, Option<Completed>) {
        let Some(newline) = data.iter().position(|&b| b == b'\n') else {
            self.absorb(data);
            return (data.len(), None);
        };
        self.absorb(&data[..newline]);
        let end = at + newline as u64 + 1;
        let offset = self.start;
        let completed = match self.mode {
            Mode::Keep => Completed::Line {
                offset,
                end,
                bytes: std::mem::take(&mut self.buf),
                original_len: None,
            },
            Mode::Overflow { len } => Completed::Line {
                offset,
                end,
                bytes: std::mem::take(&mut self.buf),
                original_len: Some(len),
            },
            Mode::Skip => Completed::Skipped { offset, end },
        };
        self.mode = Mode::Keep;
        self.start = end;
        (newline + 1, Some(completed))
    }

    fn absorb(&mut self, segment: &[u8]) {
        match &mut self.mode {
            Mode::Keep => {
                let room = self.max - self.buf.len();
                if segment.len() <= room {
                    self.buf.reserve_exact(segment.len());
                    self.buf.extend_from_slice(segment);
                } else {
                    self.buf.reserve_exact(room);
                    self.buf.extend_from_slice(&segment[..room]);
                    self.mode = Mode::Overflow {
                        len: (self.max + segment.len() - room) as u64,
                    };
                }
            }
            Mode::Overflow { len } => *len += segment.len() as u64,
            Mode::Skip => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(a: &mut LineAssembler, mut data: &[u8], mut at: u64) -> Vec<Completed> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let (n, c) = a.feed(data, at);
            out.extend(c);
            data = &data[n..];
            at += n as u64;
        }
        out
    }

    #[test]
    fn splits_lines_and_holds_the_partial_one() {
        let mut a = LineAssembler::new(100, 0, false);
        let out = feed_all(&mut a, b"ab\ncd", 0);
        assert_eq!(
            out,
            vec![Completed::Line {
                offset: 0,
                end: 3,
                bytes: b"ab".to_vec(),
                original_len: None
            }]
        );
        assert!(a.has_partial(5));
        let out = feed_all(&mut a, b"e\n", 5);
        assert_eq!(
            out,
            vec![Completed::Line {
                offset: 3,
                end: 7,
                bytes: b"cde".to_vec(),
                original_len: None
            }]
        );
        assert!(!a.has_partial(7));
    }

    #[test]
    fn cuts_long_lines_without_buffering_them() {
        let mut a = LineAssembler::new(4, 0, false);
        let mut out = feed_all(&mut a, b"abcd\n", 0);
        for i in 0..1000u64 {
            out.extend(feed_all(&mut a, &[b'x'; 1000], 5 + i * 1000));
            assert!(a.buffered() <= 4);
        }
        out.extend(feed_all(&mut a, b"yz\nok\n", 1_000_005));
        assert_eq!(
            out,
            vec![
                Completed::Line {
                    offset: 0,
                    end: 5,
                    bytes: b"abcd".to_vec(),
                    original_len: None
                },
                Completed::Line {
                    offset: 5,
                    end: 1_000_008,
                    bytes: b"xxxx".to_vec(),
                    original_len: Some(1_000_002)
                },
                Completed::Line {
                    offset: 1_000_008,
                    end: 1_000_011,
                    bytes: b"ok".to_vec(),
                    original_len: None
                },
            ]
        );
    }

    #[test]
    fn skip_mode_drops_up_to_the_newline() {
        let mut a = LineAssembler::new(10, 7, true);
        assert!(!a.has_partial(9));
        let out = feed_all(&mut a, b"xx\nline\n", 7);
        assert_eq!(
            out,
            vec![
                Completed::Skipped { offset: 7, end: 10 },
                Completed::Line {
                    offset: 10,
                    end: 15,
                    bytes: b"line".to_vec(),
                    original_len: None
                }
            ]
        );
    }
}
