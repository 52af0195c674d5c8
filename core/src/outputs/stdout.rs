//! JSON lines on standard output.

use std::io::Write;

use super::{BoxFuture, Output, OutputError, encode_json_line};
use crate::event::Event;

/// Writes each event as one JSON line to standard output, flushed per batch.
#[derive(Debug, Default)]
pub struct StdoutOutput {
    buf: Vec<u8>,
}

impl StdoutOutput {
    /// A stdout output.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Output for StdoutOutput {
    fn name(&self) -> &str {
        "stdout"
    }

    fn send<'a>(&'a mut self, events: &'a [Event]) -> BoxFuture<'a, Result<(), OutputError>> {
        Box::pin(async move {
            self.buf.clear();
            for e in events {
                encode_json_line(e, &mut self.buf)?;
            }
            // A batch is at most a few MiB; writing it to a pipe blocks only as long as the
            // reader is slow, which is the backpressure we want.
            let mut out = std::io::stdout().lock();
            out.write_all(&self.buf)?;
            out.flush()?;
            Ok(())
        })
    }
}
