//! Test peers and fixtures shared by the workspace's integration tests. Test code: it panics
//! on setup failures, which is what a test wants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod certs;
pub mod containerd;
pub mod docker;
pub mod http;
pub mod kmock;
pub mod process;
pub mod rsyslog;
pub mod smtp;
pub mod wazuh;
