//! Integration tests of vigil-notify against real peers: an SMTP server (aiosmtpd, needs
//! `python3` with `pip install aiosmtpd`) and HTTP endpoints on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod config;
mod email;
mod http;
mod routing;
