//! vigil-operator: the Kubernetes-native half of Vigil.
//!
//! - [`crd`]: the `ContainerMonitor` resource and its CRD manifest;
//! - [`manifests`]: ContainerMonitors read from multi-document YAML (for offline rendering);
//! - [`render`]: pure functions from ContainerMonitors to the cluster audit policy and the
//!   agents' per-namespace configuration, with what was refused or clamped per monitor.

pub mod console;
pub mod controller;
pub mod crd;
pub mod manifests;
pub mod render;
pub mod webhook;
