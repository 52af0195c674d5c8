//! Fan-out of batches to the outputs.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::Batch;
use crate::outputs::{Output, OutputCounters};

/// Router settings.
#[derive(Debug, Clone, Copy)]
pub struct RouterConfig {
    /// Batches queued per output before the router waits (backpressure to the sources).
    /// With the default 512-event batches, 8 batches bound an output's queue to 4,096 events.
    pub queue_batches: usize,
    /// First retry delay of a failed write; doubled per attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Largest retry delay.
    pub max_backoff: Duration,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            queue_batches: 8,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// The router is closed (its outputs stopped).
#[derive(Debug, thiserror::Error)]
#[error("the output `{0}` has stopped")]
pub struct RouterError(pub String);

struct Lane {
    name: String,
    tx: mpsc::Sender<Batch>,
    counters: Arc<OutputCounters>,
}

/// Hands every batch to every output.
pub struct Router {
    lanes: Vec<Lane>,
    tasks: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

impl Router {
    /// Starts one task per output. Must be called inside a Tokio runtime.
    pub fn start(outputs: Vec<Box<dyn Output>>, config: RouterConfig) -> Router {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut lanes = Vec::new();
        let mut tasks = Vec::new();
        for output in outputs {
            let (tx, rx) = mpsc::channel(config.queue_batches.max(1));
            let counters = output.counters().unwrap_or_default();
            lanes.push(Lane {
                name: output.name().to_owned(),
                tx,
                counters: counters.clone(),
            });
            tasks.push(tokio::spawn(run_output(
                output,
                rx,
                counters,
                config,
                shutdown_rx.clone(),
            )));
        }
        Router {
            lanes,
            tasks,
            shutdown,
        }
    }

    /// Sends a batch to every output, waiting while any queue is full.
    pub async fn send(&self, batch: Batch) -> Result<(), RouterError> {
        for lane in &self.lanes {
            // Counted before it is queued, so the output never takes it uncounted; a send
            // waiting for room counts too.
            lane.counters.queued_batches.fetch_add(1, Relaxed);
            lane.tx
                .send(batch.clone())
                .await
                .map_err(|_| RouterError(lane.name.clone()))?;
        }
        Ok(())
    }

    /// [`send`](Self::send) from a thread outside the runtime (a blocking source).
    pub fn blocking_send(&self, batch: Batch) -> Result<(), RouterError> {
        for lane in &self.lanes {
            // Counted before it is queued, so the output never takes it uncounted; a send
            // waiting for room counts too.
            lane.counters.queued_batches.fetch_add(1, Relaxed);
            lane.tx
                .blocking_send(batch.clone())
                .map_err(|_| RouterError(lane.name.clone()))?;
        }
        Ok(())
    }

    /// A cheap handle for sending from several places.
    pub fn counters(&self) -> Vec<(String, Arc<OutputCounters>)> {
        self.lanes
            .iter()
            .map(|l| (l.name.clone(), l.counters.clone()))
            .collect()
    }

    /// Lets the outputs write what is queued, then stops them. Writes still failing after
    /// `grace` are given up: their acks fail, so their positions stay uncommitted.
    pub async fn shutdown(self, grace: Duration) {
        let Router {
            lanes,
            tasks,
            shutdown,
        } = self;
        drop(lanes);
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        let mut all = futures_join(tasks);
        tokio::select! {
            _ = &mut all => {}
            _ = &mut deadline => {
                let _ = shutdown.send(true);
                all.await;
            }
        }
    }
}

/// Joins every task, ignoring panics (an output task never panics; a JoinError could only
/// come from cancellation at runtime shutdown).
fn futures_join(
    tasks: Vec<JoinHandle<()>>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        for t in tasks {
            let _ = t.await;
        }
    })
}

async fn run_output(
    mut output: Box<dyn Output>,
    mut rx: mpsc::Receiver<Batch>,
    counters: Arc<OutputCounters>,
    config: RouterConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    while let Some(batch) = rx.recv().await {
        counters.queued_batches.fetch_sub(1, Relaxed);
        let mut backoff = config.initial_backoff;
        loop {
            match output.send(&batch.events).await {
                Ok(()) => {
                    counters
                        .events_sent
                        .fetch_add(batch.events.len() as u64, Relaxed);
                    counters.batches_sent.fetch_add(1, Relaxed);
                    break;
                }
                Err(e) if e.is_retryable() && !*shutdown.borrow() => {
                    counters.retries.fetch_add(1, Relaxed);
                    tracing::warn!(output = output.name(), error = %e, retry_in = ?backoff, "output write failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    backoff = (backoff * 2).min(config.max_backoff);
                }
                Err(e) => {
                    counters.batches_failed.fetch_add(1, Relaxed);
                    tracing::error!(output = output.name(), error = %e, events = batch.events.len(),
                        "output gave up on a batch; its position is not committed and it will be replayed after a restart");
                    batch.ack.fail();
                    break;
                }
            }
        }
        // Dropping the batch releases this output's share of the ack.
        drop(batch);
    }
    if let Err(e) = output.flush().await {
        tracing::error!(output = output.name(), error = %e, "output flush at shutdown failed");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::event::Event;
    use crate::outputs::{BoxFuture, OutputError};
    use crate::pipeline::AckTracker;

    /// An output that records what it got, can be made slow, and fails its first writes.
    struct Probe {
        name: &'static str,
        got: Arc<Mutex<Vec<String>>>,
        delay: Duration,
        fail_first: Arc<AtomicUsize>,
        permanent: bool,
    }

    impl Output for Probe {
        fn name(&self) -> &str {
            self.name
        }
        fn send<'a>(&'a mut self, events: &'a [Event]) -> BoxFuture<'a, Result<(), OutputError>> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                if self.fail_first.load(Ordering::SeqCst) > 0 {
                    self.fail_first.fetch_sub(1, Ordering::SeqCst);
                    return Err(if self.permanent {
                        OutputError::Encode(serde_json::from_str::<u8>("x").unwrap_err())
                    } else {
                        OutputError::Io(std::io::Error::other("manager away"))
                    });
                }
                self.got
                    .lock()
                    .unwrap()
                    .extend(events.iter().map(|e| e.id.clone()));
                Ok(())
            })
        }
    }

    fn probe(
        name: &'static str,
        delay_ms: u64,
        fail_first: usize,
        permanent: bool,
    ) -> (Probe, Arc<Mutex<Vec<String>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let p = Probe {
            name,
            got: got.clone(),
            delay: Duration::from_millis(delay_ms),
            fail_first: Arc::new(AtomicUsize::new(fail_first)),
            permanent,
        };
        (p, got)
    }

    fn batch(tracker: &mut AckTracker<u64>, pos: u64) -> Batch {
        let ev = Event {
            id: format!("e{pos}"),
            ..Event::default()
        };
        Batch::new(vec![ev], tracker.issue(pos))
    }

    fn fast() -> RouterConfig {
        RouterConfig {
            queue_batches: 2,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        }
    }

    #[tokio::test]
    async fn a_batch_is_acknowledged_once_every_output_has_it() {
        let (a, got_a) = probe("a", 0, 0, false);
        let (b, got_b) = probe("b", 50, 0, false);
        let router = Router::start(vec![Box::new(a), Box::new(b)], fast());
        let mut tracker = AckTracker::new();
        router.send(batch(&mut tracker, 1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(got_a.lock().unwrap().len(), 1);
        assert!(
            tracker.poll_committable().is_empty(),
            "the slow output has not written yet"
        );
        assert_eq!(tracker.next_committable().await, vec![1]);
        assert_eq!(got_b.lock().unwrap().as_slice(), ["e1"]);
        router.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn a_slow_output_pushes_back_on_the_source() {
        let (slow, got) = probe("slow", 40, 0, false);
        let router = Router::start(vec![Box::new(slow)], fast());
        let mut tracker = AckTracker::new();
        let start = tokio::time::Instant::now();
        for pos in 0..8 {
            router.send(batch(&mut tracker, pos)).await.unwrap();
        }
        // Capacity is 2 queued + 1 in the output: the 8th send waits for ~5 writes.
        assert!(
            start.elapsed() >= Duration::from_millis(150),
            "sends did not wait: {:?}",
            start.elapsed()
        );
        router.shutdown(Duration::from_secs(5)).await;
        assert_eq!(got.lock().unwrap().len(), 8, "nothing dropped");
    }

    #[tokio::test]
    async fn transient_failures_are_retried_in_order() {
        let (flaky, got) = probe("flaky", 0, 3, false);
        let router = Router::start(vec![Box::new(flaky)], fast());
        let counters = router.counters();
        let mut tracker = AckTracker::new();
        for pos in 0..3 {
            router.send(batch(&mut tracker, pos)).await.unwrap();
        }
        router.shutdown(Duration::from_secs(5)).await;
        assert_eq!(got.lock().unwrap().as_slice(), ["e0", "e1", "e2"]);
        assert_eq!(tracker.poll_committable(), vec![0, 1, 2]);
        assert_eq!(counters[0].1.retries.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_batch_given_up_on_is_not_committed() {
        let (broken, _) = probe("broken", 0, 1, true);
        let router = Router::start(vec![Box::new(broken)], fast());
        let mut tracker = AckTracker::new();
        router.send(batch(&mut tracker, 1)).await.unwrap();
        router.send(batch(&mut tracker, 2)).await.unwrap();
        router.shutdown(Duration::from_secs(5)).await;
        assert!(
            tracker.poll_committable().is_empty(),
            "1 failed, so neither 1 nor 2 may be committed"
        );
        assert_eq!(tracker.failed(), 1);
    }

    #[tokio::test]
    async fn shutdown_gives_up_on_a_dead_output_after_the_grace_period() {
        let (dead, _) = probe("dead", 0, usize::MAX, false);
        let router = Router::start(vec![Box::new(dead)], fast());
        let mut tracker = AckTracker::new();
        router.send(batch(&mut tracker, 1)).await.unwrap();
        let start = tokio::time::Instant::now();
        router.shutdown(Duration::from_millis(100)).await;
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(tracker.poll_committable().is_empty());
        assert_eq!(tracker.failed(), 1);
    }
}
