#!/usr/bin/env bash
# firewatch benchmark of the GB/T 26875.3 gateway: many transmitters over TCP.
#
#   bench/gb.sh
#
# Starts a release firewatch on its embedded defaults (built-in broker, embedded store, e-mail
# to the outbox) with the gateway on a free loopback port and a registry of BENCH_GB_COUNT
# transmitters (gb_address 10000 upwards, 100 per building), then, in the same run:
#
#   a. baseline: one transmitter connected, BENCH_GB_ALARMS fire alarms timed from the send to
#      the gateway's confirm (which comes only once the alarm's alert is committed);
#   b. BENCH_GB_COUNT transmitters connected, each with a heartbeat every 30 s, settled for
#      BENCH_GB_SETTLE_S, then the same fire alarms from connections picked in turn;
#   c. as b, with BENCH_GB_FLOODERS more connections flooding meanwhile (garbage as fast as
#      they can, or heartbeats without waiting for confirms), each closed and reconnecting.
#
# Reports both runs' percentiles, the ratio b / a of the p99s, the target (p99 ≤ 50 ms, the
# loaded alert latency target), firewatch's resident memory and CPU while holding the
# connections, and writes the table into docs/benchmarks.md between `<!-- bench-gb:begin -->`
# and `<!-- bench-gb:end -->`.
#
# Environment (all optional):
#   BENCH_GB_COUNT      transmitters (5000)
#   BENCH_GB_ALARMS     fire alarms per run (200)
#   BENCH_GB_SETTLE_S   seconds with heartbeats before the alarms (60)
#   BENCH_GB_FLOODERS   flooding connections in run e (4)
#   BENCH_BUILD         1: `cargo build --release --workspace --locked` first (1)
#   BENCH_OUT           logs and results (bench/out/gb-<UTC time>-<pid>)
#   BENCH_DOC           the file to update (docs/benchmarks.md); empty: none

set -Eeuo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO_ROOT"

COUNT="${BENCH_GB_COUNT:-5000}"
ALARMS="${BENCH_GB_ALARMS:-200}"
SETTLE="${BENCH_GB_SETTLE_S:-60}"
FLOODERS="${BENCH_GB_FLOODERS:-4}"
BUILD="${BENCH_BUILD:-1}"
DOC="${BENCH_DOC-docs/benchmarks.md}"
OUT="${BENCH_OUT:-bench/out/gb-$(date -u +%Y%m%dT%H%M%SZ)-$$}"
FW="$REPO_ROOT/target/release/firewatch"
SIM="$REPO_ROOT/target/release/firewatch-sim"
TARGET_MS=50

say() { printf '%s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd -P)"
if [[ $BUILD == 1 ]]; then
    say "Building (release)"
    cargo build --release --workspace --locked >"$OUT/build.log" 2>&1
fi
# Both ends of every connection live on this machine: two descriptors each, and some.
ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < 2 * COUNT + 1000)); then
    say "bench: open-files limit $(ulimit -n) is below the $((2 * COUNT + 1000)) that $COUNT connections need"
    exit 1
fi

# The registry: COUNT transmitters, 100 per building.
reg="$OUT/registry.toml"
python3 - "$COUNT" >"$reg" <<'PY'
import sys
n = int(sys.argv[1])
for b in range((n + 99) // 100):
    print(f'[[building]]\nid = "gb-b{b:04d}"')
for i in range(n):
    print(f'[[device]]\nid = "uitd-{i:05d}"\nbuilding = "gb-b{i // 100:04d}"\nkind = "transmitter"\ngb_address = "{10000 + i}"')
PY

http="$(free_port)"; mqtt="$(free_port)"; gb="$(free_port)"
env FIREWATCH__HTTP__LISTEN="127.0.0.1:$http" \
    FIREWATCH__MQTT__EMBEDDED_LISTEN="127.0.0.1:$mqtt" \
    FIREWATCH__STORAGE__DIR="$OUT/store" \
    FIREWATCH__REGISTRY__FILE="$reg" \
    FIREWATCH__GB26875__LISTEN="127.0.0.1:$gb" \
    FIREWATCH__GB26875__MAX_CONNECTIONS=60000 \
    "$FW" run </dev/null >"$OUT/firewatch.log" 2>&1 &
FW_PID=$!
trap 'kill "$FW_PID" 2>/dev/null || true; wait "$FW_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http/healthz" || true)" == 200 ]] && break
    sleep 0.1
done
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$FW_PID/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$FW_PID/stat"; }
rss0="$(rss_kib)"

say "a. baseline: 1 transmitter, $ALARMS fire alarms"
"$SIM" gb --connect "127.0.0.1:$gb" --count 1 --first-address 10000 --settle-s 2 \
    --alarms "$ALARMS" --interval-ms 20 >"$OUT/one.json" 2>"$OUT/one.log"
say "b. $COUNT transmitters, heartbeats every 30 s, settle ${SETTLE} s, $ALARMS fire alarms"
t0="$(ticks)"; s0="$(date +%s.%N)"
"$SIM" gb --connect "127.0.0.1:$gb" --count "$COUNT" --first-address 10000 \
    --settle-s "$SETTLE" --alarms "$ALARMS" --interval-ms 50 --quirks >"$OUT/many.json" 2>"$OUT/many.log" &
SIM_PID=$!
sleep "$(python3 -c "print(max(1, $SETTLE - 5))")"
rss1="$(rss_kib)"; t1="$(ticks)"; s1="$(date +%s.%N)"
conns="$(curl -s "http://127.0.0.1:$http/metrics" | awk '$1 == "firewatch_gb_connections" {print $2}')"
wait "$SIM_PID"
say "c. $COUNT transmitters and $FLOODERS flooding connections, $ALARMS fire alarms"
closed0="$(curl -s "http://127.0.0.1:$http/metrics" | awk '/^firewatch_gb_closed_total\{reason="(flood|garbage)"\}/ {n += $2} END {print n + 0}')"
"$SIM" gb --connect "127.0.0.1:$gb" --count "$COUNT" --first-address 10000 \
    --settle-s 20 --alarms "$ALARMS" --interval-ms 50 --flooders "$FLOODERS" >"$OUT/flood.json" 2>"$OUT/flood.log"
closed1="$(curl -s "http://127.0.0.1:$http/metrics" | awk '/^firewatch_gb_closed_total\{reason="(flood|garbage)"\}/ {n += $2} END {print n + 0}')"

python3 - "$OUT" "$COUNT" "$rss0" "$rss1" "$t0" "$t1" "$s0" "$s1" "$conns" "$TARGET_MS" "$(getconf CLK_TCK)" "$(git rev-parse --short HEAD)" "$((closed1 - closed0))" "$FLOODERS" <<'PY' >"$OUT/table.md"
import json, sys, datetime, os
out, count, rss0, rss1, t0, t1, s0, s1, conns, target, tck, commit, closed, flooders = sys.argv[1:]
one = json.load(open(f"{out}/one.json")); many = json.load(open(f"{out}/many.json"))
flood = json.load(open(f"{out}/flood.json"))
cpu = (int(t1) - int(t0)) / int(tck) / (float(s1) - float(s0))
per = (int(rss1) - int(rss0)) * 1024 / int(count)
ratio = many["p99_ms"] / one["p99_ms"] if one["p99_ms"] else float("nan")
ok = many["p99_ms"] <= float(target) and many["unconfirmed"] == 0 and many["lost"] == 0
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print(f"Run {now} · commit {commit} · machine: `nproc` {os.cpu_count()}\n")
print("| # | measurement | result | target | status |\n|---|---|---|---|---|")
print(f"| a | fire alarm, send → confirm (committed), 1 transmitter | p50 {one['p50_ms']:.1f} ms, p99 {one['p99_ms']:.1f} ms, max {one['max_ms']:.1f} ms; {one['alarms']} of {one['alarms'] + one['unconfirmed']} confirmed | — | baseline |")
print(f"| b | the same with {count} transmitters connected, heartbeats every 30 s | p50 {many['p50_ms']:.1f} ms, p99 {many['p99_ms']:.1f} ms, max {many['max_ms']:.1f} ms; {many['alarms']} of {many['alarms'] + many['unconfirmed']} confirmed; p99 {ratio:.2f} × baseline | p99 ≤ {target} ms | **{'met' if ok else 'missed'}** (p99 = {many['p99_ms'] / float(target):.2f} × target) |")
fok = flood["p99_ms"] <= float(target) and flood["unconfirmed"] == 0
print(f"| c | as b, with {flooders} flooding connections meanwhile, closed by firewatch and reconnecting {flood['flood_closed']} times (firewatch counted {closed} closed for flood or garbage; the flooders put {flood['flood_bytes'] / 1e6:,.0f} MB into their sockets) | p50 {flood['p50_ms']:.1f} ms, p99 {flood['p99_ms']:.1f} ms, max {flood['max_ms']:.1f} ms; {flood['alarms']} of {flood['alarms'] + flood['unconfirmed']} confirmed; p99 {flood['p99_ms'] / one['p99_ms']:.2f} × baseline | p99 ≤ {target} ms | **{'met' if fok else 'missed'}** (p99 = {flood['p99_ms'] / float(target):.2f} × target) |")
print(f"| d | holding the connections | {conns} open (gauge), {many['connected']} connected, {many['lost']} lost; {many['heartbeats_confirmed']} of {many['heartbeats_sent']} heartbeats confirmed, {many['commands']} commands of firewatch's (clock syncs) confirmed | — | — |")
print(f"| e | firewatch while holding them (run b) | {cpu:.2f} cores; VmRSS {int(rss0) / 1024:.1f} → {int(rss1) / 1024:.1f} MiB, {per:,.0f} bytes per connection | — | — |")
PY
cat "$OUT/table.md"
if [[ -n $DOC ]]; then
    python3 bench/doc-table.py "$DOC" bench-gb "$OUT/table.md"
fi
