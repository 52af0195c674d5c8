//! Delivery to a remote manager through a disk spool: the common half of the `wazuh`,
//! `syslog` and `http` outputs.
//!
//! ```text
//! router ──batch──► RemoteOutput::send ──encode──► Spool::append ──► ack released
//!                                                      │  (the source may commit)
//!                     sender task ◄── Spool::peek_from ┘
//!                        │ rate limit (max_eps)
//!                        ▼
//!                   Transport::deliver(messages) ──ok──► Spool::ack (trims)
//!                        └──err──► backoff, reconnect, deliver the rest again
//! ```
//!
//! A [`Transport`] knows one protocol (connect, frame, send, read the peer's answer); a
//! [`MessageEncoder`] turns an event into the bytes of one message of that protocol. Both are
//! free of spooling, retries and rate limits, which live here once.
//!
//! # Guarantees
//!
//! - A batch's acknowledgement is released when its messages are in the spool (written, and
//!   fsynced under `fsync: every_append`), not when the manager has them: a manager outage
//!   never stalls the sources until the spool is full.
//! - Messages leave in spool order; a failed delivery is retried from the first message the
//!   transport did not confirm, so order per output is kept and duplicates are limited to
//!   what the protocol cannot confirm (syslog over TCP and Wazuh's event messages have no
//!   per-message answer: what was written to a socket that then broke is sent again).
//! - The spool's position is persisted after each round of delivered records; a crash
//!   replays at most that round (up to [`SENDER_ROUND_RECORDS`] records).
//! - When the spool is full the configured [`SpoolFullPolicy`] applies, and what it drops is
//!   counted in `dropped_events`.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::{BoxFuture, Output, OutputCounters, OutputError};
use crate::event::Event;
use crate::spool::{self, SeqNo, Spool, SpoolError};

/// Records read from the spool per round; the position is persisted once per round.
pub const SENDER_ROUND_RECORDS: usize = 16;

/// Turns one event into one message of a protocol (without the transport's framing).
pub trait MessageEncoder: Send + Sync + 'static {
    /// Appends the message for `event` to `out`. An event that cannot be encoded is skipped
    /// and counted; it would fail again on every retry.
    fn encode(&self, event: &Event, out: &mut Vec<u8>) -> Result<Encoded, EncodeError>;
}

/// How an event became a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoded {
    /// As it is.
    Whole,
    /// Cut to fit the protocol's size limit (see [`trim`](crate::outputs::trim)); counted in
    /// `trimmed_events`.
    Trimmed,
}

/// Why an event could not become a message.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// JSON serialization failed.
    #[error("cannot serialize the event: {0}")]
    Json(#[from] serde_json::Error),
    /// The message does not fit the protocol even after trimming.
    #[error("message too large: {0}")]
    TooLarge(String),
}

/// Sends messages to a remote peer over one protocol.
pub trait Transport: Send + 'static {
    /// Where it sends, for logs (`tcp://10.0.0.1:1514`).
    fn describe(&self) -> String;

    /// Delivers `messages` in order, connecting first when needed. Returns when the peer has
    /// them, as far as the protocol can tell.
    fn deliver<'a>(
        &'a mut self,
        messages: &'a [&'a [u8]],
    ) -> BoxFuture<'a, Result<(), Undelivered>>;

    /// Called when there is nothing to deliver (about once a second). Protocols whose peer
    /// expects the sender to be present even when idle (a Wazuh agent shows as active only
    /// while connected) connect here; an error is logged and retried with backoff.
    fn idle(&mut self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async { Ok(()) })
    }

    /// Whether a connection is up (a gauge; connectionless transports say `true`).
    fn connected(&self) -> bool {
        true
    }

    /// Says goodbye to the peer where the protocol has a way to (at shutdown).
    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// A delivery that stopped part-way.
#[derive(Debug)]
pub struct Undelivered {
    /// How many of the messages, from the first, the peer is known to have.
    pub delivered: usize,
    /// Why it stopped.
    pub error: TransportError,
}

impl Undelivered {
    /// A failure before any message was delivered.
    pub fn none(error: TransportError) -> Undelivered {
        Undelivered {
            delivered: 0,
            error,
        }
    }
}

/// Why a transport could not deliver.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Connecting failed (refused, unreachable, DNS, timeout). Retried.
    #[error("cannot connect to {peer}: {reason}")]
    Connect {
        /// The peer.
        peer: String,
        /// Why.
        reason: String,
    },
    /// The connection broke or timed out. Retried.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// TLS setup or handshake failed. Retried (a certificate may be fixed meanwhile).
    #[error("TLS: {0}")]
    Tls(String),
    /// The peer answered that it cannot take the messages now (HTTP 429/5xx, a manager
    /// that refuses the agent). Retried.
    #[error("the peer refused: {0}")]
    Refused(String),
    /// The peer rejected `count` messages themselves, the ones right after those
    /// delivered (HTTP 400/413 ...): sending them again would fail again. They are dropped
    /// and counted in `rejected_events`, and delivery goes on with the messages after them.
    #[error("the peer rejected {count} message(s): {reason}")]
    Rejected {
        /// What the peer said.
        reason: String,
        /// How many messages it rejected (at least one is dropped).
        count: usize,
    },
}

/// What to do when the spool reaches `max_bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpoolFullPolicy {
    /// Hold new batches back (the sources wait, their positions do not advance): nothing is
    /// lost, and a long outage ends up pausing collection.
    #[default]
    Block,
    /// Refuse new batches; their events are counted in `dropped_events` and their positions
    /// advance, so they are lost.
    DropNewest,
    /// Delete the oldest unsent segments to make room; their events are counted in
    /// `dropped_events` (by record) and lost.
    DropOldest,
}

/// When the spool calls fsync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpoolFsync {
    /// After every batch, before acknowledging it: a power loss loses nothing acknowledged.
    #[default]
    EveryAppend,
    /// Never: a process crash loses nothing, a power loss can lose the last seconds.
    Never,
}

/// The spool of one remote output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpoolSettings {
    /// The spool's directory. Default: `<state_dir>/spool/<output name>`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Cap on the spool's size on disk, in MiB. Default 256.
    #[serde(default = "default_spool_max_mib")]
    pub max_mib: u64,
    /// What happens at the cap.
    #[serde(default)]
    pub when_full: SpoolFullPolicy,
    /// When to fsync.
    #[serde(default)]
    pub fsync: SpoolFsync,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        SpoolSettings {
            dir: None,
            max_mib: default_spool_max_mib(),
            when_full: SpoolFullPolicy::default(),
            fsync: SpoolFsync::default(),
        }
    }
}

fn default_spool_max_mib() -> u64 {
    256
}

impl SpoolSettings {
    /// The spool configuration. Segments are an eighth of the cap (at most 8 MiB, at least
    /// 64 KiB), so dropping the oldest segment frees a bounded share.
    pub fn spool_config(&self) -> spool::SpoolConfig {
        let max_bytes = self.max_mib.max(1) * 1024 * 1024;
        let segment_bytes = (max_bytes / 8).clamp(64 * 1024, spool::DEFAULT_SEGMENT_BYTES);
        spool::SpoolConfig {
            segment_bytes,
            max_bytes,
            fsync: match self.fsync {
                SpoolFsync::EveryAppend => spool::FsyncPolicy::EveryAppend,
                SpoolFsync::Never => spool::FsyncPolicy::Never,
            },
            full: match self.when_full {
                SpoolFullPolicy::Block => spool::FullPolicy::Block,
                SpoolFullPolicy::DropNewest => spool::FullPolicy::DropNewest,
                SpoolFullPolicy::DropOldest => spool::FullPolicy::DropOldest,
            },
        }
    }
}

/// Delivery settings shared by the remote outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliverySettings {
    /// Largest number of messages sent per second; `None` for no limit.
    pub max_eps: Option<u32>,
    /// First retry delay; doubled per failure up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Largest retry delay.
    pub max_backoff: Duration,
    /// How long a shutdown waits for the spool to drain before leaving the rest for the next
    /// start.
    pub drain_timeout: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            max_eps: None,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// An output that spools batches and delivers them with a [`Transport`].
pub struct RemoteOutput {
    name: String,
    encoder: Arc<dyn MessageEncoder>,
    spool: Arc<Mutex<Spool>>,
    counters: Arc<OutputCounters>,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    sender: Option<JoinHandle<()>>,
    settings: DeliverySettings,
    /// The spool's largest record.
    max_record_bytes: u64,
    /// A batch whose first records were appended before the spool filled up, and how many.
    partial_batch: Option<(BatchKey, usize)>,
    /// When dropped events were last logged, and those dropped since: a full spool drops
    /// on every batch, and one warning per [`DROP_LOG_INTERVAL`] says as much.
    drop_log: (Option<std::time::Instant>, u64),
}

/// Shortest time between two warnings about events a full spool dropped.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, PartialEq, Eq)]
struct BatchKey {
    first: String,
    last: String,
    len: usize,
}

impl RemoteOutput {
    /// Opens the spool in `dir` and starts the sender task. Must be called inside a Tokio
    /// runtime. Records left in the spool by a previous run are delivered first.
    pub fn start(
        name: String,
        dir: PathBuf,
        spool: &SpoolSettings,
        encoder: Arc<dyn MessageEncoder>,
        transport: Box<dyn Transport>,
        settings: DeliverySettings,
    ) -> Result<RemoteOutput, OutputError> {
        std::fs::create_dir_all(&dir)?;
        let spool = Spool::open(&dir, spool.spool_config()).map_err(OutputError::Spool)?;
        let max_record_bytes = spool.config().max_record_bytes();
        let pending = spool.stats();
        if pending.records > 0 {
            tracing::info!(output = %name, records = pending.records, bytes = pending.bytes,
                "spool holds records from a previous run; delivering them first");
        }
        let spool = Arc::new(Mutex::new(spool));
        let counters = Arc::new(OutputCounters::default());
        let wake = Arc::new(Notify::new());
        let (stop, stop_rx) = watch::channel(false);
        let sender = tokio::spawn(run_sender(Sender {
            name: name.clone(),
            spool: spool.clone(),
            transport,
            counters: counters.clone(),
            wake: wake.clone(),
            stop: stop_rx,
            settings,
        }));
        let out = RemoteOutput {
            name,
            encoder,
            spool,
            counters,
            wake,
            stop,
            sender: Some(sender),
            settings,
            max_record_bytes,
            partial_batch: None,
            drop_log: (None, 0),
        };
        out.publish_spool_stats();
        Ok(out)
    }

    fn publish_spool_stats(&self) {
        let stats = lock(&self.spool).stats();
        publish(&self.counters, &stats);
    }
}

fn lock(spool: &Mutex<Spool>) -> std::sync::MutexGuard<'_, Spool> {
    // A panic while holding the lock cannot leave the spool inconsistent on disk (every
    // mutation is ordered write-then-state), so a poisoned lock is still usable.
    spool.lock().unwrap_or_else(PoisonError::into_inner)
}

fn publish(counters: &OutputCounters, stats: &spool::SpoolStats) {
    counters.spool_bytes.store(stats.bytes, Relaxed);
    counters.spool_records.store(stats.records, Relaxed);
    counters
        .dropped_records
        .store(stats.dropped_oldest + stats.dropped_newest, Relaxed);
}

/// Appends `message` to a spool record: `u32 LE length ‖ bytes`.
fn push_message(record: &mut Vec<u8>, message: &[u8]) {
    // Messages are bounded far below 4 GiB by every encoder (the spool refuses records over
    // its segment size anyway), so the length fits.
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(message);
}

/// Splits a spool record into its messages. The spool checksums records, so a malformed
/// record means a bug or a foreign file; what cannot be split is reported, not guessed.
fn split_messages(record: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    let mut rest = record;
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(format!("{} stray bytes at the end", rest.len()));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(format!("message of {len} bytes, {} bytes left", tail.len()));
        }
        let (msg, tail) = tail.split_at(len);
        out.push(msg);
        rest = tail;
    }
    Ok(out)
}

impl Output for RemoteOutput {
    fn name(&self) -> &str {
        &self.name
    }

    fn counters(&self) -> Option<Arc<OutputCounters>> {
        Some(self.counters.clone())
    }

    fn send<'a>(&'a mut self, events: &'a [Event]) -> BoxFuture<'a, Result<(), OutputError>> {
        Box::pin(async move {
            // One record per batch, unless the batch is larger than a spool record may be.
            let max_record = usize::try_from(self.max_record_bytes).unwrap_or(usize::MAX);
            let mut records: Vec<(Vec<u8>, u64)> = vec![(Vec::new(), 0)];
            let mut message = Vec::with_capacity(1024);
            for event in events {
                message.clear();
                match self.encoder.encode(event, &mut message) {
                    Ok(_) if message.len() + 4 > max_record => {
                        self.counters.encode_errors.fetch_add(1, Relaxed);
                        tracing::warn!(output = %self.name, event = %event.id, bytes = message.len(),
                            "event skipped: larger than a spool record (raise spool.max_mib)");
                    }
                    Ok(how) => {
                        if how == Encoded::Trimmed {
                            self.counters.trimmed_events.fetch_add(1, Relaxed);
                        }
                        if records
                            .last()
                            .is_some_and(|(r, _)| r.len() + message.len() + 4 > max_record)
                        {
                            records.push((Vec::new(), 0));
                        }
                        if let Some((record, n)) = records.last_mut() {
                            push_message(record, &message);
                            *n += 1;
                        }
                    }
                    Err(e) => {
                        self.counters.encode_errors.fetch_add(1, Relaxed);
                        tracing::warn!(output = %self.name, event = %event.id, error = %e,
                            "event skipped: it cannot be encoded for this output");
                    }
                }
            }
            records.retain(|(_, n)| *n > 0);
            // The router retries a batch that failed; records of it that were appended before
            // the failure are not appended again. Event ids identify the batch.
            let batch = BatchKey {
                first: events.first().map(|e| e.id.clone()).unwrap_or_default(),
                last: events.last().map(|e| e.id.clone()).unwrap_or_default(),
                len: events.len(),
            };
            let skip = match self.partial_batch.take() {
                Some((b, appended)) if b == batch => appended,
                _ => 0,
            };
            for (appended, (record, n)) in records.into_iter().enumerate().skip(skip) {
                let spool = self.spool.clone();
                let counters = self.counters.clone();
                let result = tokio::task::spawn_blocking(move || {
                    let mut spool = lock(&spool);
                    let result = spool.append(&record);
                    publish(&counters, &spool.stats());
                    result
                })
                .await
                .map_err(|e| OutputError::Io(std::io::Error::other(e)))?;
                match result {
                    Ok(_) => {
                        self.counters.spooled_events.fetch_add(n, Relaxed);
                        self.wake.notify_one();
                    }
                    Err(SpoolError::DroppedNewest) => {
                        self.counters.dropped_events.fetch_add(n, Relaxed);
                        let (last, unlogged) = &mut self.drop_log;
                        *unlogged += n;
                        if last.is_none_or(|t| t.elapsed() >= DROP_LOG_INTERVAL) {
                            tracing::warn!(output = %self.name, events = *unlogged,
                                total = self.counters.dropped_events.load(Relaxed),
                                "spool full: events dropped (when_full: drop_newest)");
                            *last = Some(std::time::Instant::now());
                            *unlogged = 0;
                        }
                    }
                    // Full under `block`: the router retries with backoff, holding the batch
                    // and its ack, which is the backpressure the policy promises.
                    Err(e @ SpoolError::Full { .. }) => {
                        self.partial_batch = Some((batch, appended));
                        return Err(OutputError::Io(std::io::Error::other(e.to_string())));
                    }
                    Err(e) => return Err(OutputError::Spool(e)),
                }
            }
            Ok(())
        })
    }

    fn flush(&mut self) -> BoxFuture<'_, Result<(), OutputError>> {
        Box::pin(async move {
            let Some(mut sender) = self.sender.take() else {
                return Ok(());
            };
            // Give the sender a moment to empty the spool; what is left stays on disk and is
            // delivered after the next start.
            let drained = tokio::time::timeout(self.settings.drain_timeout, async {
                loop {
                    if lock(&self.spool).stats().records == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .is_ok();
            let _ = self.stop.send(true);
            if tokio::time::timeout(Duration::from_secs(5), &mut sender)
                .await
                .is_err()
            {
                sender.abort();
            }
            if !drained {
                let left = lock(&self.spool).stats();
                tracing::warn!(output = %self.name, records = left.records, bytes = left.bytes,
                    "stopping with undelivered records in the spool; they are sent after the next start");
            }
            Ok(())
        })
    }
}

struct Sender {
    name: String,
    spool: Arc<Mutex<Spool>>,
    transport: Box<dyn Transport>,
    counters: Arc<OutputCounters>,
    wake: Arc<Notify>,
    stop: watch::Receiver<bool>,
    settings: DeliverySettings,
}

/// A token bucket refilled at `rate` per second, holding at most one second of tokens.
struct RateLimit {
    rate: f64,
    tokens: f64,
    last: tokio::time::Instant,
}

impl RateLimit {
    fn new(rate: u32) -> RateLimit {
        RateLimit {
            rate: f64::from(rate.max(1)),
            tokens: f64::from(rate.max(1)),
            last: tokio::time::Instant::now(),
        }
    }

    /// Waits until at least one message may go; returns how many may go now (≤ `want`).
    async fn take(&mut self, want: usize) -> usize {
        loop {
            let now = tokio::time::Instant::now();
            let elapsed = now.duration_since(self.last).as_secs_f64();
            self.last = now;
            self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
            if self.tokens >= 1.0 {
                // Truncation is the point: whole messages only.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let n = (self.tokens.floor() as usize).min(want);
                self.tokens -= n as f64;
                return n;
            }
            let wait = (1.0 - self.tokens) / self.rate;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

async fn run_sender(mut s: Sender) {
    let mut limit = s.settings.max_eps.map(RateLimit::new);
    let mut backoff = s.settings.initial_backoff;
    // The last sequence number delivered but not yet acknowledged to the spool, and how many
    // messages of the record after it were delivered before a failure.
    let mut delivered_upto: Option<SeqNo> = None;
    let mut partial: usize = 0;
    loop {
        if *s.stop.borrow() {
            break;
        }
        let spool = s.spool.clone();
        let after = delivered_upto;
        let peeked = tokio::task::spawn_blocking(move || {
            lock(&spool).peek_from(after, SENDER_ROUND_RECORDS)
        })
        .await;
        let records = match peeked {
            Ok(Ok(records)) => records,
            Ok(Err(e)) => {
                tracing::error!(output = %s.name, error = %e, "cannot read the spool; retrying");
                if sleep_or_stop(&mut s.stop, backoff).await {
                    break;
                }
                backoff = (backoff * 2).min(s.settings.max_backoff);
                continue;
            }
            Err(_) => break,
        };
        if records.is_empty() {
            let idle = s.transport.idle().await;
            s.counters
                .connected
                .store(u64::from(s.transport.connected()), Relaxed);
            if let Err(e) = idle {
                tracing::warn!(output = %s.name, peer = %s.transport.describe(), error = %e,
                    retry_in = ?backoff, "cannot reach the peer");
                if sleep_or_stop(&mut s.stop, backoff).await {
                    break;
                }
                backoff = (backoff * 2).min(s.settings.max_backoff);
                continue;
            }
            backoff = s.settings.initial_backoff;
            tokio::select! {
                _ = s.wake.notified() => {}
                // The spool may also have been written before this task waited.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                changed = s.stop.changed() => {
                    // An error: the output was dropped without a flush; nothing will wake
                    // this task again.
                    if changed.is_err() {
                        break;
                    }
                }
            }
            continue;
        }
        let mut stopped = false;
        for (seq, record) in &records {
            let counters = &s.counters;
            let messages = match split_messages(record) {
                Ok(m) => m,
                Err(reason) => {
                    counters.dropped_records.fetch_add(1, Relaxed);
                    tracing::error!(output = %s.name, seq, %reason, "unreadable spool record skipped");
                    delivered_upto = Some(*seq);
                    partial = 0;
                    continue;
                }
            };
            while partial < messages.len() {
                let want = messages.len() - partial;
                let n = match limit.as_mut() {
                    Some(l) => l.take(want).await,
                    None => want,
                };
                let chunk = &messages[partial..partial + n];
                let result = s.transport.deliver(chunk).await;
                counters
                    .connected
                    .store(u64::from(s.transport.connected()), Relaxed);
                match result {
                    Ok(()) => {
                        partial += n;
                        counters.events_delivered.fetch_add(n as u64, Relaxed);
                        backoff = s.settings.initial_backoff;
                    }
                    Err(Undelivered {
                        delivered,
                        error: TransportError::Rejected { reason, count },
                    }) => {
                        let delivered = delivered.min(n);
                        let rejected = count.max(1).min(n - delivered);
                        counters
                            .events_delivered
                            .fetch_add(delivered as u64, Relaxed);
                        counters.rejected_events.fetch_add(rejected as u64, Relaxed);
                        tracing::error!(output = %s.name, peer = %s.transport.describe(), events = rejected, %reason,
                            "the peer rejected events; they are dropped");
                        partial += delivered + rejected;
                    }
                    Err(Undelivered { delivered, error }) => {
                        let delivered = delivered.min(n);
                        partial += delivered;
                        counters
                            .events_delivered
                            .fetch_add(delivered as u64, Relaxed);
                        counters.retries.fetch_add(1, Relaxed);
                        if delivered > 0 {
                            // The peer took part of it: it is up, so start the backoff over.
                            backoff = s.settings.initial_backoff;
                        }
                        tracing::warn!(output = %s.name, peer = %s.transport.describe(), error = %error,
                            retry_in = ?backoff, "delivery failed; retrying");
                        if sleep_or_stop(&mut s.stop, backoff).await {
                            stopped = true;
                            break;
                        }
                        backoff = (backoff * 2).min(s.settings.max_backoff);
                    }
                }
            }
            if stopped {
                break;
            }
            delivered_upto = Some(*seq);
            partial = 0;
        }
        if let Some(upto) = delivered_upto {
            let spool = s.spool.clone();
            let counters = s.counters.clone();
            let acked = tokio::task::spawn_blocking(move || {
                let mut spool = lock(&spool);
                let r = spool.ack(upto);
                publish(&counters, &spool.stats());
                r
            })
            .await;
            if let Ok(Err(e)) = acked {
                // Not fatal: the records were delivered; at worst they are sent again after a
                // restart.
                tracing::error!(output = %s.name, error = %e, "cannot persist the spool position");
            }
        }
        if stopped {
            break;
        }
    }
    s.transport.close().await;
}

/// Sleeps for `d`; returns true when asked to stop meanwhile.
async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

#[cfg(test)]
mod tests;
