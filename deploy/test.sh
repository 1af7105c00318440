#!/usr/bin/env bash
# Runs every test: unit tests and the end-to-end tests in integration/ (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins
cargo test --workspace
