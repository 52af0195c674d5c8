//! Helpers shared by the integration tests.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

pub use vigil_testkit::certs;
