#!/usr/bin/env bash
# The test command: installs (when missing) and starts what the tests need — Mosquitto,
# VictoriaMetrics (InfluxDB v2 write API), an SMTP server and headless Chromium — on free loopback ports, checks
# formatting and lints, runs the whole suite against them, and stops them again.
#
#   scripts/test.sh              everything
#   scripts/test.sh -E 'test(kill)'   extra arguments go to cargo nextest (a filter, say)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

services="$(mktemp -d -t firewatch-test-services.XXXXXX)"
cleanup() { scripts/test-services.sh stop "$services" || true; rm -rf "$services"; }
trap cleanup EXIT

echo "==> Starting test services"
scripts/test-services.sh start "$services"
# shellcheck disable=SC1091
source "$services/env"

echo "==> Checking formatting"
cargo fmt --all -- --check

echo "==> Linting (clippy, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> Running the test suite (dashboard screenshots go to target/test-artifacts/)"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast "$@"
else
    cargo test --workspace --locked --no-fail-fast "$@"
fi
