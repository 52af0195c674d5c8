//! vigil-core: what every Vigil program shares.
//!
//! - [`event`]: the normalized event `vigil.event/v1` and its JSON Schema;
//! - [`audit`]: Kubernetes audit events from any supported envelope to normalized events;
//! - [`detect`]: Sigma rules, built-in and user-supplied, evaluated on normalized events;
//! - [`pipeline`]: the contract between sources, the router and outputs (acknowledgements,
//!   bounded queues, checkpoints committed only after the ack);
//! - [`outputs`]: where events go, and the Wazuh agent protocol's codec;
//! - [`spool`]: the durable, bounded on-disk queue in front of an output to a remote manager.

pub mod audit;
pub mod detect;
pub mod event;
pub mod outputs;
pub mod pipeline;
pub mod spool;
pub mod timestamp;
