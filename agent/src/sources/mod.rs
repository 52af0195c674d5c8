//! The agent's sources: where records come from.

pub mod audit_log;
