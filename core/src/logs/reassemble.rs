//! Partial lines joined into messages, per stream, with a cap.

use super::{LogLine, Stream};

/// One reassembled message. Borrows from the line just pushed when it needed no joining,
/// else from the [`Reassembler`]'s buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The time of its first part, as written.
    pub time: &'a str,
    /// Which stream.
    pub stream: Stream,
    /// The text, at most the reassembler's cap.
    pub text: &'a [u8],
    /// The message was longer than the cap (`original_len` bytes) and `text` is its
    /// beginning, or it never got its final part.
    pub cut: bool,
    /// Bytes of text in all its parts.
    pub original_len: u64,
    /// Position of its first part (a byte offset in the file).
    pub offset: u64,
}

#[derive(Debug, Default)]
struct Pending {
    /// Between a first `P` part and its final part.
    active: bool,
    /// The last message was returned from `buf`: clear it before the next part.
    returned: bool,
    time: String,
    buf: Vec<u8>,
    original_len: u64,
    offset: u64,
}

impl Pending {
    fn append(&mut self, part: &[u8], max: usize) {
        let room = max.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&part[..part.len().min(room)]);
        self.original_len += part.len() as u64;
    }

    fn message(&mut self, stream: Stream, cut: bool) -> Message<'_> {
        self.active = false;
        self.returned = true;
        Message {
            time: &self.time,
            stream,
            text: &self.buf,
            cut: cut || self.original_len > self.buf.len() as u64,
            original_len: self.original_len,
            offset: self.offset,
        }
    }
}

/// Joins the parts of a message (CRI `P` lines, json-file parts without a newline) until
/// its final part, separately for stdout and stderr, as the runtimes interleave them.
///
/// Memory: at most `max_message_bytes` per stream, whatever the number of parts; the rest
/// of a longer message is counted in [`Message::original_len`] and dropped, and the message
/// is marked [`cut`](Message::cut).
#[derive(Debug)]
pub struct Reassembler {
    max: usize,
    streams: [Pending; 2],
}

impl Reassembler {
    /// A reassembler keeping at most `max_message_bytes` (at least 1) of a message.
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            max: max_message_bytes.max(1),
            streams: Default::default(),
        }
    }

    /// Takes the line found at `offset`; returns the message it completes, if any.
    pub fn push<'a>(&'a mut self, line: &'a LogLine<'_>, offset: u64) -> Option<Message<'a>> {
        let max = self.max;
        let pending = &mut self.streams[line.stream.index()];
        if pending.returned {
            pending.returned = false;
            pending.buf.clear();
        }
        if !pending.active {
            if !line.partial {
                // The common case: a whole line, passed through without a copy.
                let text: &[u8] = &line.content;
                let kept = &text[..text.len().min(max)];
                return Some(Message {
                    time: &line.time,
                    stream: line.stream,
                    text: kept,
                    cut: kept.len() < text.len(),
                    original_len: text.len() as u64,
                    offset,
                });
            }
            pending.active = true;
            pending.time.clear();
            pending.time.push_str(&line.time);
            pending.original_len = 0;
            pending.offset = offset;
        }
        pending.append(&line.content, max);
        if line.partial {
            return None;
        }
        Some(pending.message(line.stream, false))
    }

    /// Ends an unfinished message of `stream` (its file ended or went away for good): it
    /// is returned [`cut`](Message::cut).
    pub fn finish(&mut self, stream: Stream) -> Option<Message<'_>> {
        let pending = &mut self.streams[stream.index()];
        if !pending.active {
            return None;
        }
        Some(pending.message(stream, true))
    }

    /// The position of the first part of the oldest unfinished message: a checkpoint must
    /// not pass it, or the parts before it would be lost on a restart.
    pub fn pending_offset(&self) -> Option<u64> {
        self.streams
            .iter()
            .filter(|p| p.active)
            .map(|p| p.offset)
            .min()
    }

    /// Whether a message is unfinished on some stream.
    pub fn is_pending(&self) -> bool {
        self.streams.iter().any(|p| p.active)
    }

    /// Forgets unfinished messages (their file was truncated).
    pub fn reset(&mut self) {
        for p in &mut self.streams {
            p.active = false;
            p.returned = false;
            p.buf.clear();
        }
    }
}
