#!/usr/bin/env bash
# firewatch benchmark of the device history: rollups against raw readings, in the same run.
#
#   bench/readings.sh
#
# Fills a fresh firewatch store through the real path (mosquitto_pub → Mosquitto configured
# from deploy/mosquitto.conf → firewatch, QoS 1) with one device's 30 days at one reading a
# minute (43,200 readings, `ts` in the past) and BENCH_HIST_DEVICES other devices at one
# reading every BENCH_HIST_OTHER_MIN minutes over the same 30 days, waits until everything is
# committed and rolled up (`firewatch_rollup_backlog` 0), then times
# `GET /api/v1/devices/{id}/readings` over those 30 days, BENCH_HIST_REQUESTS times each, on one
# kept-alive HTTP connection:
#
#   a. the default (`step=auto`, no `limit`: the point budget of `auto`);
#   b. `limit=10000` (the default `limit`): 5-minute buckets, the largest downsampled answer;
#   c. `limit=1000` (a chart's width): hourly buckets;
#   d. `step=raw&limit=100000`: the raw readings, the query before rollups existed.
#
# Prints the table (markdown) on stdout, progress on stderr, and writes it into
# docs/benchmarks.md between `<!-- bench-readings:begin -->` and `<!-- bench-readings:end -->`.
#
# A/B mode (BENCH_HIST_VS=<another firewatch binary>, e.g. one built at an earlier commit): after
# the fill, the store is copied, the binary under test (A) answers from the store and the other
# one (B) from the copy, and every query runs in BENCH_HIST_ROUNDS rounds that alternate
# between the two (A B, B A, A B, ...), so both see the same machine at nearly the same time.
# Prints, per query, both sides' percentiles, the ratio A / B of each round's p50 (median, min
# and max over the rounds) and whether both answered with the same bytes; the doc is not
# touched.
#
# Environment (all optional):
#   BENCH_HIST_DEVICES     other devices (200)
#   BENCH_HIST_OTHER_MIN   their reading interval, minutes (15)
#   BENCH_HIST_REQUESTS    requests per query (200)
#   BENCH_TIMEOUT          bound, in seconds, of every wait (600)
#   BENCH_BUILD            1: run `cargo build --release --workspace --locked` first (1)
#   BENCH_OUT              logs and results (bench/out/readings-<UTC time>-<pid>)
#   BENCH_DOC              the file to update (docs/benchmarks.md); empty: none
#   BENCH_HIST_VS          A/B mode: the firewatch binary to compare with (none)
#   BENCH_HIST_ROUNDS      A/B mode: rounds per query (10)

set -Eeuo pipefail
trap 'printf "bench: error: command failed with status %s at line %s: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >&2' ERR

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO_ROOT"

DEVICES="${BENCH_HIST_DEVICES:-200}"
OTHER_MIN="${BENCH_HIST_OTHER_MIN:-15}"
REQUESTS="${BENCH_HIST_REQUESTS:-200}"
TIMEOUT="${BENCH_TIMEOUT:-600}"
BUILD="${BENCH_BUILD:-1}"
DOC="${BENCH_DOC-docs/benchmarks.md}"
OUT="${BENCH_OUT:-bench/out/readings-$(date -u +%Y%m%dT%H%M%SZ)-$$}"
FW="$REPO_ROOT/target/release/firewatch"
VS="${BENCH_HIST_VS:-}"
ROUNDS="${BENCH_HIST_ROUNDS:-10}"
PY=/usr/bin/python3
TARGET_MS=50
DEVICE=wp-hist-0001
BUILDING=bench-hist
DAYS=30

for v in DEVICES OTHER_MIN REQUESTS TIMEOUT ROUNDS; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || {
        printf 'bench: error: %s must be a positive integer, got %q\n' "$v" "${!v}" >&2
        exit 2
    }
done
while read -r v; do unset "$v"; done < <(compgen -e | grep '^FIREWATCH__' || true)

say() { printf '%s\n' "$*" >&2; }
step() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'bench: error: %s\n' "$*" >&2
    exit 1
}
thousands() { printf "%'d" "$1" 2>/dev/null || printf '%s' "$1"; }

FW_PID=
VS_PID=
SERVICES_STARTED=0
cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM ERR
    for pid in "$FW_PID" "$VS_PID"; do
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            wait "$pid" 2>/dev/null
        fi
    done
    if ((SERVICES_STARTED)); then
        scripts/test-services.sh stop "$OUT/services" >"$OUT/services-stop.log" 2>&1 ||
            say "test-services.sh stop failed; see $OUT/services-stop.log"
    fi
    rm -rf "$OUT/services/vm" "$OUT/services/mosquitto" "$OUT/store" "$OUT/store-vs"
    ((status == 0)) || say "bench: failed (exit status $status); logs are in $OUT"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_until DESCRIPTION COMMAND...: polls COMMAND every 0.2 s for BENCH_TIMEOUT seconds.
wait_until() {
    local what=$1 deadline=$((SECONDS + TIMEOUT))
    shift
    until "$@"; do
        kill -0 "$FW_PID" 2>/dev/null || die "firewatch exited while waiting for $what; see $OUT/firewatch.log"
        ((SECONDS < deadline)) || die "timed out after $TIMEOUT s waiting for $what"
        sleep 0.2
    done
}
metric() { curl -sf -m 5 "$FW_URL/metrics" | awk -v n="$1" '$1 == n { v = $2 } END { print (v == "" ? -1 : v) }'; }
healthy() { curl -sf -m 2 "$FW_URL/healthz" >/dev/null; }
committed() { (($(metric firewatch_messages_committed_total | cut -d. -f1) >= TOTAL)); }
rolled_up() { [[ $(metric firewatch_rollup_backlog) == 0 ]] && (($(metric firewatch_rollup_readings_total | cut -d. -f1) >= TOTAL)); }

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd -P)"
for cmd in curl awk mosquitto_pub "$PY"; do command -v "$cmd" >/dev/null || die "$cmd is required"; done
if [[ $BUILD == 1 ]]; then
    step "build: cargo build --release --workspace --locked"
    cargo build --release --workspace --locked >"$OUT/build.log" 2>&1 || die "build failed; see $OUT/build.log"
fi
[[ -x $FW ]] || die "$FW is missing (BENCH_BUILD=1 builds it)"
if [[ -n $VS ]]; then
    [[ -x $VS ]] || die "BENCH_HIST_VS: $VS is not an executable"
    VS="$(cd "$(dirname "$VS")" && pwd -P)/$(basename "$VS")"
    # Copies: either binary may be rebuilt while this runs.
    cp "$FW" "$OUT/firewatch-a"
    cp "$VS" "$OUT/firewatch-b"
    FW="$OUT/firewatch-a"
    VS="$OUT/firewatch-b"
fi

step "services: Mosquitto (deploy/mosquitto.conf), VictoriaMetrics, SMTP capture"
scripts/test-services.sh start "$OUT/services" >"$OUT/services.log" 2>&1 || die "services did not start; see $OUT/services.log"
SERVICES_STARTED=1
# shellcheck disable=SC1091
source "$OUT/services/env"
MQTT_HOST=127.0.0.1
MQTT_PORT="${FW_TEST_MQTT_URL##*:}"

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"
FW_URL="http://127.0.0.1:$PORT"
# The API needs a token: each firewatch accepts this one as its bootstrap token.
API_TOKEN="bench-readings-$$-$(date +%s%N)"
# start_fw BINARY PORT STORE LOG CLIENT_ID: a firewatch on Mosquitto, in the background.
start_fw() {
    env FIREWATCH__MQTT__URL="$FW_TEST_MQTT_URL" \
        FIREWATCH__AUTH__BOOTSTRAP_TOKEN="$API_TOKEN" \
        FIREWATCH__MQTT__CLIENT_ID="$5" \
        FIREWATCH__HTTP__LISTEN="127.0.0.1:$2" \
        FIREWATCH__STORAGE__DIR="$3" \
        "$1" run </dev/null >>"$4" 2>&1 &
}
step "firewatch: fresh store, Mosquitto, no TSDB, e-mail to the outbox"
start_fw "$FW" "$PORT" "$OUT/store" "$OUT/firewatch.log" "bench-hist-$$"
FW_PID=$!
wait_until "/healthz" healthy

NOW_MS=$(($(date +%s%N) / 1000000))
SINCE_MS=$((NOW_MS - DAYS * 86400000))
MAIN_N=$((DAYS * 24 * 60))
OTHER_N=$((DAYS * 24 * 60 / OTHER_MIN))
TOTAL=$((MAIN_N + DEVICES * OTHER_N))

# lines DEVICE COUNT INTERVAL_MIN: telemetry payloads, oldest first, healthy pressures.
lines() {
    "$PY" - "$SINCE_MS" "$2" "$3" <<'EOF'
import sys
since, n, every = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out = sys.stdout
for i in range(n):
    ts = since + (i + 1) * every * 60000
    out.write('{"ts": %d, "values": {"pressure_mpa": %.3f}}\n' % (ts, 0.28 + (i * 7919 % 41) / 1000))
EOF
}
pub() { # pub DEVICE COUNT INTERVAL_MIN
    lines "$1" "$2" "$3" | mosquitto_pub -h "$MQTT_HOST" -p "$MQTT_PORT" -q 1 -l -i "pub-$1-$$" \
        -t "fw/v1/$BUILDING/water_pressure/$1/telemetry"
}

export -f lines pub
export SINCE_MS PY MQTT_HOST MQTT_PORT BUILDING OTHER_N OTHER_MIN
step "fill: $DEVICE with $(thousands "$MAIN_N") readings (1 a minute, $DAYS days), $DEVICES other devices with $(thousands "$OTHER_N") each (1 every $OTHER_MIN min): $(thousands "$TOTAL") readings"
t0=$(date +%s.%N)
pub "$DEVICE" "$MAIN_N" 1
for ((d = 2; d <= DEVICES + 1; d++)); do
    printf 'wp-hist-%04d\n' "$d"
done | xargs -P 4 -I{} bash -c 'pub "$1" "$OTHER_N" "$OTHER_MIN"' _ {}
wait_until "$TOTAL readings committed" committed
t1=$(date +%s.%N)
wait_until "every reading rolled up" rolled_up
t2=$(date +%s.%N)
FILL_S="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
ROLLUP_LAG_S="$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.1f", b - a }')"
DB_MB="$(du -sm "$OUT/store" | cut -f1)"
ROLLUP_ROWS="$("$PY" -c 'import sqlite3, sys; c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True); print(c.execute("SELECT count(*) FROM rollups").fetchone()[0])' "$OUT/store/firewatch.db")"
say "    filled in $FILL_S s; rolled up $ROLLUP_LAG_S s after the last commit; store $DB_MB MB, $(thousands "$ROLLUP_ROWS") rollup rows"

PORTS="$PORT"
if [[ -n $VS ]]; then
    step "A/B: the store copied; A ($FW) on the store, B ($VS) on the copy"
    kill -TERM "$FW_PID"
    wait "$FW_PID" || true
    FW_PID=
    cp -a "$OUT/store" "$OUT/store-vs"
    start_fw "$FW" "$PORT" "$OUT/store" "$OUT/firewatch.log" "bench-hist-$$"
    FW_PID=$!
    wait_until "/healthz of A" healthy
    VS_PORT="$(free_port)"
    start_fw "$VS" "$VS_PORT" "$OUT/store-vs" "$OUT/firewatch-vs.log" "bench-hist-vs-$$"
    VS_PID=$!
    vs_healthy() { curl -sf -m 2 "http://127.0.0.1:$VS_PORT/healthz" >/dev/null; }
    wait_until "/healthz of B" vs_healthy
    PORTS="$PORT,$VS_PORT"
fi

step "queries: $REQUESTS requests each over the $DAYS days of $DEVICE"
"$PY" - "$PORTS" "$DEVICE" "$SINCE_MS" "$NOW_MS" "$REQUESTS" "$ROUNDS" "$API_TOKEN" >"$OUT/queries.json" <<'EOF'
import http.client, json, statistics, sys, time
ports = [int(p) for p in sys.argv[1].split(",")]
dev, since, until, n, rounds = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
auth = {"Authorization": "Bearer " + sys.argv[7]}
base = f"/api/v1/devices/{dev}/readings?since={since}&until={until}"
queries = {"auto": base, "auto10000": base + "&limit=10000", "auto1000": base + "&limit=1000",
           "raw": base + "&step=raw&limit=100000"}
conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=60) for p in ports]
def get(side, path):
    conns[side].request("GET", path, headers=auth)
    r = conns[side].getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit(f"GET {path}: {r.status} {body[:200]!r}")
    return body
def rank(times, q):
    times = sorted(times)
    return times[max(0, min(len(times) - 1, int(-(-q * len(times) // 1)) - 1))]
def timed(side, path, k):
    times = []
    for _ in range(k):
        t = time.perf_counter()
        get(side, path)
        times.append((time.perf_counter() - t) * 1000)
    return times
out = {}
for name, path in queries.items():
    bodies = [get(side, path) for side in range(len(ports))]
    rows = json.loads(bodies[0])
    for side in range(len(ports)):
        for _ in range(5):
            get(side, path)
    res = {"rows": len(rows), "step": rows[0].get("step", "raw") if rows else None,
           "count": sum(r.get("count", 1) for r in rows)}
    if len(ports) == 1:
        times = timed(0, path, n)
    else:
        # Rounds alternate the order (A B, B A, ...); each side's p50 per round, paired.
        k = max(1, n // rounds)
        per = [[], []]
        ratios = []
        for i in range(rounds):
            p50 = [0.0, 0.0]
            for side in ((0, 1) if i % 2 == 0 else (1, 0)):
                t = timed(side, path, k)
                per[side] += t
                p50[side] = rank(t, 0.5)
            ratios.append(p50[0] / p50[1])
        times = per[0]
        res["b"] = {"rows": len(json.loads(bodies[1])), "p50": rank(per[1], 0.5),
                    "p99": rank(per[1], 0.99), "max": max(per[1])}
        res["ratio"] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
        res["same"] = "yes" if bodies[0] == bodies[1] else "no"
    res.update({"p50": rank(times, 0.5), "p99": rank(times, 0.99), "max": max(times)})
    out[name] = res
print(json.dumps(out))
EOF
# q QUERY KEY...: one figure of queries.json.
q() {
    "$PY" -c 'import functools, json, sys; print(functools.reduce(lambda v, k: v[k], sys.argv[2:], json.load(open(sys.argv[1]))))' \
        "$OUT/queries.json" "$@"
}
f1() { awk -v x="$1" 'BEGIN { printf "%.1f", x }'; }
f2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a / b }'; }
QUERIES="auto auto10000 auto1000 raw"
for k in $QUERIES; do
    say "    $k: $(q $k rows) rows (step $(q $k step), $(q $k count) readings), p50 $(f1 "$(q $k p50)") ms, p99 $(f1 "$(q $k p99)") ms"
done
if [[ -n $VS ]]; then
    PER_ROUND=$((REQUESTS / ROUNDS > 0 ? REQUESTS / ROUNDS : 1))
    printf 'A/B %s UTC · A: the binary of commit %s · B: %s · %s rounds of %s requests per side and query, alternating\n\n' \
        "$(date -u '+%Y-%m-%d %H:%M')" "$(git rev-parse --short HEAD)" "$BENCH_HIST_VS" "$ROUNDS" "$PER_ROUND"
    printf '| query, 30 days | rows A / B | A p50 | A p99 | B p50 | B p99 | A ÷ B, p50 per round: median (min–max) | same bytes |\n'
    printf '|---|---|---|---|---|---|---|---|\n'
    for k in $QUERIES; do
        printf '| %s | %s %s / %s | %s ms | %s ms | %s ms | %s ms | %s (%s–%s) | %s |\n' "$k" "$(q $k rows)" "$(q $k step)" \
            "$(q $k b rows)" "$(f1 "$(q $k p50)")" "$(f1 "$(q $k p99)")" "$(f1 "$(q $k b p50)")" "$(f1 "$(q $k b p99)")" \
            "$(f2 "$(q $k ratio median)")" "$(f2 "$(q $k ratio min)")" "$(f2 "$(q $k ratio max)")" "$(q $k same)"
    done
    step "done (A/B: the doc is not touched); logs in $OUT"
    exit 0
fi
MET="$(awk -v a="$(q auto p99)" -v b="$(q auto10000 p99)" -v t="$TARGET_MS" 'BEGIN { print (a <= t && b <= t) ? "met" : "missed" }')"
COMMIT="$(git rev-parse --short HEAD)"
TABLE="$(
    cat <<EOF
Run $(date -u '+%Y-%m-%d %H:%M') UTC · commit $COMMIT · machine: \`nproc\` $(nproc), $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo) · store: $(thousands "$TOTAL") readings of $((DEVICES + 1)) devices ($DB_MB MB, $(thousands "$ROLLUP_ROWS") rollup rows), filled through Mosquitto in $FILL_S s, rolled up $ROLLUP_LAG_S s after the last commit · $REQUESTS requests per query on one kept-alive connection

| # | \`GET /api/v1/devices/$DEVICE/readings\`, 30 days | rows | p50 | p99 | max | target | status |
|---|---|---|---|---|---|---|---|
| h1 | default (\`step=auto\`, no \`limit\`) | $(thousands "$(q auto rows)") buckets of $(q auto step) ($(thousands "$(q auto count)") readings) | $(f1 "$(q auto p50)") ms | $(f1 "$(q auto p99)") ms | $(f1 "$(q auto max)") ms | p99 ≤ $TARGET_MS ms, h1 and h2 | **$MET** |
| h2 | \`limit=10000\` (the default \`limit\`) | $(thousands "$(q auto10000 rows)") buckets of $(q auto10000 step) ($(thousands "$(q auto10000 count)") readings) | $(f1 "$(q auto10000 p50)") ms | $(f1 "$(q auto10000 p99)") ms | $(f1 "$(q auto10000 max)") ms | (h1) | (h1) |
| h3 | \`limit=1000\` | $(thousands "$(q auto1000 rows)") buckets of $(q auto1000 step) | $(f1 "$(q auto1000 p50)") ms | $(f1 "$(q auto1000 p99)") ms | $(f1 "$(q auto1000 max)") ms | — | — |
| h4 | \`step=raw&limit=100000\` (the query before rollups) | $(thousands "$(q raw rows)") readings | $(f1 "$(q raw p50)") ms | $(f1 "$(q raw p99)") ms | $(f1 "$(q raw max)") ms | — | — |
| h5 | raw ÷ rollups, p50 | h4 ÷ h2: $(ratio "$(q raw p50)" "$(q auto10000 p50)") ×; h4 ÷ h3: $(ratio "$(q raw p50)" "$(q auto1000 p50)") × | | | | — | — |
EOF
)"
printf '%s\n' "$TABLE"
if [[ -n $DOC ]]; then
    printf '%s\n' "$TABLE" >"$OUT/table.md"
    "$PY" bench/doc-table.py "$DOC" bench-readings "$OUT/table.md"
    step "wrote the table into $DOC"
fi
step "done; logs in $OUT"
