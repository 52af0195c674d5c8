//! The contract between sources, the router and outputs.
//!
//! ```text
//! source ──► Batch{events, ack} ──► Router ──► one bounded queue per output ──► Output
//!        ◄──────────── ack (when every output has the batch durably) ◄─────────┘
//! ```
//!
//! - A source parses, normalizes and runs detections itself, then sends a [`Batch`] with an
//!   [`Ack`] issued by its [`AckTracker`]; it commits its position (file offset, event time)
//!   only for batches the tracker releases, so nothing is lost across a crash and the
//!   duplicates after one are bounded by the batches in flight.
//! - The router hands every batch to every output through a bounded queue of
//!   [`RouterConfig::queue_batches`] batches per output; when a queue is full the router waits,
//!   which blocks the source: backpressure, never a silent drop.
//! - An output retries a failed write with exponential backoff until it succeeds or the
//!   pipeline shuts down; a batch it gives up on fails its ack, so its position is not
//!   committed and the batch is replayed after the restart.

mod ack;
mod router;

pub use ack::{Ack, AckStatus, AckTracker};
pub use router::{Router, RouterConfig, RouterError};

use std::sync::Arc;

use crate::event::Event;

/// Events travelling together with one acknowledgement.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The events, shared between outputs.
    pub events: Arc<Vec<Event>>,
    /// Completes when every output holds the batch durably.
    pub ack: Ack,
}

impl Batch {
    /// A batch of `events` with `ack`.
    pub fn new(events: Vec<Event>, ack: Ack) -> Batch {
        Batch {
            events: Arc::new(events),
            ack,
        }
    }
}
