//! The store as the console and the operator use it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod containers;
mod filters;
mod hostile;
mod lifecycle;
mod retention;
mod sync;
