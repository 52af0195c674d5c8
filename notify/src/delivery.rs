//! Delivery: one task per receiver takes notifications from its bounded queue and sends
//! them one at a time, with retries.
//!
//! One at a time per receiver bounds the concurrency to the number of receivers, keeps
//! notifications in order, and means a receiver that is down only fills its own queue.
//! A notification is tried at most [`MAX_ATTEMPTS`] times: after a failure that may pass
//! (connection error, timeout, 408, 429, 5xx, SMTP 4xx) it waits 1 s, 2 s, 4 s,
//! 8 s ([`FIRST_BACKOFF`] doubling, at most [`MAX_BACKOFF`]), or what the receiver asked for
//! in `Retry-After` (at most [`RETRY_AFTER_CAP`]). So a notification is given up on about
//! 15 s plus the request timeouts after its first attempt, unless `Retry-After` asks for
//! longer waits. Failures that would fail again are not retried: other 4xx, SMTP 5xx, a
//! certificate that does not verify, a missing STARTTLS, an unreadable secret file, a
//! template error.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::message::Notification;
use crate::metrics::Metrics;
use crate::receivers::{Receiver, Retry};

/// Attempts per notification, the first included.
pub const MAX_ATTEMPTS: u32 = 5;
/// The wait after the first failed attempt; it doubles after each further one.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two attempts without a `Retry-After`.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured; a longer one is cut to this.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);

/// The wait before attempt `attempt + 1` after `attempt` failed (1-based).
pub(crate) fn backoff(attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

/// The task of receiver `index`. It ends when its queue is closed, or when `stop` turns
/// true and the queue is empty.
pub(crate) async fn run(
    index: usize,
    receiver: Arc<Receiver>,
    mut queue: mpsc::Receiver<Notification>,
    pending: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let next = tokio::select! {
            // Queued notifications first: at shutdown they are delivered before stopping.
            biased;
            n = queue.recv() => n,
            _ = stop.wait_for(|s| *s) => queue.try_recv().ok(),
        };
        let Some(n) = next else {
            break;
        };
        deliver(index, &receiver, &n, &metrics).await;
        pending.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn deliver(index: usize, receiver: &Receiver, n: &Notification, metrics: &Metrics) {
    let Some(counters) = metrics.receiver(index) else {
        return;
    };
    let mut attempt = 1;
    loop {
        match receiver.deliver(n).await {
            Ok(()) => {
                let counter = if n.is_summary() {
                    &counters.summaries
                } else {
                    &counters.sent
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(receiver = %n.receiver, route = %n.route, attempt, "notification delivered");
                return;
            }
            Err(f) => {
                let wait = match f.retry {
                    Retry::Never => None,
                    Retry::Backoff => Some(backoff(attempt)),
                    Retry::After(w) => Some(w.min(RETRY_AFTER_CAP)),
                };
                match wait {
                    Some(wait) if attempt < MAX_ATTEMPTS => {
                        tracing::warn!(receiver = %n.receiver, route = %n.route, attempt,
                            error = %f.error, retry_in = ?wait, "notification not delivered yet");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    _ => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(receiver = %n.receiver, route = %n.route, attempt,
                            error = %f.error, "notification not delivered; giving up");
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let waits: Vec<u64> = (1..=8).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
