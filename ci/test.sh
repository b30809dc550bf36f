#!/usr/bin/env bash
# The project's checks, as CI runs them: formatting, lints, then the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked --no-fail-fast
# Opt-in tests CI runs too (docs/testing.md lists them).
cargo test -p harness --locked --test report_browser -- --ignored
