#!/usr/bin/env bash
# The test command: installs (when missing) and starts what the tests need — Mosquitto,
# VictoriaMetrics (InfluxDB v2 write API), an SMTP server and headless Chromium — on free loopback ports, checks
# formatting and lints, checks the dependency tree with cargo deny (licences, duplicate versions,
# sources, and advisories where github.com is reachable), runs the whole suite against them,
# fuzzes the GB/T 26875.3 codec, the MQTT contract decoder and the configuration loader for
# FUZZ_SECONDS seconds (default 30) each, and stops the services again.
#
#   scripts/test.sh              everything
#   scripts/test.sh -E 'test(kill)'   extra arguments go to cargo nextest (a filter, say)
#   FUZZ_SECONDS=300 scripts/test.sh  fuzz each target for 5 minutes
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

# Fuzzing under libFuzzer, each target for a bounded time, FUZZ_SECONDS seconds (default 30) (skipped
# when a filter narrows the run): the GB/T 26875.3 stream decoder, frame and ADU decoders and mapping;
# the MQTT contract decoder; the configuration loader with the rule, registry and duty-roster
# parsers. Built once, then run; each run starts from its corpus under tests/fuzz/corpus/ (kept
# between runs, not committed) and the committed seeds under tests/fuzz/seeds/. The toolchain is
# stable: RUSTC_BOOTSTRAP lets cargo fuzz pass its coverage flags; no sanitizer (the code has no
# unsafe).
if [ "$#" -eq 0 ]; then
    fuzz_targets=(gbt26875_stream contract_decode config_load)
    echo "==> Fuzzing ${fuzz_targets[*]} (${FUZZ_SECONDS:-30} s each)"
    if ! cargo fuzz --version >/dev/null 2>&1; then
        cargo install cargo-fuzz --locked --version 0.13.2
    fi
    RUSTC_BOOTSTRAP=1 cargo fuzz build --fuzz-dir tests/fuzz --dev --sanitizer none
    # config_load writes its input to a file in the temporary directory: a private one, removed after.
    fuzz_tmp="$(mktemp -d -t firewatch-fuzz.XXXXXX)"
    for t in "${fuzz_targets[@]}"; do
        corpus=(tests/fuzz/corpus/"$t")
        mkdir -p "${corpus[0]}"
        if [ -d tests/fuzz/seeds/"$t" ]; then corpus+=(tests/fuzz/seeds/"$t"); fi
        echo "--> $t"
        TMPDIR="$fuzz_tmp" RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz --dev --sanitizer none \
            "$t" "${corpus[@]}" -- -max_total_time="${FUZZ_SECONDS:-30}" -rss_limit_mb=2048
    done
    rm -rf "$fuzz_tmp"
fi
