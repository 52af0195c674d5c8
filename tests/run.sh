#!/usr/bin/env bash
# The one test command: formatting, lints, every test of the workspace, and the built-in
# rules through the CLI as a user would run them. Needs only the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is missing: install Rust 1.95 (https://rustup.rs)" >&2; exit 1; }

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== built-in rules against their test events"
cargo run --quiet --locked -p vigil-agent -- rules test rules
