//! Acknowledgements: a source learns when a batch it produced is durably handed on.
//!
//! Every batch carries an [`Ack`]. The router gives each output a clone; an output drops its
//! clone once the batch is durable on its side (written to its spool, or acknowledged by the
//! far end), and calls [`Ack::fail`] first if it gave up on it. When the last clone is
//! dropped, the batch's sequence number reaches the source as delivered or failed.
//!
//! Outputs finish batches out of order, so the source commits through [`AckTracker`]: a
//! position is committed only when its batch and every earlier batch are delivered. A crash
//! therefore replays at most the batches in flight, never skips one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckStatus {
    /// Every output has it durably.
    Delivered,
    /// At least one output gave up on it (it will be replayed after a restart).
    Failed,
}

/// The handle that travels with a batch.
#[derive(Debug, Clone)]
pub struct Ack {
    inner: Arc<AckInner>,
}

#[derive(Debug)]
struct AckInner {
    seq: u64,
    failed: AtomicBool,
    tx: mpsc::UnboundedSender<(u64, AckStatus)>,
}

impl Ack {
    /// Marks the batch as not delivered by this holder.
    pub fn fail(&self) {
        self.inner.failed.store(true, Ordering::Release);
    }

    /// An acknowledgement nobody waits for (tests, `scan`).
    pub fn detached() -> Ack {
        let (tx, _rx) = mpsc::unbounded_channel();
        Ack {
            inner: Arc::new(AckInner {
                seq: 0,
                failed: AtomicBool::new(false),
                tx,
            }),
        }
    }
}

impl Drop for AckInner {
    fn drop(&mut self) {
        let status = if self.failed.load(Ordering::Acquire) {
            AckStatus::Failed
        } else {
            AckStatus::Delivered
        };
        // The source may have stopped listening (shutdown); then nobody needs the answer.
        let _ = self.tx.send((self.seq, status));
    }
}

/// Issues acks for a source's batches and turns their completions into committable
/// positions, in order.
///
/// The channel of completions is unbounded, but it never holds more entries than there are
/// batches in flight, which the bounded queues of the router limit.
#[derive(Debug)]
pub struct AckTracker<P> {
    next_seq: u64,
    tx: mpsc::UnboundedSender<(u64, AckStatus)>,
    rx: mpsc::UnboundedReceiver<(u64, AckStatus)>,
    /// Batches not yet committed, oldest first: (seq, position, status once known).
    pending: VecDeque<(u64, P, Option<AckStatus>)>,
    failed: u64,
}

impl<P> Default for AckTracker<P> {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        AckTracker {
            next_seq: 0,
            tx,
            rx,
            pending: VecDeque::new(),
            failed: 0,
        }
    }
}

impl<P> AckTracker<P> {
    /// A tracker with nothing in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a batch that ends at `position`, returning the ack to send with it.
    pub fn issue(&mut self, position: P) -> Ack {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back((seq, position, None));
        Ack {
            inner: Arc::new(AckInner {
                seq,
                failed: AtomicBool::new(false),
                tx: self.tx.clone(),
            }),
        }
    }

    /// Batches issued and not yet committed.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Batches that some output gave up on since the start.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// Takes the completions that have arrived and returns the positions that may now be
    /// committed, oldest first. A failed batch blocks every later one: its position is
    /// never committed, so a restart replays it.
    pub fn poll_committable(&mut self) -> Vec<P> {
        while let Ok((seq, status)) = self.rx.try_recv() {
            self.record(seq, status);
        }
        self.drain_ready()
    }

    /// Waits until at least one completion arrives, then behaves as
    /// [`poll_committable`](Self::poll_committable).
    pub async fn next_committable(&mut self) -> Vec<P> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        if let Some((seq, status)) = self.rx.recv().await {
            self.record(seq, status);
        }
        self.poll_committable()
    }

    fn record(&mut self, seq: u64, status: AckStatus) {
        if status == AckStatus::Failed {
            self.failed += 1;
        }
        if let Some(entry) = self.pending.iter_mut().find(|(s, _, _)| *s == seq) {
            entry.2 = Some(status);
        }
    }

    fn drain_ready(&mut self) -> Vec<P> {
        let mut out = Vec::new();
        while let Some((_, _, Some(AckStatus::Delivered))) = self.pending.front() {
            if let Some((_, pos, _)) = self.pending.pop_front() {
                out.push(pos);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_a_delivered_prefix() {
        let mut t = AckTracker::new();
        let a = t.issue(10);
        let b = t.issue(20);
        let c = t.issue(30);
        drop(c);
        assert_eq!(
            t.poll_committable(),
            Vec::<i32>::new(),
            "30 is done but 10 and 20 are not"
        );
        drop(a);
        assert_eq!(t.poll_committable(), vec![10]);
        drop(b);
        assert_eq!(t.poll_committable(), vec![20, 30]);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn an_ack_completes_when_every_clone_is_dropped() {
        let mut t = AckTracker::new();
        let a = t.issue(1);
        let for_output_2 = a.clone();
        drop(a);
        assert!(t.poll_committable().is_empty());
        drop(for_output_2);
        assert_eq!(t.poll_committable(), vec![1]);
    }

    #[test]
    fn a_failed_batch_is_never_committed_nor_anything_after_it() {
        let mut t = AckTracker::new();
        let a = t.issue(1);
        let b = t.issue(2);
        a.fail();
        drop(a);
        drop(b);
        assert!(t.poll_committable().is_empty());
        assert_eq!(t.failed(), 1);
        assert_eq!(t.in_flight(), 2);
    }

    #[tokio::test]
    async fn waits_for_completions() {
        let mut t = AckTracker::new();
        let a = t.issue(5);
        let handle = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            drop(a);
        });
        assert_eq!(t.next_committable().await, vec![5]);
        handle.await.unwrap();
    }
}
