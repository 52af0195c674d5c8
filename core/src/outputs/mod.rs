//! Where events go. Every output implements [`Output`]; the router drives it.
//!
//! An output returns from [`Output::send`] only when the events are durable on its side
//! (written and flushed for `file` and `stdout`), because returning releases the batch's
//! acknowledgement and lets the source commit its position.

mod file;
pub mod http;
mod null;
pub mod remote;
mod stdout;
pub mod syslog;
pub mod tls;
pub mod trim;
pub mod vigil;
pub mod wazuh;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
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

    /// The output's own counters, for outputs that count more than the router does (the
    /// remote outputs' spool and delivery figures). The router uses them instead of fresh
    /// ones, so one set of counters describes the output.
    fn counters(&self) -> Option<Arc<OutputCounters>> {
        None
    }

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
    /// The spool refused (misconfiguration, a locked or corrupt directory); not retried.
    #[error("spool: {0}")]
    Spool(#[from] crate::spool::SpoolError),
    /// The output's configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
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
    /// Remote outputs: events written to the spool.
    pub spooled_events: AtomicU64,
    /// Remote outputs: events the peer has (as far as its protocol says).
    pub events_delivered: AtomicU64,
    /// Remote outputs: events dropped by the spool's `when_full` policy (`drop_newest`).
    pub dropped_events: AtomicU64,
    /// Remote outputs: spool records dropped (`drop_oldest`, or unreadable).
    pub dropped_records: AtomicU64,
    /// Remote outputs: events the peer rejected as invalid (not retried).
    pub rejected_events: AtomicU64,
    /// Events that could not be encoded for this output.
    pub encode_errors: AtomicU64,
    /// Remote outputs: events cut to fit the protocol's message size (marked as such).
    pub trimmed_events: AtomicU64,
    /// Remote outputs: bytes in the spool (gauge).
    pub spool_bytes: AtomicU64,
    /// Remote outputs: records (batches) in the spool not yet delivered (gauge).
    pub spool_records: AtomicU64,
    /// Batches waiting in the router's queue for this output (gauge).
    pub queued_batches: AtomicU64,
    /// Remote outputs: 1 while connected to the peer (gauge).
    pub connected: AtomicU64,
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
    /// A Wazuh manager, as a Wazuh agent (enrollment, secure messages on TCP 1514).
    Wazuh(wazuh::WazuhOutputConfig),
    /// RFC 5424 syslog over TCP, TLS or UDP.
    Syslog(syslog::SyslogOutputConfig),
    /// Batched NDJSON POSTs to an HTTP(S) endpoint.
    Http(http::HttpOutputConfig),
    /// The Vigil operator's console store (an http output to its ingest endpoint).
    Vigil(vigil::VigilOutputConfig),
}

/// What building an output may need from the agent.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The agent's state directory: spools and keys live under it.
    pub state_dir: std::path::PathBuf,
    /// The node name (the Wazuh agent name by default).
    pub node: String,
}

impl BuildContext {
    /// The default spool directory of the output named `name`.
    pub fn spool_dir(&self, name: &str) -> std::path::PathBuf {
        self.state_dir.join("spool").join(name)
    }
}

impl OutputConfig {
    /// The output's name in logs, metrics and its spool directory.
    pub fn name(&self) -> String {
        match self {
            OutputConfig::Stdout => "stdout".into(),
            OutputConfig::File(cfg) => format!("file:{}", cfg.path.display()),
            OutputConfig::Null => "null".into(),
            OutputConfig::Wazuh(cfg) => cfg.name.clone().unwrap_or_else(|| "wazuh".into()),
            OutputConfig::Syslog(cfg) => cfg.name.clone().unwrap_or_else(|| "syslog".into()),
            OutputConfig::Http(cfg) => cfg.name.clone().unwrap_or_else(|| "http".into()),
            OutputConfig::Vigil(cfg) => cfg.name.clone().unwrap_or_else(|| "vigil".into()),
        }
    }

    /// Builds the output. Remote outputs open their spool and start their sender task, so
    /// this must run inside a Tokio runtime.
    pub fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Output>, OutputError> {
        Ok(match self {
            OutputConfig::Stdout => Box::new(StdoutOutput::new()),
            OutputConfig::File(cfg) => Box::new(FileOutput::open(cfg.clone())?),
            OutputConfig::Null => Box::new(NullOutput::default()),
            OutputConfig::Wazuh(cfg) => wazuh::build(cfg, &self.name(), ctx)?,
            OutputConfig::Syslog(cfg) => syslog::build(cfg, &self.name(), ctx)?,
            OutputConfig::Http(cfg) => http::build(cfg, &self.name(), ctx)?,
            OutputConfig::Vigil(cfg) => vigil::build(cfg, &self.name(), ctx)?,
        })
    }
}

/// Builds every output, refusing two with the same name (they would share a spool).
pub fn build_all(
    configs: &[OutputConfig],
    ctx: &BuildContext,
) -> Result<Vec<Box<dyn Output>>, OutputError> {
    let mut names = std::collections::BTreeSet::new();
    for cfg in configs {
        let name = cfg.name();
        if !names.insert(name.clone()) {
            return Err(OutputError::Config(format!(
                "two outputs are named `{name}`: give each a distinct `name`"
            )));
        }
    }
    configs.iter().map(|c| c.build(ctx)).collect()
}

/// Appends `event` as one JSON line to `out`.
pub fn encode_json_line(event: &Event, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    serde_json::to_writer(&mut *out, event)?;
    out.push(b'\n');
    Ok(())
}
