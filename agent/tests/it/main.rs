//! Integration tests of vigil-agent, one binary so the workspace links (and stores) one
//! test executable per crate instead of one per file.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod agent;
mod console_docker;
mod container_logs_scale;
mod containerd_engine;
mod delivery_outage;
mod docker_engine;
mod drift_engine;
mod hardening_engine;
mod manager_files;
mod operator_follow;
mod process_engine;
mod resources_engine;
mod run_pipeline;
mod scan_cli;
mod story;
mod wazuh_docker;
