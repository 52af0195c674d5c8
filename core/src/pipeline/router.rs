//! Fan-out of batches to the outputs.

use std::sync::Arc;
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
            let counters = Arc::new(OutputCounters::default());
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
    use std::sync::atomic::Ordering::Relaxed;
    while let Some(batch) = rx.recv().await {
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
