#!/usr/bin/env bash
# The test command: installs (when missing) and starts what the tests need — Mosquitto,
# VictoriaMetrics (InfluxDB v2 write API), an SMTP server and headless Chromium — on free loopback ports, checks
# formatting and lints, runs the whole suite against them, fuzzes the GB/T 26875.3 decoder for
# a minute, and stops the services again.
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

# The GB/T 26875.3 stream decoder, frame and ADU decoders and mapping under libFuzzer, for a
# bounded time (skipped when a filter narrows the run). The toolchain is stable: RUSTC_BOOTSTRAP
# lets cargo fuzz pass its coverage flags; no sanitizer (the code has no unsafe).
if [ "$#" -eq 0 ]; then
    echo "==> Fuzzing the GB/T 26875.3 decoder (${FUZZ_SECONDS:-60} s)"
    if ! cargo fuzz --version >/dev/null 2>&1; then
        cargo install cargo-fuzz --locked --version 0.13.2
    fi
    RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz --dev --sanitizer none \
        gbt26875_stream -- -max_total_time="${FUZZ_SECONDS:-60}" -rss_limit_mb=2048
fi
