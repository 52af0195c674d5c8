//! The output that discards everything.

use super::{BoxFuture, Output, OutputError};
use crate::event::Event;

/// Discards events, counting them; for benchmarks and dry runs.
#[derive(Debug, Default)]
pub struct NullOutput {
    /// Events discarded.
    pub events: u64,
}

impl Output for NullOutput {
    fn name(&self) -> &str {
        "null"
    }

    fn send<'a>(&'a mut self, events: &'a [Event]) -> BoxFuture<'a, Result<(), OutputError>> {
        self.events += events.len() as u64;
        Box::pin(async { Ok(()) })
    }
}
