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
# A fixed-seed exploration (~30 generated runs, a few minutes; docs/testing.md#exploring). --no-mosquitto keeps
# the generated runs the same whether or not Mosquitto is installed.
cargo run --locked -q -p harness -- explore --seed "${EXPLORE_SEED:-7}" --runs "${EXPLORE_RUNS:-30}" \
  --shrink-runs 4 --no-mosquitto --out target/explore --json target/explore/summary.json
