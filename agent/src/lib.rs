//! vigil-agent: the node agent.
//!
//! Sources (`sources/`) read records, normalize them with vigil-core, run the detection
//! rules and hand batches to the router; the tail engine (`tail/`) follows files with
//! checkpoints; `scan` runs the same parsing and rules offline.

pub mod config;
pub mod lines;
pub mod metrics;
pub mod operator;
pub mod run;
pub mod scan;
pub mod sources;
pub mod tail;
