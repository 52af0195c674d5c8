//! Where events go. Every output implements [`Output`]; the router drives it.
//!
//! An output returns from [`Output::send`] only when the events are durable on its side
//! (written and flushed for `file` and `stdout`), because returning releases the batch's
//! acknowledgement and lets the source commit its position.

mod file;
mod null;
mod stdout;
pub mod wazuh;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::Event;

pub use file::{FileOutput, FileOutputConfig, FsyncPolicy};
pub use null::NullOutput;
pub use stdout::StdoutOutput;

/// A boxed future, so that outputs can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A sink for events.
pub trait Output: Send {
    /// The output's name in logs and metrics.
    fn name(&self) -> &str;

    /// Writes `events`; returns when they are durable on this output's side.
    fn send<'a>(&'a mut self, events: &'a [Event]) -> BoxFuture<'a, Result<(), OutputError>>;

    /// Flushes what is buffered (at shutdown).
    fn flush(&mut self) -> BoxFuture<'_, Result<(), OutputError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Why an output could not write.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// An I/O error; retried.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// An event could not be encoded; not retried (it would fail again).
    #[error("cannot encode an event: {0}")]
    Encode(#[from] serde_json::Error),
}

impl OutputError {
    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, OutputError::Io(_))
    }
}

/// Counters of one output.
#[derive(Debug, Default)]
pub struct OutputCounters {
    /// Events written.
    pub events_sent: AtomicU64,
    /// Batches written.
    pub batches_sent: AtomicU64,
    /// Write attempts retried.
    pub retries: AtomicU64,
    /// Batches given up on (their positions are not committed).
    pub batches_failed: AtomicU64,
}

/// An output in the agent's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutputConfig {
    /// JSON lines on standard output.
    Stdout,
    /// JSON lines appended to a file.
    File(FileOutputConfig),
    /// Discards events (benchmarks, dry runs).
    Null,
}

impl OutputConfig {
    /// Builds the output.
    pub fn build(&self) -> Result<Box<dyn Output>, OutputError> {
        Ok(match self {
            OutputConfig::Stdout => Box::new(StdoutOutput::new()),
            OutputConfig::File(cfg) => Box::new(FileOutput::open(cfg.clone())?),
            OutputConfig::Null => Box::new(NullOutput::default()),
        })
    }
}

/// Appends `event` as one JSON line to `out`.
pub fn encode_json_line(event: &Event, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    serde_json::to_writer(&mut *out, event)?;
    out.push(b'\n');
    Ok(())
}
