//! The rules and the processing pipeline compiled into the binaries.

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// The processing pipeline applied to every rule (pySigma pipeline format).
///
/// SigmaHQ's Kubernetes audit rules use three pseudo-fields that no audit event carries;
/// they are mapped onto what Vigil derives from the request object.
pub const PIPELINE_YAML: &str = include_str!("pipeline.yml");
