//! [`Notifier`]: what the operator calls for each stored event.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use vigil_core::event::Event;

use crate::config::NotifyConfig;
use crate::delivery;
use crate::error::NotifyError;
use crate::message::{Body, Notification};
use crate::metrics::{Metrics, Suppressed};
use crate::receivers::Receiver;
use crate::route::{HeldBack, Router};

/// How often ended rate-limit windows are looked for, to send their summaries.
const SUMMARY_TICK: Duration = Duration::from_millis(500);

/// Sends notifications about detections. Cheap to clone; all clones share the queues and
/// the de-duplication state.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("receivers", &self.inner.outboxes.len())
            .finish_non_exhaustive()
    }
}

struct Outbox {
    tx: mpsc::Sender<Notification>,
    /// Queued and in flight.
    pending: Arc<AtomicUsize>,
    /// Whether the last push found the queue full (one warning per episode, not per drop).
    full: AtomicBool,
}

struct Inner {
    router: Mutex<Router>,
    outboxes: Vec<Outbox>,
    metrics: Arc<Metrics>,
    closed: AtomicBool,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays consistent at every step, so a panic elsewhere need not stop
    // notifications.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    /// Queues `n` for `receiver`; false when the queue is full.
    fn push(&self, receiver: usize, n: Notification) -> bool {
        let Some(outbox) = self.outboxes.get(receiver) else {
            return false;
        };
        // Counted before sending so the worker can never count it down first.
        outbox.pending.fetch_add(1, Ordering::AcqRel);
        match outbox.tx.try_send(n) {
            Ok(()) => {
                outbox.full.store(false, Ordering::Relaxed);
                true
            }
            Err(e) => {
                outbox.pending.fetch_sub(1, Ordering::AcqRel);
                self.metrics.suppressed(Suppressed::QueueFull, 1);
                let n = e.into_inner();
                if !outbox.full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(receiver = %n.receiver,
                        "notification queue full (receiver down or slow); dropping notifications until it drains");
                }
                false
            }
        }
    }

    fn push_summaries(&self, router: &Router, summaries: Vec<HeldBack>) {
        let at = now_rfc3339();
        for held in summaries {
            let receiver = held.receiver;
            let n = Notification {
                route: router.route_name(held.route),
                receiver: router.receiver_name(receiver),
                body: Body::HeldBack {
                    held,
                    at: at.clone(),
                },
            };
            self.push(receiver, n);
        }
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Notifier {
    /// Checks `config`, builds the receivers and starts the delivery tasks on the current
    /// tokio runtime.
    pub fn start(config: NotifyConfig) -> Result<Notifier, NotifyError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NotifyError::NoRuntime)?;
        let receivers = config
            .receivers
            .iter()
            .map(Receiver::new)
            .collect::<Result<Vec<_>, _>>()?;
        for (cfg, r) in config.receivers.iter().zip(&receivers) {
            for file in r.secret_files() {
                // Only a warning: the Secret may be mounted or fixed before the first
                // detection, and it is read again then.
                if let Err(e) = std::fs::metadata(file) {
                    tracing::warn!(receiver = %cfg.name, file = %file.display(), error = %e.kind(),
                        "secret file not readable; deliveries to this receiver will fail until it is");
                }
            }
        }
        let metrics = Arc::new(Metrics::new(
            config.receivers.iter().map(|r| r.name.clone()),
        ));
        let (stop, stop_rx) = watch::channel(false);
        let mut outboxes = Vec::new();
        let mut tasks = Vec::new();
        for (i, receiver) in receivers.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel(config.queue_size);
            let pending = Arc::new(AtomicUsize::new(0));
            tasks.push(runtime.spawn(delivery::run(
                i,
                Arc::new(receiver),
                rx,
                pending.clone(),
                metrics.clone(),
                stop_rx.clone(),
            )));
            outboxes.push(Outbox {
                tx,
                pending,
                full: AtomicBool::new(false),
            });
        }
        let inner = Arc::new(Inner {
            router: Mutex::new(Router::new(&config)),
            outboxes,
            metrics,
            closed: AtomicBool::new(false),
            stop,
            tasks: Mutex::new(Vec::new()),
        });
        if config.routes.iter().any(|r| r.rate_limit.is_some()) {
            tasks.push(runtime.spawn(summaries(Arc::downgrade(&inner), stop_rx)));
        }
        *lock(&inner.tasks) = tasks;
        tracing::info!(
            receivers = config.receivers.len(),
            routes = config.routes.len(),
            "notifications started"
        );
        Ok(Notifier { inner })
    }

    /// Offers a stored event. Never blocks, never fails: events without detections are
    /// ignored, then each detection is matched against the routes, de-duplicated,
    /// rate-limited and queued; a full queue drops the notification and counts it.
    pub fn offer(&self, event: &Event) {
        if event.detections.is_empty() || self.inner.closed.load(Ordering::Acquire) {
            return;
        }
        let mut router = lock(&self.inner.router);
        let routed = router.route(event, Instant::now());
        let metrics = &self.inner.metrics;
        metrics.suppressed(Suppressed::Duplicate, routed.duplicates);
        metrics.suppressed(Suppressed::RateLimited, routed.rate_limited);
        if routed.planned.is_empty() {
            return;
        }
        let shared = Arc::new(event.clone());
        for p in routed.planned {
            let n = Notification {
                route: router.route_name(p.route),
                receiver: router.receiver_name(p.receiver),
                body: Body::Detection {
                    event: shared.clone(),
                    detection: p.detection,
                },
            };
            if !self.inner.push(p.receiver, n) {
                // Not sent, so a repeat later is not a duplicate of it.
                router.release(p.key_hash);
            }
        }
    }

    /// Appends the metrics in Prometheus text format: `vigil_notifications_sent_total`,
    /// `_failed_total`, `_summaries_total` (by `receiver`), `_suppressed_total` (by
    /// `reason`: `duplicate`, `rate_limited`, `queue_full`) and the gauge
    /// `vigil_notifications_queued` (by `receiver`).
    pub fn render_metrics(&self, out: &mut String) {
        let outboxes = &self.inner.outboxes;
        self.inner.metrics.render(out, |i| {
            outboxes
                .get(i)
                .map_or(0, |o| o.pending.load(Ordering::Acquire))
        });
    }

    /// Stops accepting events, queues the summaries of detections still held back by a
    /// rate limit, waits up to `grace` for the queues to be delivered, then stops the
    /// delivery tasks. Notifications still undelivered are counted as failed. Later calls
    /// return at once.
    pub async fn shutdown(&self, grace: Duration) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            let mut router = lock(&self.inner.router);
            let held = router.flush_summaries();
            self.inner.push_summaries(&router, held);
        }
        self.inner.stop.send_replace(true);
        let tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        let deadline = tokio::time::Instant::now() + grace;
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
        for (i, outbox) in self.inner.outboxes.iter().enumerate() {
            let left = outbox.pending.swap(0, Ordering::AcqRel);
            if left > 0 {
                if let Some(c) = self.inner.metrics.receiver(i) {
                    c.failed.fetch_add(left as u64, Ordering::Relaxed);
                }
                tracing::warn!(receiver = %lock(&self.inner.router).receiver_name(i), notifications = left,
                    "notifications not delivered before shutdown");
            }
        }
    }
}

/// Sends the summary of each rate-limit window that ended with detections held back.
async fn summaries(inner: Weak<Inner>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SUMMARY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let mut router = lock(&inner.router);
        let due = router.due_summaries(Instant::now());
        inner.push_summaries(&router, due);
    }
}
