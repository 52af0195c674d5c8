//! vigil-core: what every Vigil program shares.
//!
//! - [`event`]: the normalized event `vigil.event/v1` and its JSON Schema;
//! - [`audit`]: Kubernetes audit events from any supported envelope to normalized events;
//! - [`runtime`]: container runtime events (Docker Engine) to normalized events;
//! - [`logs`]: container log files (CRI, Docker json-file), partial lines reassembled;
//! - [`detect`]: Sigma rules, built-in and user-supplied, evaluated on normalized events;
//! - [`pipeline`]: the contract between sources, the router and outputs (acknowledgements,
//!   bounded queues, checkpoints committed only after the ack);
//! - [`outputs`]: where events go, and the Wazuh agent protocol's codec;
//! - [`spool`]: the durable, bounded on-disk queue in front of an output to a remote manager.

pub mod audit;
pub mod detect;
pub mod durable;
pub mod event;
pub mod logs;
pub mod outputs;
pub mod pipeline;
pub mod runtime;
pub mod spool;
pub mod timestamp;
pub mod tuning;
