#!/usr/bin/env bash
# firewatch benchmark of fairness under abuse: another building's fire alarm while one device
# floods the embedded broker.
#
#   bench/flood.sh
#
# Starts a release firewatch on its embedded defaults with access control on
# (`mqtt.embedded_auth`: every device logs in with its registry password and is held to
# `mqtt.device_rate`), e-mail to an SMTP capture server (scripts/smtp_capture.py), and a
# registry of the flooding device and 2 × BENCH_FLOOD_ALARMS alerting devices, each in a
# building of its own. Then, in the same run:
#
#   a. baseline: BENCH_FLOOD_ALARMS fire alarms (smoke events of fire-lane cameras), each from
#      its own logged-in connection, timed from the publish to the mail accepted by the SMTP
#      server (`firewatch-sim latency`);
#   b. the same while one device publishes BENCH_FLOOD_RATE readings a second (QoS 0, as fast
#      as its connection takes them) from before the first alarm until after the last.
#
# Reports both runs' percentiles, the ratio b / a of the p99s, the target (p99 ≤ 50 ms, the
# loaded alert latency target of bench/run.sh), what the flooder got through and how often the
# gate held it back, firewatch's CPU during the flood, and writes the table into
# docs/benchmarks.md between `<!-- bench-flood:begin -->` and `<!-- bench-flood:end -->`.
#
# Environment (all optional):
#   BENCH_FLOOD_RATE     readings a second the flooder tries to send (10000)
#   BENCH_FLOOD_ALARMS   fire alarms per run (200)
#   BENCH_BUILD          1: `cargo build --release --workspace --locked` first (1)
#   BENCH_OUT            logs and results (bench/out/flood-<UTC time>-<pid>)
#   BENCH_DOC            the file to update (docs/benchmarks.md); empty: none

set -Eeuo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO_ROOT"

RATE="${BENCH_FLOOD_RATE:-10000}"
ALARMS="${BENCH_FLOOD_ALARMS:-200}"
BUILD="${BENCH_BUILD:-1}"
DOC="${BENCH_DOC-docs/benchmarks.md}"
OUT="${BENCH_OUT:-bench/out/flood-$(date -u +%Y%m%dT%H%M%SZ)-$$}"
FW="$REPO_ROOT/target/release/firewatch"
SIM="$REPO_ROOT/target/release/firewatch-sim"
TARGET_MS=50
DEVICE_RATE=50 # firewatch's default mqtt.device_rate
PASSWORD="bench-device-password"

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metric() { curl -s "http://127.0.0.1:$http/metrics" | awk -v m="$1" '$1 == m {print $2; found = 1} END {if (!found) print 0}'; }
ticks() { awk '{print $14 + $15}' "/proc/$FW_PID/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$FW_PID/status"; }

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd -P)"
if [[ $BUILD == 1 ]]; then
    say "Building (release)"
    cargo build --release --workspace --locked >"$OUT/build.log" 2>&1
fi
[[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null ||
    die "Debian's python3-aiosmtpd is missing (apt-get install python3-aiosmtpd)"

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# The registry: the flooder and the alerting devices of both runs (prefixes `la` and `lb`, as
# `firewatch-sim latency` and `load` name them), all with one password. Its hash is made by
# `firewatch registry passwd` on a registry of one device, then given to every device.
one="$OUT/one.toml"
printf '[[building]]\nid = "flood-b0000"\n[[device]]\nid = "flood-000000"\nbuilding = "flood-b0000"\nkind = "water_pressure"\n' >"$one"
printf '%s\n' "$PASSWORD" | FIREWATCH__REGISTRY__FILE="$one" "$FW" registry passwd flood-000000 2>"$OUT/passwd.log" ||
    die "firewatch registry passwd failed: $(cat "$OUT/passwd.log")"
hash="$(awk -F'"' '/^mqtt_password_hash/ {print $2}' "$one")"
[[ $hash == '$7$'* ]] || die "no password hash in $one"
reg="$OUT/registry.toml"
python3 - "$ALARMS" "$hash" >"$reg" <<'PY'
import sys
n, h = int(sys.argv[1]), sys.argv[2]
def device(d, b, kind):
    print(f'[[building]]\nid = "{b}"\n[[device]]\nid = "{d}"\nbuilding = "{b}"\nkind = "{kind}"\nmqtt_password_hash = "{h}"')
device("flood-000000", "flood-b0000", "water_pressure")
for prefix in ("la", "lb"):
    for i in range(n):
        device(f"{prefix}-{i:05d}", f"{prefix}-lat-{i:05d}", "fire_lane")
PY

smtp="$(free_port)"; http="$(free_port)"; mqtt="$(free_port)"
mkdir -p "$OUT/mail"
/usr/bin/python3 -u scripts/smtp_capture.py --listen "127.0.0.1:$smtp" --maildir "$OUT/mail" \
    >"$OUT/smtp.log" 2>&1 &
PIDS+=($!)
env FIREWATCH__HTTP__LISTEN="127.0.0.1:$http" \
    FIREWATCH__MQTT__EMBEDDED_LISTEN="127.0.0.1:$mqtt" \
    FIREWATCH__MQTT__EMBEDDED_AUTH=true \
    FIREWATCH__STORAGE__DIR="$OUT/store" \
    FIREWATCH__REGISTRY__FILE="$reg" \
    FIREWATCH__EMAIL__SMTP_URL="smtp://127.0.0.1:$smtp" \
    FIREWATCH__EMAIL__TO=bench@duty.test \
    "$FW" run </dev/null >"$OUT/firewatch.log" 2>&1 &
FW_PID=$!
PIDS+=("$FW_PID")
up=0
for _ in $(seq 1 600); do
    if [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http/healthz" || true)" == 200 ]]; then
        up=1
        break
    fi
    sleep 0.1
done
((up == 1)) || die "firewatch did not become healthy in 60 s: $(tail -n 5 "$OUT/firewatch.log")"

latency() { # LABEL PREFIX
    FW_SIM_DEVICE_PASSWORD="$PASSWORD" timeout -k 5 300 "$SIM" latency --broker "mqtt://127.0.0.1:$mqtt" \
        --maildir "$OUT/mail" --count "$ALARMS" --interval-ms 20 --prefix "$2" \
        >"$OUT/latency-$1.json" 2>"$OUT/latency-$1.err" || {
        local rc=$?
        ((rc == 1)) || die "firewatch-sim latency ($1) failed with status $rc: $(tail -n 3 "$OUT/latency-$1.err")"
    }
    say "    $1: $(cat "$OUT/latency-$1.json")"
}

say "a. baseline: $ALARMS fire alarms, each from its own logged-in connection"
latency idle la

say "b. the same while flood-000000 sends $RATE readings a second"
throttled0="$(metric firewatch_broker_throttled_total)"
committed0="$(metric firewatch_messages_committed_total)"
# Long enough to cover the alarms (ALARMS × 20 ms) and their mails, with room on both sides.
flood_s=$((ALARMS * 20 / 1000 + 20))
f0="$(date +%s.%N)"; rss0="$(rss_kib)"
FW_SIM_DEVICE_PASSWORD="$PASSWORD" "$SIM" load --broker "mqtt://127.0.0.1:$mqtt" --devices 1 \
    --rate "$RATE" --duration "${flood_s}s" --qos 0 --prefix flood --quiet \
    >"$OUT/flood.json" 2>"$OUT/flood.err" &
FLOOD_PID=$!
PIDS+=("$FLOOD_PID")
held=0
for _ in $(seq 1 300); do
    if (($(metric firewatch_broker_throttled_total) > throttled0 + 100)); then
        held=1
        break
    fi
    sleep 0.1
done
((held == 1)) || die "the gate did not hold the flooder back within 30 s: $(tail -n 3 "$OUT/flood.err")"
t0="$(ticks)"; s0="$(date +%s.%N)"
latency flood lb
t1="$(ticks)"; s1="$(date +%s.%N)"; rss1="$(rss_kib)"
alive=0
kill -0 "$FLOOD_PID" 2>/dev/null && alive=1
throttled1="$(metric firewatch_broker_throttled_total)"
committed1="$(metric firewatch_messages_committed_total)"
wait "$FLOOD_PID" || die "firewatch-sim load (the flood) failed: $(tail -n 3 "$OUT/flood.err")"
((alive == 1)) || say "    note: the flood ended before the alarms had all their mails"

python3 - "$OUT" "$RATE" "$TARGET_MS" "$DEVICE_RATE" "$throttled0" "$throttled1" "$committed0" "$committed1" \
    "$t0" "$t1" "$s0" "$s1" "$f0" "$rss0" "$rss1" "$(getconf CLK_TCK)" "$(git rev-parse --short HEAD)" "$alive" <<'PY' >"$OUT/table.md"
import json, sys, datetime, os
(out, rate, target, device_rate, th0, th1, c0, c1, t0, t1, s0, s1, f0, rss0, rss1, tck, commit, alive) = sys.argv[1:]
idle = json.load(open(f"{out}/latency-idle.json"))
flood = json.load(open(f"{out}/latency-flood.json"))
sent = json.load(open(f"{out}/flood.json"))
secs = float(s1) - float(s0)
cpu = (int(t1) - int(t0)) / int(tck) / secs
# Committed from the flood's start to the last alarm's mail: the alarms, and what the gate let
# through of the flood (its burst first).
through = int(float(c1)) - int(float(c0)) - flood["count"]
flooding = float(s1) - float(f0)
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
def cell(r):
    return f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms; {r['count']} of {r['count'] + r['missing']} mails"
ok = flood["p99_ms"] <= float(target) and flood["missing"] == 0 and alive == "1"
print(f"Run {now} · commit {commit} · machine: `nproc` {os.cpu_count()} · `mqtt.embedded_auth = true`, `mqtt.device_rate` {device_rate}\n")
print("| # | measurement | result | target | status |\n|---|---|---|---|---|")
print(f"| a | fire alarm, publish → mail accepted, each from its own logged-in connection | {cell(idle)} | — | baseline |")
print(f"| b | the same while one device tries {int(rate):,} readings a second | {cell(flood)}; p99 {flood['p99_ms'] / idle['p99_ms']:.2f} × baseline | p99 ≤ {target} ms | **{'met' if ok else 'missed'}** (p99 = {flood['p99_ms'] / float(target):.2f} × target) |")
print(f"| c | the flooder | its client library accepted {sent['sent']:,} readings in {sent['elapsed_s']:.1f} s ({sent['rate']:,.0f} a second); in the {flooding:.1f} s from its start to the last alarm's mail firewatch committed {through:,} of them, {(through - 500) / flooding:,.0f} a second after the burst of 500; the gate held {int(float(th1)) - int(float(th0)):,} publishes back | ≤ {device_rate} a second after the burst | **{'met' if (through - 500) / flooding <= float(device_rate) * 1.05 else 'missed'}** |")
print(f"| d | firewatch during run b | {cpu:.2f} cores; VmRSS {int(rss0) / 1024:.1f} MiB before the flood, {int(rss1) / 1024:.1f} MiB after the last alarm | — | — |")
PY
cat "$OUT/table.md"
if [[ -n $DOC ]]; then
    python3 bench/doc-table.py "$DOC" bench-flood "$OUT/table.md"
fi
