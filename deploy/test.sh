#!/usr/bin/env bash
# README command 2: runs every test, as root: unit tests and the end-to-end tests in integration/,
# which start the real binaries (built first, so the tests find them beside the test binaries).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins
cargo test --workspace --no-fail-fast
