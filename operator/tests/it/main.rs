//! Integration tests of vigil-operator, one binary so the workspace links (and stores) one
//! test executable per crate instead of one per file.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod cli;
mod console;
mod console_browser;
mod console_notify;
mod controller;
mod crd;
mod golden;
mod leader;
mod webhook;
