//! Integration tests of vigil-core, one binary so the workspace links (and stores) one
//! test executable per crate instead of one per file.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod http_output;
mod support;
mod syslog_rsyslog;
mod tls_settings;
mod wazuh_output;
