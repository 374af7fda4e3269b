#!/usr/bin/env bash
# The test command: installs (when missing) and starts what the tests need — Mosquitto,
# VictoriaMetrics (InfluxDB v2 write API), an SMTP server and headless Chromium — on free loopback ports, checks
# formatting and lints, checks the dependency tree with cargo deny (licences, duplicate versions,
# sources, and advisories where github.com is reachable), runs the whole suite against them,
# fuzzes the GB/T 26875.3 decoder for a minute, and stops the services again.
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

# The dependency tree against deny.toml: licences, bans (a second version of a crate only where
# deny.toml lists it), sources (crates.io only). The advisory check needs the RustSec database,
# which is cloned from github.com: it runs when that answers and is skipped, saying so, when not.
echo "==> Checking dependencies (cargo deny)"
if ! cargo deny --version >/dev/null 2>&1; then
    cargo install cargo-deny --locked --version 0.20.2
fi
deny_checks=(licenses bans sources)
if timeout 30 git ls-remote --exit-code https://github.com/RustSec/advisory-db HEAD >/dev/null 2>&1; then
    deny_checks+=(advisories)
else
    echo "    advisories skipped: github.com (the RustSec advisory database) is unreachable"
fi
cargo deny --locked check "${deny_checks[@]}"

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
