#!/usr/bin/env bash
# firewatch benchmark harness: one command, one broker, one table.
#
#   bench/run.sh
#
# Measures, against one Mosquitto started with the settings of deploy/mosquitto.conf (through
# scripts/test-services.sh, together with VictoriaMetrics and the SMTP capture server, all on
# free loopback ports):
#
#   1. raw ceiling: N QoS 1 messages from `firewatch-sim load` to a bare `mosquitto_sub`;
#   2. firewatch sustained ingest of the same N (rules, embedded store with
#      storage.synchronous = "full", TSDB writes, e-mail to the capture server), and the time
#      until the TSDB spool is empty;
#   3. end-to-end alert latency (publish → mail accepted by the SMTP server), without and with
#      a 20k msg/s background load;
#   4. resident memory per device at 10k and 100k devices;
#   5. drain: BENCH_DRAIN_N readings queued at the broker while firewatch is stopped, from its
#      start until the TSDB holds them all, against a bare `mosquitto_sub` draining the same
#      queue;
#   6. the embedded broker (rumqttd, `mqtt.url = "embedded"`): the ingest of step 2 on it.
#
# Steps 2, 3 and 5 also show where the time goes, per stage, from firewatch's
# `firewatch_stage_seconds` histograms (received → committed → send started → accepted;
# committed → in the TSDB).
#
# Prints the result table (markdown) on stdout, progress lines on stderr, and writes the table
# into docs/benchmarks.md between `<!-- bench:begin -->` and `<!-- bench:end -->`. Method and
# meaning of every number: docs/benchmarks.md.
#
# Environment (all optional):
#   BENCH_N                messages for steps 1 and 2 (200000)
#   BENCH_BG_RATE          background load of step 3, msg/s (20000)
#   BENCH_BG_DURATION      its duration (40s)
#   BENCH_LAT_COUNT        alerts per latency run (200)
#   BENCH_LAT_INTERVAL_MS  between alerts (50)
#   BENCH_MEM_DEVICES      device counts of step 4 ("10000 100000")
#   BENCH_MEM_RUNS         runs of step 4 per device count (3); the largest figure is judged
#   BENCH_DRAIN_N          readings queued for step 5 (100000)
#   BENCH_TIMEOUT          bound, in seconds, of every wait for messages to arrive (600)
#   BENCH_BUILD            1: run `cargo build --release --workspace --locked` first (1)
#   BENCH_OUT              where logs and results go (bench/out/<UTC time>-<pid>)
#   BENCH_KEEP             1: keep the broker, TSDB and store state in BENCH_OUT (0)
#   BENCH_DOC              the file to update (docs/benchmarks.md); BENCH_DOC= (empty) skips it
#
# Needs Debian's mosquitto, mosquitto-clients, victoria-metrics and python3-aiosmtpd (installed
# by scripts/test-services.sh when missing) and curl. FIREWATCH__* variables of the calling
# environment are ignored: every firewatch instance gets exactly the settings listed in
# docs/benchmarks.md.

set -Eeuo pipefail
# No silent exits: name the command that failed.
trap 'printf "bench: error: command failed with status %s at line %s: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >&2' ERR

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO_ROOT"

N="${BENCH_N:-200000}"
BG_RATE="${BENCH_BG_RATE:-20000}"
BG_DURATION="${BENCH_BG_DURATION:-40s}"
LAT_COUNT="${BENCH_LAT_COUNT:-200}"
LAT_INTERVAL_MS="${BENCH_LAT_INTERVAL_MS:-50}"
MEM_DEVICES="${BENCH_MEM_DEVICES:-10000 100000}"
MEM_RUNS="${BENCH_MEM_RUNS:-3}"
DRAIN_N="${BENCH_DRAIN_N:-100000}"
TIMEOUT="${BENCH_TIMEOUT:-600}"
BUILD="${BENCH_BUILD:-1}"
KEEP="${BENCH_KEEP:-0}"
DOC="${BENCH_DOC-docs/benchmarks.md}"
OUT="${BENCH_OUT:-bench/out/$(date -u +%Y%m%dT%H%M%SZ)-$$}"

FW="$REPO_ROOT/target/release/firewatch"
SIM="$REPO_ROOT/target/release/firewatch-sim"
SYS_PYTHON=/usr/bin/python3
TIMEFORMAT='%R %U %S'   # bash `time`: real, user, system seconds
LOAD_DEVICES=1000
BG_PREFIX="bg"
# Targets.
TARGET_RATIO=0.9     # ingest ≥ 0.9 × raw ceiling
TARGET_P99_MS=50     # alert latency p99 under background load
TARGET_RSS_B=2048    # resident bytes per device at 100k devices
TARGET_IDLE_P99_MS=10  # alert latency p99 without background load
TARGET_DRAIN_RATIO=0.9 # backlog drain ≥ 0.9 × a bare mosquitto_sub
TARGET_EMBEDDED_RATIO=0.9 # ingest on the embedded broker ≥ 0.9 × on Mosquitto

for v in N BG_RATE LAT_COUNT LAT_INTERVAL_MS TIMEOUT DRAIN_N MEM_RUNS; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || {
        printf 'bench: error: BENCH_%s must be a positive integer, got %q\n' "$v" "${!v}" >&2
        exit 2
    }
done
for d in $MEM_DEVICES; do
    [[ $d =~ ^[0-9]+$ && $d -gt 0 ]] || {
        printf 'bench: error: BENCH_MEM_DEVICES: %q is not a positive integer\n' "$d" >&2
        exit 2
    }
done

# Only the settings given below reach firewatch.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^FIREWATCH__' || true)

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

say() { printf '%s\n' "$*" >&2; }
step() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'bench: error: %s\n' "$*" >&2
    exit 1
}

now() { date +%s.%N; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# calc EXPR: floating-point arithmetic (awk), printed with up to 6 significant digits.
calc() { awk "BEGIN { print $1 }"; }
# fmt FORMAT VALUE
fmt() { awk -v f="$1" -v x="$2" 'BEGIN { printf f, x }'; }
# Integer with thousands separators: 48512 → 48,512.
thousands() {
    awk -v x="$1" 'BEGIN {
        s = sprintf("%.0f", x); neg = (substr(s, 1, 1) == "-"); if (neg) s = substr(s, 2)
        o = ""; while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
        printf "%s%s%s", (neg ? "-" : ""), s, o }'
}
# json FILE KEY: a field of the last JSON line in FILE ("null" for null).
json() {
    "$SYS_PYTHON" -c '
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip().startswith("{")]
if not lines:
    sys.exit("no JSON line in " + sys.argv[1])
v = json.loads(lines[-1]).get(sys.argv[2])
print("null" if v is None else v)' "$1" "$2"
}

alive() {
    local s
    s="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    s="${s##*) }"
    [[ ${s:0:1} != Z ]]
}

# Background processes started by this script (direct children, one process each).
declare -A TRACKED=()
track() { TRACKED[$1]=$2; }
untrack() { unset "TRACKED[$1]"; }

# Ours, still running: alive and a child of this shell (a finished child's pid may be reused).
ours() {
    alive "$1" && [[ "$(awk '/^PPid:/ { print $2 }' "/proc/$1/status" 2>/dev/null)" == "$$" ]]
}

# stop_pid PID SECONDS: SIGTERM, then SIGKILL after SECONDS. Returns 1 if SIGKILL was needed.
stop_pid() {
    local pid=$1 secs=$2 i rc=0
    if ours "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < secs * 10; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
            rc=1
        fi
    fi
    wait "$pid" 2>/dev/null || true
    untrack "$pid"
    return "$rc"
}

SERVICES_STARTED=0
cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM ERR
    local pid name
    for pid in "${!TRACKED[@]}"; do
        name="${TRACKED[$pid]}"
        say "Stopping $name (pid $pid)"
        stop_pid "$pid" 15 || say "$name (pid $pid) needed SIGKILL"
    done
    if ((SERVICES_STARTED)); then
        scripts/test-services.sh stop "$OUT/services" >"$OUT/services-stop.log" 2>&1 ||
            say "test-services.sh stop failed; see $OUT/services-stop.log"
    fi
    if [[ -d $OUT ]] && [[ $KEEP != 1 ]]; then
        rm -rf "$OUT/services/vm" "$OUT/services/mosquitto" "$OUT"/store-* "$OUT"/*.tmp
    fi
    if ((status != 0)); then
        say "bench: failed (exit status $status); logs are in $OUT"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_until DESCRIPTION SECONDS COMMAND...: polls COMMAND every 0.1 s.
wait_until() {
    local what=$1 secs=$2 deadline
    shift 2
    deadline=$(($(date +%s) + secs))
    until "$@"; do
        (($(date +%s) < deadline)) || die "timed out after ${secs} s waiting for $what"
        sleep 0.1
    done
}

free_port() {
    "$SYS_PYTHON" -c '
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# CPU ticks (user + system) of a process, all its threads, living and dead.
CLK_TCK="$(getconf CLK_TCK)"
proc_ticks() {
    local s
    s="$(cat "/proc/$1/stat" 2>/dev/null)" || {
        echo 0
        return
    }
    s="${s##*) }"
    # Fields from 3 (state) on: utime is field 14, stime field 15.
    awk '{ print $12 + $13 }' <<<"$s"
}
# cpu_snapshot FILE BG_PID: "time busy total" of the machine and the CPU ticks of firewatch,
# Mosquitto, VictoriaMetrics, the SMTP capture server and BG_PID, on one line.
cpu_snapshot() {
    local busy total
    read -r busy total < <(machine_ticks)
    printf '%s %s %s %s %s %s %s %s\n' "$(now)" "$busy" "$total" "$(proc_ticks "$FW_PID")" \
        "$(proc_ticks "$MOSQ_PID")" "$(proc_ticks "$VM_PID")" "$(proc_ticks "$SMTP_PID")" \
        "$(proc_ticks "$2")" >"$1"
}
# Machine-wide busy and total ticks (all CPUs), "busy total".
machine_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
# snap_threads PID FILE: "tid comm ticks run_ns runqueue_wait_ns" per living thread (CPU ticks
# from stat; from schedstat the time on a CPU and the time runnable but waiting for one).
snap_threads() {
    local pid=$1 f s comm rest sched
    : >"$2"
    for f in /proc/"$pid"/task/*/stat; do
        s="$(cat "$f" 2>/dev/null)" || continue
        sched="$(cat "${f%stat}schedstat" 2>/dev/null || echo "0 0 0")"
        comm="${s#*(}"
        comm="${comm%)*}"
        rest="${s##*) }"
        printf '%s %s %s %s\n' "$(basename "$(dirname "$f")")" "${comm// /_}" \
            "$(awk '{ print $12 + $13 }' <<<"$rest")" "$(awk '{ print $1, $2 }' <<<"$sched")" >>"$2"
    done
}
# thread_sched BEFORE AFTER NAME: "on_cpu_s runqueue_wait_s" summed over the threads NAME.
thread_sched() {
    awk -v name="$3" '
        NR == FNR { r[$1] = $4; w[$1] = $5; next }
        $2 == name { run += $4 - (($1 in r) ? r[$1] : 0); wait += $5 - (($1 in w) ? w[$1] : 0) }
        END { printf "%.2f %.2f\n", run / 1e9, wait / 1e9 }' "$1" "$2"
}
# thread_cores BEFORE AFTER SECONDS: "comm cores" per thread name, busiest first.
thread_cores() {
    awk -v secs="$3" -v hz="$CLK_TCK" '
        NR == FNR { before[$1] = $3; next }
        { d = $3 - (($1 in before) ? before[$1] : 0); by[$2] += d; n[$2]++ }
        END { for (c in by) printf "%s %.2f %d\n", c, by[c] / hz / secs, n[c] }' "$1" "$2" |
        sort -k2,2 -rn
}

# sampler FILE PID...: every 50 ms, writes the CPU ticks of each PID to FILE.PID (the last
# value seen before the process ended; at most 50 ms of its CPU time go unseen).
sampler() {
    local f=$1 p s
    local -a a
    shift
    while :; do
        for p in "$@"; do
            { read -r s <"/proc/$p/stat"; } 2>/dev/null || continue
            s="${s##*) }"
            read -r -a a <<<"$s"
            printf '%s\n' "$((a[11] + a[12]))" >"$f.$p"
        done
        sleep 0.05
    done
}

# ---------------------------------------------------------------------------
# Broker, firewatch
# ---------------------------------------------------------------------------

mqtt_port() { printf '%s' "$FW_TEST_MQTT_PORT"; }

# Connecting with a clean session discards a persistent session of that client id, so that the
# broker does not keep queueing messages for a client that is gone.
drop_session() {
    timeout --foreground -k 5 20 mosquitto_sub -h 127.0.0.1 -p "$(mqtt_port)" -i "$1" \
        -t 'bench/none' -E >/dev/null 2>>"$OUT/mosquitto_sub.err" ||
        say "warning: could not drop the broker session of $1"
}

FW_PID=""
FW_URL=""
FW_LOG=""
fw_alive_or_die() {
    if ! alive "$FW_PID"; then
        tail -n 30 "$FW_LOG" >&2 || true
        die "firewatch (pid $FW_PID) exited; see $FW_LOG"
    fi
}
healthz_ok() {
    fw_alive_or_die
    [[ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$FW_URL/healthz" || true)" == 200 ]]
}
fetch_metrics() {
    fw_alive_or_die
    curl -sf -m 5 "$FW_URL/metrics" >"$OUT/metrics.txt"
}
# metric NAME: its value from the last fetch (0 if absent).
metric() { awk -v n="$1" '$1 == n { v = $2 } END { print (v == "" ? 0 : v) }' "$OUT/metrics.txt"; }
rejected_total() { awk '$1 ~ /^firewatch_messages_rejected_total\{/ { s += $2 } END { print s + 0 }' "$OUT/metrics.txt"; }

LAST_PROGRESS=0
committed_at_least() {
    local want=$1 c
    fetch_metrics || return 1
    c="$(metric firewatch_messages_committed_total)"
    if (($(date +%s) - LAST_PROGRESS >= 5)); then
        LAST_PROGRESS=$(date +%s)
        say "    committed $c of $want"
    fi
    ((c >= want))
}
spool_empty() {
    fetch_metrics || return 1
    (($(metric firewatch_tsdb_spool_points) == 0))
}

# poll_metrics FILE: every 0.25 s, "time queue_depth notifications_queued committed" from
# /metrics (runs in the background while a load runs).
poll_metrics() {
    while :; do
        if curl -sf -m 2 "$FW_URL/metrics" -o "$1.tmp" 2>/dev/null; then
            awk -v t="$(date +%s.%N)" '
                $1 == "firewatch_pipeline_queue_depth" { d = $2 }
                $1 == "firewatch_notifications_queued" { q = $2 }
                $1 == "firewatch_messages_committed_total" { c = $2 }
                END { print t, d + 0, q + 0, c + 0 }' "$1.tmp" >>"$1"
        fi
        sleep 0.25
    done
}
# poll_max FILE COLUMN: the largest value seen in that column (2: queue depth, 3: outbox).
poll_max() { awk -v c="$2" '$c > m { m = $c } END { print m + 0 }' "$1" 2>/dev/null || echo 0; }

# store_split PREFIX: for the alerts of the latency devices PREFIX-*, firewatch's own share
# of the latency, from the store: the e-mail notification's created_at (the time firewatch received the event)
# → sent_at (the SMTP server accepted the mail). Prints "n p50 p99 max" in ms.
store_split() {
    "$SYS_PYTHON" - "$FW_STORE/firewatch.db" "$1" <<'PY'
import math, sqlite3, sys
db, prefix = sys.argv[1], sys.argv[2]
try:
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    v = sorted(r[0] for r in c.execute(
        "SELECT o.sent_at - o.created_at FROM notifications o JOIN alerts a ON a.id = o.alert_id "
        "WHERE a.device LIKE ? AND o.channel = 'email' AND o.sent_at IS NOT NULL",
        (prefix + "-%",)))
except sqlite3.Error as e:
    print("bench: warning: reading the outbox of %s: %s" % (db, e), file=sys.stderr)
    v = []
if not v:
    print("0 0 0 0")
else:
    rank = lambda p: v[min(len(v), max(1, math.ceil(p / 100 * len(v)))) - 1]
    print(len(v), rank(50), rank(99), v[-1])
PY
}

# stages BEFORE AFTER: per stage of firewatch_stage_seconds, what happened between two /metrics
# snapshots: "series count p50_ms p99_ms mean_ms" per line (series e.g. received_committed/event).
# Quantiles interpolate linearly inside a bucket, as Prometheus' histogram_quantile() does.
stages() {
    "$SYS_PYTHON" - "$1" "$2" <<'PY'
import re, sys
pat = re.compile(r'^firewatch_stage_seconds_(bucket|sum|count)\{([^}]*)\} (\S+)$')
def load(path):
    d = {}
    for line in open(path):
        m = pat.match(line.strip())
        if not m:
            continue
        labels = dict(kv.split("=", 1) for kv in m.group(2).split(","))
        labels = {k: v.strip('"') for k, v in labels.items()}
        le = labels.pop("le", None)
        series = labels["stage"] + "/" + (labels.get("lane") or labels.get("channel") or "-")
        e = d.setdefault(series, {"b": {}, "sum": 0.0, "count": 0.0})
        if m.group(1) == "bucket":
            e["b"][float("inf") if le == "+Inf" else float(le)] = float(m.group(3))
        else:
            e[m.group(1)] = float(m.group(3))
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
for series in sorted(b):
    e1, e0 = b[series], a.get(series, {"b": {}, "sum": 0.0, "count": 0.0})
    n = e1["count"] - e0["count"]
    if n <= 0:
        print(series, 0, "-", "-", "-")
        continue
    les = sorted(e1["b"])
    cum = [e1["b"][le] - e0["b"].get(le, 0.0) for le in les]
    def q(p):
        rank = p * n
        prev_le, prev_c = 0.0, 0.0
        for le, c in zip(les, cum):
            if c >= rank:
                if le == float("inf"):
                    return prev_le
                return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)
            prev_le, prev_c = le, c
        return les[-2]
    mean = (e1["sum"] - e0["sum"]) / n
    print(series, int(n), "%.1f" % (q(0.5) * 1000), "%.1f" % (q(0.99) * 1000), "%.1f" % (mean * 1000))
PY
}
# stage_cell FILE SERIES: "p50 X ms, p99 Y ms (n)" of one series of a `stages` output.
stage_cell() {
    awk -v s="$2" '$1 == s { found = 1; if ($2 == 0) print "none"; else printf "p50 %s ms, p99 %s ms, mean %s ms (%s)", $3, $4, $5, $2 } END { if (!found) print "none" }' "$1"
}
snapshot_metrics() { fw_alive_or_die; curl -sf -m 5 "$FW_URL/metrics" >"$1"; }

# start_fw NAME CLIENT_ID [VAR=VALUE...]: a firewatch with a fresh store in $OUT/store-NAME
# (FW_KEEP_STORE=1: the store of an earlier start of NAME),
# started from the repository root (config/default.toml, config/rules.toml), waited for until
# /healthz answers 200.
start_fw() {
    local name=$1 cid=$2 port
    shift 2
    port="$(free_port)"
    FW_URL="http://127.0.0.1:$port"
    FW_LOG="$OUT/firewatch-$name.log"
    FW_STORE="$OUT/store-$name"
    if [[ ${FW_KEEP_STORE:-0} != 1 ]]; then
        rm -rf "$OUT/store-$name"
    fi
    mkdir -p "$OUT/store-$name"
    env FIREWATCH__MQTT__URL="$FW_TEST_MQTT_URL" \
        FIREWATCH__MQTT__CLIENT_ID="$cid" \
        FIREWATCH__HTTP__LISTEN="127.0.0.1:$port" \
        FIREWATCH__STORAGE__DIR="$OUT/store-$name" \
        "$@" "$FW" run </dev/null >"$FW_LOG" 2>&1 &
    FW_PID=$!
    track "$FW_PID" "firewatch ($name)"
    wait_until "firewatch ($name) to answer 200 on $FW_URL/healthz" 60 healthz_ok
}

stop_fw() {
    local t0
    t0="$(now)"
    if ! stop_pid "$FW_PID" 45; then
        say "warning: firewatch (pid $FW_PID) did not stop within 45 s of SIGTERM; killed"
    fi
    FW_STOP_S="$(calc "$(now) - $t0")"
}

# ---------------------------------------------------------------------------
# Preparation
# ---------------------------------------------------------------------------

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd -P)"
for cmd in curl awk timeout getconf "$SYS_PYTHON"; do
    command -v "$cmd" >/dev/null || die "$cmd is required"
done
if [[ -n $DOC ]]; then
    [[ -f $DOC ]] || die "$DOC does not exist (it holds the method text and the markers)"
    [[ $(grep -cx '<!-- bench:begin -->' "$DOC") == 1 && $(grep -cx '<!-- bench:end -->' "$DOC") == 1 ]] ||
        die "$DOC must contain the lines '<!-- bench:begin -->' and '<!-- bench:end -->' once each"
fi

if [[ $BUILD == 1 ]]; then
    step "build: cargo build --release --workspace --locked"
    cargo build --release --workspace --locked >"$OUT/build.log" 2>&1 ||
        {
            tail -n 30 "$OUT/build.log" >&2
            die "build failed; see $OUT/build.log"
        }
fi
[[ -x $FW && -x $SIM ]] || die "$FW or $SIM missing; run cargo build --release --workspace"

step "services: Mosquitto (deploy/mosquitto.conf), VictoriaMetrics, SMTP capture (logs in $OUT)"
SERVICES_STARTED=1
scripts/test-services.sh start "$OUT/services" >"$OUT/services-start.log" 2>&1 || {
    tail -n 20 "$OUT/services-start.log" >&2
    die "could not start the services; see $OUT/services-start.log"
}
# shellcheck disable=SC1091
source "$OUT/services/env"
MOSQ_PID="$(cat "$OUT/services/mosquitto.pid")"
VM_PID="$(cat "$OUT/services/victoria-metrics.pid")"
SMTP_PID="$(cat "$OUT/services/smtp-capture.pid")"
for u in "$FW_TEST_MQTT_URL" "$FW_TEST_TSDB_URL" "$FW_TEST_SMTP_URL"; do
    [[ $u == *://127.0.0.1:* ]] || die "service not on loopback: $u"
done
say "    broker $FW_TEST_MQTT_URL (pid $MOSQ_PID), TSDB $FW_TEST_TSDB_URL, SMTP $FW_TEST_SMTP_URL"

# The machine and the run.
M_NPROC="$(nproc)"
M_CPU="$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
M_MEM="$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
M_KERNEL="$(uname -sr) $(uname -m)"
M_FS="$(df -T "$OUT" | awk 'NR == 2 { print $2 }')"
M_MOSQ="$(mosquitto -h 2>/dev/null | awk 'NR == 1 { print "mosquitto", $3 }' || true)"
RUN_DATE="$(date -u '+%Y-%m-%d %H:%M UTC')"
GIT_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain -- . ':!bench' ':!docs/benchmarks.md' 2>/dev/null)" ]]; then
    GIT_COMMIT="$GIT_COMMIT + uncommitted changes"
fi

# ---------------------------------------------------------------------------
# 1. Raw ceiling
# ---------------------------------------------------------------------------

step "raw ceiling: $N messages, firewatch-sim load → Mosquitto → mosquitto_sub (QoS 1)"
RAW_ID="bench-raw-$$"
# Subscribe once with a persistent session: from here on the broker queues everything for it.
timeout --foreground -k 5 20 mosquitto_sub -h 127.0.0.1 -p "$(mqtt_port)" -q 1 -c -i "$RAW_ID" \
    -t 'fw/v1/#' -E 2>>"$OUT/mosquitto_sub.err" || die "mosquitto_sub could not subscribe"
mosq0="$(proc_ticks "$MOSQ_PID")"
read -r busy0 total0 < <(machine_ticks)
# -F %U: one short line per message, its arrival time. -W bounds the wait.
mosquitto_sub -h 127.0.0.1 -p "$(mqtt_port)" -q 1 -c -i "$RAW_ID" -t 'fw/v1/#' -C "$N" -F '%U' \
    -W "$TIMEOUT" >"$OUT/raw-sub.out" 2>>"$OUT/mosquitto_sub.err" &
SUB_PID=$!
track "$SUB_PID" "mosquitto_sub (raw ceiling)"
t0="$(now)"
"$SIM" load --broker "$FW_TEST_MQTT_URL" --devices "$LOAD_DEVICES" --count "$N" --qos 1 --rate 0 \
    --quiet >"$OUT/raw-load.json" 2>"$OUT/raw-load.err" &
PUB_PID=$!
track "$PUB_PID" "firewatch-sim load (raw ceiling)"
sampler "$OUT/raw-cpu" "$SUB_PID" "$PUB_PID" &
SAMPLER_PID=$!
track "$SAMPLER_PID" "CPU sampler"
sub_rc=0
wait "$SUB_PID" || sub_rc=$?
t1="$(now)"
untrack "$SUB_PID"
mosq1="$(proc_ticks "$MOSQ_PID")"
read -r busy1 total1 < <(machine_ticks)
RAW_RECEIVED="$(wc -l <"$OUT/raw-sub.out")"
((RAW_RECEIVED == N)) ||
    die "mosquitto_sub received $RAW_RECEIVED of $N messages within ${TIMEOUT} s (exit status $sub_rc)"
deadline=$(($(date +%s) + TIMEOUT))
while alive "$PUB_PID"; do
    (($(date +%s) < deadline)) || die "firewatch-sim load did not finish within ${TIMEOUT} s"
    sleep 0.1
done
wait "$PUB_PID" || die "firewatch-sim load failed: $(tail -n 3 "$OUT/raw-load.err")"
untrack "$PUB_PID"
stop_pid "$SAMPLER_PID" 5 || true
drop_session "$RAW_ID"

RAW_S="$(calc "$t1 - $t0")"
RAW_LAST_S="$(calc "$(tail -n 1 "$OUT/raw-sub.out") - $t0")"
RAW_RATE="$(calc "$N / $RAW_S")"
RAW_PUB_SENT="$(json "$OUT/raw-load.json" sent)"
RAW_PUB_ACKED="$(json "$OUT/raw-load.json" acked)"
RAW_PUB_RATE="$(json "$OUT/raw-load.json" rate)"
RAW_SUB_CORES="$(calc "$(cat "$OUT/raw-cpu.$SUB_PID" 2>/dev/null || echo 0) / $CLK_TCK / $RAW_S")"
RAW_SIM_CORES="$(calc "$(cat "$OUT/raw-cpu.$PUB_PID" 2>/dev/null || echo 0) / $CLK_TCK / $RAW_S")"
RAW_MOSQ_CORES="$(calc "($mosq1 - $mosq0) / $CLK_TCK / $RAW_S")"
RAW_BUSY_CORES="$(calc "($busy1 - $busy0) / ($total1 - $total0) * $M_NPROC")"
RAW_OTHER_CORES="$(calc "$RAW_BUSY_CORES - $RAW_MOSQ_CORES - $RAW_SUB_CORES - $RAW_SIM_CORES")"
say "    $N messages in $(fmt %.2f "$RAW_S") s (last one arrived after $(fmt %.2f "$RAW_LAST_S") s): $(thousands "$RAW_RATE") msg/s (publisher: $RAW_PUB_SENT sent, $RAW_PUB_ACKED acknowledged, $(thousands "$RAW_PUB_RATE") msg/s)"
say "    CPU (cores): mosquitto $(fmt %.2f "$RAW_MOSQ_CORES"), mosquitto_sub $(fmt %.2f "$RAW_SUB_CORES"), firewatch-sim $(fmt %.2f "$RAW_SIM_CORES"), rest $(fmt %.2f "$RAW_OTHER_CORES"), machine $(fmt %.2f "$RAW_BUSY_CORES") of $M_NPROC"

# ---------------------------------------------------------------------------
# 2. firewatch sustained ingest
# ---------------------------------------------------------------------------

step "firewatch ingest: $N messages, QoS 1, rules + embedded store (synchronous=full) + TSDB"
FW_ID="bench-$$"
start_fw ingest "$FW_ID" \
    FIREWATCH__TSDB__URL="$FW_TEST_TSDB_URL" \
    FIREWATCH__EMAIL__SMTP_URL="$FW_TEST_SMTP_URL" \
    FIREWATCH__EMAIL__TO=bench@duty.test
say "    firewatch pid $FW_PID, $FW_URL"
fetch_metrics
(($(metric firewatch_tsdb_enabled) == 1)) || die "firewatch does not forward to the TSDB"
base_committed="$(metric firewatch_messages_committed_total)"
((base_committed == 0)) || die "a fresh firewatch has $base_committed committed messages"
snapshot_metrics "$OUT/metrics-ingest-0.txt"
snap_threads "$FW_PID" "$OUT/threads-before.txt"
fw0="$(proc_ticks "$FW_PID")"
mosq0="$(proc_ticks "$MOSQ_PID")"
vm0="$(proc_ticks "$VM_PID")"
read -r busy0 total0 < <(machine_ticks)
poll_metrics "$OUT/poll-ingest.txt" &
POLL_PID=$!
track "$POLL_PID" "metrics poller"
t0="$(now)"
t0_ms="$(now_ms)"
{ time timeout --foreground -k 5 "$TIMEOUT" "$SIM" load --broker "$FW_TEST_MQTT_URL" \
    --devices "$LOAD_DEVICES" --count "$N" --qos 1 --rate 0 --quiet \
    >"$OUT/ingest-load.json" 2>"$OUT/ingest-load.err"; } 2>"$OUT/ingest-load.time" ||
    die "firewatch-sim load failed: $(tail -n 3 "$OUT/ingest-load.err")"
LAST_PROGRESS=0
wait_until "firewatch to commit $N messages" "$TIMEOUT" committed_at_least "$N"
t1="$(now)"
stop_pid "$POLL_PID" 5 || true
ING_MAX_DEPTH="$(poll_max "$OUT/poll-ingest.txt" 2)"
snap_threads "$FW_PID" "$OUT/threads-after.txt"
fw1="$(proc_ticks "$FW_PID")"
mosq1="$(proc_ticks "$MOSQ_PID")"
vm1="$(proc_ticks "$VM_PID")"
read -r busy1 total1 < <(machine_ticks)
cp "$OUT/metrics.txt" "$OUT/metrics-ingest.txt"
FIRST_MS="$(metric firewatch_first_message_timestamp_ms)"
LAST_MS="$(metric firewatch_last_commit_timestamp_ms)"
COMMITTED="$(metric firewatch_messages_committed_total)"
ACCEPTED="$(metric firewatch_messages_accepted_total)"
REJECTED="$(rejected_total)"
COMMITS="$(metric firewatch_store_commits_total)"
COMMIT_S="$(metric firewatch_store_commit_seconds_total)"
((FIRST_MS > 0 && LAST_MS >= FIRST_MS)) || die "implausible timestamps in /metrics: first $FIRST_MS, last commit $LAST_MS"
INGEST_S="$(calc "($LAST_MS - $FIRST_MS) / 1000")"
INGEST_RATE="$(calc "$N / $INGEST_S")"
INGEST_E2E_S="$(calc "($LAST_MS - $t0_ms) / 1000")"
RATIO="$(calc "$INGEST_RATE / $RAW_RATE")"
WIN_S="$(calc "$t1 - $t0")"
ING_FW_CORES="$(calc "($fw1 - $fw0) / $CLK_TCK / $WIN_S")"
ING_MOSQ_CORES="$(calc "($mosq1 - $mosq0) / $CLK_TCK / $WIN_S")"
ING_VM_CORES="$(calc "($vm1 - $vm0) / $CLK_TCK / $WIN_S")"
read -r _ sim_u sim_s <"$OUT/ingest-load.time"
ING_SIM_CORES="$(calc "($sim_u + $sim_s) / $WIN_S")"
ING_BUSY_CORES="$(calc "($busy1 - $busy0) / ($total1 - $total0) * $M_NPROC")"
thread_cores "$OUT/threads-before.txt" "$OUT/threads-after.txt" "$WIN_S" >"$OUT/threads-ingest.txt"
read -r PIPE_RUN_S PIPE_WAIT_S < <(thread_sched "$OUT/threads-before.txt" "$OUT/threads-after.txt" pipeline)
PIPE_BLOCKED_S="$(calc "$WIN_S - $PIPE_RUN_S - $PIPE_WAIT_S")"
ING_OTHER_CORES="$(calc "$ING_BUSY_CORES - $ING_FW_CORES - $ING_MOSQ_CORES - $ING_VM_CORES - $ING_SIM_CORES")"
ING_THREADS="$(awk '$2 >= 0.01 { printf "%s%s %s%s", (NR > 1 ? ", " : ""), $1, $2, ($3 > 1 ? " (" $3 " threads)" : "") }' "$OUT/threads-ingest.txt")"
ING_SIM_RATE="$(json "$OUT/ingest-load.json" rate)"
ING_SIM_ACKED="$(json "$OUT/ingest-load.json" acked)"
((ING_SIM_ACKED == N)) || say "warning: the broker acknowledged $ING_SIM_ACKED of $N publishes"
BATCH="$(calc "$COMMITTED / $COMMITS")"
BUSY_PCT="$(calc "100 * $COMMIT_S / $INGEST_S")"
say "    $N messages in $(fmt %.2f "$INGEST_S") s (first message → last commit): $(thousands "$INGEST_RATE") msg/s, $(fmt %.2f "$RATIO") × raw"
say "    accepted $ACCEPTED, rejected $REJECTED; $COMMITS commits, $(fmt %.0f "$BATCH") messages per commit; pipeline in batches $(fmt %.0f "$BUSY_PCT") % of the time; queue depth up to $ING_MAX_DEPTH"
say "    CPU (cores, $(fmt %.1f "$WIN_S") s window): firewatch $(fmt %.2f "$ING_FW_CORES") [$ING_THREADS], mosquitto $(fmt %.2f "$ING_MOSQ_CORES"), victoria-metrics $(fmt %.2f "$ING_VM_CORES"), firewatch-sim $(fmt %.2f "$ING_SIM_CORES"), rest $(fmt %.2f "$ING_OTHER_CORES"), machine $(fmt %.2f "$ING_BUSY_CORES") of $M_NPROC"
say "    pipeline thread: on a CPU $PIPE_RUN_S s, runnable but waiting for a CPU $PIPE_WAIT_S s, blocked or idle $(fmt %.2f "$PIPE_BLOCKED_S") s"

step "firewatch ingest: waiting for the TSDB spool to empty"
wait_until "the TSDB spool (firewatch_tsdb_spool_points) to reach 0" "$TIMEOUT" spool_empty
spool_ms="$(now_ms)"
SPOOL_FIRST_S="$(calc "($spool_ms - $FIRST_MS) / 1000")"
SPOOL_AFTER_S="$(calc "($spool_ms - $LAST_MS) / 1000")"
TSDB_POINTS="$(metric firewatch_tsdb_points_written_total)"
TSDB_WRITES="$(metric firewatch_tsdb_writes_total)"
TSDB_ERRORS="$(metric firewatch_tsdb_write_errors_total)"
snapshot_metrics "$OUT/metrics-ingest-1.txt"
stages "$OUT/metrics-ingest-0.txt" "$OUT/metrics-ingest-1.txt" >"$OUT/stages-ingest.txt"
say "    stages: readings received → committed $(stage_cell "$OUT/stages-ingest.txt" received_committed/reading); committed → in the TSDB $(stage_cell "$OUT/stages-ingest.txt" committed_in_tsdb/-)"
say "    spool empty $(fmt %.2f "$SPOOL_FIRST_S") s after the first message ($(fmt %.2f "$SPOOL_AFTER_S") s after the last commit); $TSDB_POINTS points in $TSDB_WRITES writes, $TSDB_ERRORS failed"

# ---------------------------------------------------------------------------
# 3. Alert latency
# ---------------------------------------------------------------------------

# latency_run LABEL PREFIX: publish → mail accepted, into $OUT/latency-LABEL.json.
latency_run() {
    local label=$1 prefix=$2 rc=0 bound
    bound=$((LAT_COUNT * LAT_INTERVAL_MS / 1000 + 120))
    timeout --foreground -k 5 "$bound" "$SIM" latency --broker "$FW_TEST_MQTT_URL" \
        --maildir "$FW_TEST_MAILDIR" --count "$LAT_COUNT" --interval-ms "$LAT_INTERVAL_MS" \
        --prefix "$prefix" >"$OUT/latency-$label.json" 2>"$OUT/latency-$label.err" || rc=$?
    # Exit status 1: some mails missing (reported); anything else is a failure.
    ((rc == 0 || rc == 1)) || die "firewatch-sim latency ($label) failed with status $rc: $(tail -n 3 "$OUT/latency-$label.err")"
    say "    $label: $(tail -n 1 "$OUT/latency-$label.json")"
}

# The broker, the maildir and the store are fresh in every run, so the two prefixes need only
# differ from each other.
LAT_PREFIX_IDLE="latq"
LAT_PREFIX_LOADED="latl"
step "alert latency without background load: $LAT_COUNT alerts, one every $LAT_INTERVAL_MS ms"
outbox_empty() {
    fetch_metrics || return 1
    (($(metric firewatch_notifications_queued) == 0))
}
snapshot_metrics "$OUT/metrics-idle-0.txt"
latency_run idle "$LAT_PREFIX_IDLE"
wait_until "the outbox to empty" 60 outbox_empty
snapshot_metrics "$OUT/metrics-idle-1.txt"
stages "$OUT/metrics-idle-0.txt" "$OUT/metrics-idle-1.txt" >"$OUT/stages-idle.txt"

step "alert latency with background load: $BG_RATE msg/s for $BG_DURATION ($LOAD_DEVICES devices, QoS 1), $LAT_COUNT alerts"
fetch_metrics
bg_committed0="$(metric firewatch_messages_committed_total)"
"$SIM" load --broker "$FW_TEST_MQTT_URL" --rate "$BG_RATE" --duration "$BG_DURATION" \
    --devices "$LOAD_DEVICES" --qos 1 --prefix "$BG_PREFIX" --quiet \
    >"$OUT/bg-load.json" 2>"$OUT/bg-load.err" &
BG_PID=$!
track "$BG_PID" "firewatch-sim load (background)"
sleep 3
alive "$BG_PID" || die "the background load ended early: $(tail -n 3 "$OUT/bg-load.err")"
fetch_metrics
lat_committed0="$(metric firewatch_messages_committed_total)"
lat_t0="$(now)"
# CPU while the alerts are published (the first LAT_COUNT × LAT_INTERVAL_MS of the run).
cpu_snapshot "$OUT/cpu-latency-0.txt" "$BG_PID"
CPU_WIN_S="$(calc "$LAT_COUNT * $LAT_INTERVAL_MS / 1000")"
(
    sleep "$CPU_WIN_S"
    cpu_snapshot "$OUT/cpu-latency-1.txt" "$BG_PID"
) &
CPU_SNAP_PID=$!
track "$CPU_SNAP_PID" "CPU snapshot"
poll_metrics "$OUT/poll-latency.txt" &
POLL_PID=$!
track "$POLL_PID" "metrics poller"
snapshot_metrics "$OUT/metrics-loaded-0.txt"
latency_run loaded "$LAT_PREFIX_LOADED"
stop_pid "$POLL_PID" 5 || true
snapshot_metrics "$OUT/metrics-loaded-1.txt"
stages "$OUT/metrics-loaded-0.txt" "$OUT/metrics-loaded-1.txt" >"$OUT/stages-loaded.txt"
for f in idle loaded; do
    say "    stages ($f): event received → committed $(stage_cell "$OUT/stages-$f.txt" received_committed/event); committed → send started $(stage_cell "$OUT/stages-$f.txt" committed_send_started/email); send started → accepted $(stage_cell "$OUT/stages-$f.txt" send_started_accepted/email); readings received → committed $(stage_cell "$OUT/stages-$f.txt" received_committed/reading)"
done
fetch_metrics
lat_committed1="$(metric firewatch_messages_committed_total)"
lat_t1="$(now)"
lat_depth="$(metric firewatch_pipeline_queue_depth)"
wait "$CPU_SNAP_PID" || true
untrack "$CPU_SNAP_PID"
# "cores_firewatch cores_mosquitto cores_vm cores_smtp cores_publisher cores_rest cores_machine"
read -r LC_FW LC_MOSQ LC_VM LC_SMTP LC_BG LC_REST LC_BUSY < <(
    paste "$OUT/cpu-latency-0.txt" "$OUT/cpu-latency-1.txt" | awk -v hz="$CLK_TCK" -v n="$M_NPROC" '{
        s = $9 - $1; busy = ($10 - $2) / ($11 - $3) * n
        fw = ($12 - $4) / hz / s; mq = ($13 - $5) / hz / s; vm = ($14 - $6) / hz / s
        sm = ($15 - $7) / hz / s; bg = ($16 - $8) / hz / s
        if ($16 == 0) { printf "%.2f %.2f %.2f %.2f ? ? %.2f\n", fw, mq, vm, sm, busy; exit }
        printf "%.2f %.2f %.2f %.2f %.2f %.2f %.2f\n", fw, mq, vm, sm, bg, busy - fw - mq - vm - sm - bg, busy }'
)
say "    CPU while the alerts were published (cores): firewatch $LC_FW, mosquitto $LC_MOSQ, background publisher $LC_BG, victoria-metrics $LC_VM, smtp-capture $LC_SMTP, rest $LC_REST, machine $LC_BUSY of $M_NPROC"
LAT_MAX_DEPTH="$(poll_max "$OUT/poll-latency.txt" 2)"
LAT_MAX_OUTBOX="$(poll_max "$OUT/poll-latency.txt" 3)"
read -r SPLIT_N SPLIT_P50 SPLIT_P99 SPLIT_MAX < <(store_split "$LAT_PREFIX_LOADED")
read -r _ SPLIT_IDLE_P50 SPLIT_IDLE_P99 SPLIT_IDLE_MAX < <(store_split "$LAT_PREFIX_IDLE")
say "    inside firewatch (receive → mail accepted, from the store): loaded p50 $SPLIT_P50 ms, p99 $SPLIT_P99 ms, max $SPLIT_MAX ms ($SPLIT_N alerts); idle p50 $SPLIT_IDLE_P50 ms, p99 $SPLIT_IDLE_P99 ms"
say "    during the loaded run: pipeline queue up to $LAT_MAX_DEPTH messages, outbox up to $LAT_MAX_OUTBOX mails waiting"
alive "$BG_PID" || say "    note: the background load ended before the latency run had all its mails"
deadline=$(($(date +%s) + TIMEOUT))
while alive "$BG_PID"; do
    (($(date +%s) < deadline)) || die "the background load did not finish within ${TIMEOUT} s"
    sleep 0.1
done
wait "$BG_PID" || die "the background load failed: $(tail -n 3 "$OUT/bg-load.err")"
untrack "$BG_PID"
bg_t1="$(now)"
BG_SENT="$(json "$OUT/bg-load.json" sent)"
BG_ACKED="$(json "$OUT/bg-load.json" acked)"
BG_RATE_REAL="$(json "$OUT/bg-load.json" rate)"
# During the latency run: what firewatch committed per second.
LAT_FW_RATE="$(calc "($lat_committed1 - $lat_committed0) / ($lat_t1 - $lat_t0)")"
LAST_PROGRESS=0
bg_want=$((bg_committed0 + BG_SENT + LAT_COUNT))
wait_until "firewatch to commit the background load" "$TIMEOUT" committed_at_least "$bg_want"
BG_DRAIN_S="$(calc "$(now) - $bg_t1")"
say "    background: $BG_SENT sent, $BG_ACKED acknowledged by the broker, $(thousands "$BG_RATE_REAL") msg/s; firewatch committed $(thousands "$LAT_FW_RATE") msg/s during the latency run (queue depth at its end: $lat_depth); backlog committed $(fmt %.1f "$BG_DRAIN_S") s after the load ended"

stop_fw
drop_session "$FW_ID"
say "    firewatch stopped in $(fmt %.1f "$FW_STOP_S") s"

# ---------------------------------------------------------------------------
# 4. Memory per device
# ---------------------------------------------------------------------------

mib() { fmt %.1f "$(calc "$1 / 1024")"; }
vm_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# rss_settled PID: "VmRSS-in-KiB seconds-waited" once it has stopped moving: sampled each second until the last
# five samples lie within 1 % (or 256 KiB) of each other, at most 60 s. The allocator hands
# freed pages back on its own schedule (jemalloc's background thread and decay), so a single
# reading a fixed time after the load counts memory that is about to be returned.
rss_settled() {
    local pid=$1 i lo hi v
    local -a s=()
    for ((i = 0; i < 60; i++)); do
        s+=("$(vm_kb "$pid" VmRSS)")
        if ((${#s[@]} >= 5)); then
            lo="${s[-1]}" hi="${s[-1]}"
            for v in "${s[@]: -5}"; do ((v < lo)) && lo=$v; ((v > hi)) && hi=$v; done
            if ((hi - lo <= 256 || (hi - lo) * 100 <= hi)); then
                printf '%s %s\n' "${s[-1]}" "$i"
                return
            fi
        fi
        sleep 1
    done
    printf '%s %s\n' "${s[-1]}" "60-unsettled"
}

declare -A MEM_BASE=() MEM_AFTER=() MEM_PER=() MEM_ANON=() MEM_FILE=() MEM_BASE_ANON=() MEM_BASE_FILE=() MEM_PER_ANON=() MEM_ALL=()
for D in $MEM_DEVICES; do
    for ((run = 1; run <= MEM_RUNS; run++)); do
        step "memory: $D devices, one message each, run $run of $MEM_RUNS (fresh firewatch, TSDB off, e-mail to the outbox)"
        start_fw "mem$D-$run" "bench-$$-m$D-$run"
        read -r base _ < <(rss_settled "$FW_PID")
        base_anon="$(vm_kb "$FW_PID" RssAnon)"
        base_file="$(vm_kb "$FW_PID" RssFile)"
        timeout --foreground -k 5 "$TIMEOUT" "$SIM" load --broker "$FW_TEST_MQTT_URL" --devices "$D" \
            --count "$D" --qos 1 --rate 0 --prefix mem --quiet \
            >"$OUT/mem$D-$run-load.json" 2>"$OUT/mem$D-$run-load.err" ||
            die "firewatch-sim load failed: $(tail -n 3 "$OUT/mem$D-$run-load.err")"
        LAST_PROGRESS=0
        wait_until "firewatch to commit $D messages" "$TIMEOUT" committed_at_least "$D"
        read -r after settle < <(rss_settled "$FW_PID")
        anon="$(vm_kb "$FW_PID" RssAnon)"
        file="$(vm_kb "$FW_PID" RssFile)"
        fetch_metrics
        devices="$(metric firewatch_devices)"
        ((devices == D)) || say "warning: firewatch knows $devices devices, expected $D"
        per="$(calc "($after - $base) * 1024 / $D")"
        per_anon="$(calc "($anon - $base_anon) * 1024 / $D")"
        say "    VmRSS $(mib "$base") → $(mib "$after") MiB (settled after $settle s; RssAnon $(mib "$base_anon") → $(mib "$anon"), RssFile $(mib "$base_file") → $(mib "$file")): $(fmt %.0f "$per") bytes per device ($(fmt %.0f "$per_anon") of them anonymous)"
        MEM_ALL[$D]="${MEM_ALL[$D]:+${MEM_ALL[$D]}, }$(thousands "$per")"
        # The largest of the runs is the figure judged.
        if [[ -z ${MEM_PER[$D]:-} ]] || awk -v a="$per" -v b="${MEM_PER[$D]}" 'BEGIN { exit !(a > b) }'; then
            MEM_PER[$D]="$per" MEM_PER_ANON[$D]="$per_anon"
            MEM_BASE[$D]="$base" MEM_AFTER[$D]="$after" MEM_BASE_ANON[$D]="$base_anon" MEM_ANON[$D]="$anon"
            MEM_BASE_FILE[$D]="$base_file" MEM_FILE[$D]="$file"
        fi
        stop_fw
        drop_session "bench-$$-m$D-$run"
    done
done

# ---------------------------------------------------------------------------
# 5. Drain a backlog
# ---------------------------------------------------------------------------

# drained_all: committed every queued reading and wrote them all to the TSDB.
drained_all() { committed_at_least "$DRAIN_N" && (($(metric firewatch_tsdb_spool_points) == 0)); }

step "drain: $DRAIN_N readings queued at the broker for a stopped client; bare mosquitto_sub first"
DRAIN_SUB_ID="bench-drain-sub-$$"
timeout --foreground -k 5 20 mosquitto_sub -h 127.0.0.1 -p "$(mqtt_port)" -q 1 -c -i "$DRAIN_SUB_ID" \
    -t 'fw/v1/#' -E 2>>"$OUT/mosquitto_sub.err" || die "mosquitto_sub could not subscribe"
timeout --foreground -k 5 "$TIMEOUT" "$SIM" load --broker "$FW_TEST_MQTT_URL" --devices "$LOAD_DEVICES" \
    --count "$DRAIN_N" --qos 1 --rate 0 --prefix drs --quiet >"$OUT/drain-sub-load.json" 2>"$OUT/drain-sub-load.err" ||
    die "firewatch-sim load failed: $(tail -n 3 "$OUT/drain-sub-load.err")"
t0="$(now)"
mosquitto_sub -h 127.0.0.1 -p "$(mqtt_port)" -q 1 -c -i "$DRAIN_SUB_ID" -t 'fw/v1/#' -C "$DRAIN_N" \
    -F '%U' -W "$TIMEOUT" >"$OUT/drain-sub.out" 2>>"$OUT/mosquitto_sub.err" ||
    die "mosquitto_sub did not drain $DRAIN_N messages within ${TIMEOUT} s ($(wc -l <"$OUT/drain-sub.out") arrived)"
t1="$(now)"
drop_session "$DRAIN_SUB_ID"
DRAIN_SUB_S="$(calc "$t1 - $t0")"
DRAIN_SUB_RATE="$(calc "$DRAIN_N / $DRAIN_SUB_S")"
say "    mosquitto_sub drained $DRAIN_N in $(fmt %.2f "$DRAIN_SUB_S") s: $(thousands "$DRAIN_SUB_RATE") msg/s"

step "drain: firewatch (TSDB on) subscribes, stops; $DRAIN_N readings queue; firewatch starts again"
DRAIN_ID="bench-$$-drain"
start_fw drain "$DRAIN_ID" \
    FIREWATCH__TSDB__URL="$FW_TEST_TSDB_URL" \
    FIREWATCH__EMAIL__SMTP_URL="$FW_TEST_SMTP_URL" \
    FIREWATCH__EMAIL__TO=bench@duty.test
stop_fw
timeout --foreground -k 5 "$TIMEOUT" "$SIM" load --broker "$FW_TEST_MQTT_URL" --devices "$LOAD_DEVICES" \
    --count "$DRAIN_N" --qos 1 --rate 0 --prefix drf --quiet >"$OUT/drain-fw-load.json" 2>"$OUT/drain-fw-load.err" ||
    die "firewatch-sim load failed: $(tail -n 3 "$OUT/drain-fw-load.err")"
t0="$(now)"
FW_KEEP_STORE=1 start_fw drain "$DRAIN_ID" \
    FIREWATCH__TSDB__URL="$FW_TEST_TSDB_URL" \
    FIREWATCH__EMAIL__SMTP_URL="$FW_TEST_SMTP_URL" \
    FIREWATCH__EMAIL__TO=bench@duty.test
t_healthy="$(now)"
snapshot_metrics "$OUT/metrics-drain-0.txt"
LAST_PROGRESS=0
wait_until "firewatch to commit and forward the $DRAIN_N queued readings" "$TIMEOUT" drained_all
t1="$(now)"
snapshot_metrics "$OUT/metrics-drain-1.txt"
DRAIN_FW_FIRST_MS="$(metric firewatch_first_message_timestamp_ms)"
DRAIN_FW_COMMIT_MS="$(metric firewatch_last_commit_timestamp_ms)"
DRAIN_FW_POINTS="$(metric firewatch_tsdb_points_written_total)"
stop_fw
drop_session "$DRAIN_ID"
stages "$OUT/metrics-drain-0.txt" "$OUT/metrics-drain-1.txt" >"$OUT/stages-drain.txt"
DRAIN_FW_S="$(calc "$t1 - $t0")"
DRAIN_FW_RATE="$(calc "$DRAIN_N / $DRAIN_FW_S")"
DRAIN_START_S="$(calc "$t_healthy - $t0")"
DRAIN_COMMIT_S="$(calc "$DRAIN_FW_COMMIT_MS / 1000 - $t0")"
DRAIN_RATIO="$(calc "$DRAIN_FW_RATE / $DRAIN_SUB_RATE")"
say "    firewatch drained $DRAIN_N in $(fmt %.2f "$DRAIN_FW_S") s from its start ($(thousands "$DRAIN_FW_RATE") msg/s, $(fmt %.2f "$DRAIN_RATIO") × mosquitto_sub): healthy after $(fmt %.2f "$DRAIN_START_S") s, all committed after $(fmt %.2f "$DRAIN_COMMIT_S") s, all in the TSDB ($DRAIN_FW_POINTS points) after $(fmt %.2f "$DRAIN_FW_S") s"
say "    stages: received → committed $(stage_cell "$OUT/stages-drain.txt" received_committed/reading); committed → in the TSDB $(stage_cell "$OUT/stages-drain.txt" committed_in_tsdb/-)"

# ---------------------------------------------------------------------------
# 6. The embedded broker
# ---------------------------------------------------------------------------

step "embedded broker: the ingest of step 2 ($N messages) on rumqttd inside firewatch"
EMB_PORT="$(free_port)"
start_fw embedded "bench-$$-emb" \
    FIREWATCH__MQTT__URL=embedded \
    FIREWATCH__MQTT__EMBEDDED_LISTEN="127.0.0.1:$EMB_PORT" \
    FIREWATCH__TSDB__URL="$FW_TEST_TSDB_URL" \
    FIREWATCH__EMAIL__SMTP_URL="$FW_TEST_SMTP_URL" \
    FIREWATCH__EMAIL__TO=bench@duty.test
snapshot_metrics "$OUT/metrics-embedded-0.txt"
fw0="$(proc_ticks "$FW_PID")"
read -r busy0 total0 < <(machine_ticks)
timeout --foreground -k 5 "$TIMEOUT" "$SIM" load --broker "mqtt://127.0.0.1:$EMB_PORT" \
    --devices "$LOAD_DEVICES" --count "$N" --qos 1 --rate 0 --quiet \
    >"$OUT/embedded-load.json" 2>"$OUT/embedded-load.err" ||
    die "firewatch-sim load (embedded broker) failed: $(tail -n 3 "$OUT/embedded-load.err")"
LAST_PROGRESS=0
wait_until "firewatch to commit $N messages from the embedded broker" "$TIMEOUT" committed_at_least "$N"
fw1="$(proc_ticks "$FW_PID")"
read -r busy1 total1 < <(machine_ticks)
snapshot_metrics "$OUT/metrics-embedded-1.txt"
EMB_FIRST_MS="$(metric firewatch_first_message_timestamp_ms)"
EMB_LAST_MS="$(metric firewatch_last_commit_timestamp_ms)"
EMB_S="$(calc "($EMB_LAST_MS - $EMB_FIRST_MS) / 1000")"
EMB_RATE="$(calc "$N / $EMB_S")"
EMB_PUB_RATE="$(json "$OUT/embedded-load.json" rate)"
EMB_FW_CORES="$(calc "($fw1 - $fw0) / $CLK_TCK / $EMB_S")"
EMB_BUSY_CORES="$(calc "($busy1 - $busy0) / ($total1 - $total0) * $M_NPROC")"
EMB_RATIO="$(calc "$EMB_RATE / $INGEST_RATE")"
stages "$OUT/metrics-embedded-0.txt" "$OUT/metrics-embedded-1.txt" >"$OUT/stages-embedded.txt"
stop_fw
say "    $N messages in $(fmt %.2f "$EMB_S") s: $(thousands "$EMB_RATE") msg/s ($(fmt %.2f "$EMB_RATIO") × firewatch on Mosquitto, $(thousands "$INGEST_RATE") msg/s); publisher $(thousands "$EMB_PUB_RATE") msg/s; firewatch (with the broker) $(fmt %.2f "$EMB_FW_CORES") cores, machine $(fmt %.2f "$EMB_BUSY_CORES") of $M_NPROC"
say "    stages: received → committed $(stage_cell "$OUT/stages-embedded.txt" received_committed/reading)"

# ---------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------

verdict() { # verdict MET(0/1) RATIO_TEXT
    if (($1)); then printf '**met** (%s)' "$2"; else printf '**missed** (%s)' "$2"; fi
}
lat_cell() { # lat_cell LABEL
    local f="$OUT/latency-$1.json" c m
    c="$(json "$f" count)"
    m="$(json "$f" missing)"
    if ((c == 0)); then
        printf 'no mail arrived (%s missing)' "$m"
    else
        printf 'p50 %s ms, p99 %s ms, max %s ms; %s of %s mails' \
            "$(fmt %.1f "$(json "$f" p50_ms)")" "$(fmt %.1f "$(json "$f" p99_ms)")" \
            "$(fmt %.1f "$(json "$f" max_ms)")" "$c" "$LAT_COUNT"
    fi
}

ratio_ok="$(awk -v r="$RATIO" -v t="$TARGET_RATIO" 'BEGIN { print (r >= t) ? 1 : 0 }')"
lat_count="$(json "$OUT/latency-loaded.json" count)"
lat_missing="$(json "$OUT/latency-loaded.json" missing)"
if ((lat_count > 0)); then
    P99="$(json "$OUT/latency-loaded.json" p99_ms)"
    lat_ok="$(awk -v p="$P99" -v t="$TARGET_P99_MS" -v m="$lat_missing" 'BEGIN { print (p <= t && m == 0) ? 1 : 0 }')"
    lat_ratio="p99 = $(fmt %.2f "$(calc "$P99 / $TARGET_P99_MS")") × target"
    ((lat_missing == 0)) || lat_ratio="$lat_ratio; $lat_missing mails missing"
else
    lat_ok=0
    lat_ratio="no mail arrived"
fi

idle_count="$(json "$OUT/latency-idle.json" count)"
if ((idle_count > 0)); then
    IDLE_P99="$(json "$OUT/latency-idle.json" p99_ms)"
    idle_ok="$(awk -v p="$IDLE_P99" -v t="$TARGET_IDLE_P99_MS" 'BEGIN { print (p <= t) ? 1 : 0 }')"
    idle_ratio="p99 = $(fmt %.2f "$(calc "$IDLE_P99 / $TARGET_IDLE_P99_MS")") × target"
else
    idle_ok=0
    idle_ratio="no mail arrived"
fi
drain_ok="$(awk -v r="$DRAIN_RATIO" -v t="$TARGET_DRAIN_RATIO" 'BEGIN { print (r >= t) ? 1 : 0 }')"
emb_ok="$(awk -v r="$EMB_RATIO" -v t="$TARGET_EMBEDDED_RATIO" 'BEGIN { print (r >= t) ? 1 : 0 }')"

TABLE="$OUT/table.md"
# shellcheck disable=SC2016  # backquotes are markdown here
{
    printf 'Run %s · commit %s · N = %s · machine: `nproc` %s, %s, %s RAM, %s · %s · store on %s, `storage.synchronous = "full"`\n\n' \
        "$RUN_DATE" "$GIT_COMMIT" "$N" "$M_NPROC" "$M_CPU" "$M_MEM" "$M_KERNEL" "${M_MOSQ:-mosquitto}" "$M_FS"
    printf '| # | measurement | result | target | status |\n'
    printf '|---|---|---|---|---|\n'
    printf '| 1 | raw ceiling: `firewatch-sim load` → Mosquitto → `mosquitto_sub`, QoS 1 | **%s msg/s**: %s messages in %s s (publisher start → subscriber exit); publisher alone %s msg/s | — | — |\n' \
        "$(thousands "$RAW_RATE")" "$RAW_RECEIVED" "$(fmt %.2f "$RAW_S")" "$(thousands "$RAW_PUB_RATE")"
    printf '| 1a | CPU during the raw run (cores) | mosquitto %s, mosquitto_sub %s, firewatch-sim %s, rest %s; machine %s of %s | — | — |\n' \
        "$(fmt %.2f "$RAW_MOSQ_CORES")" "$(fmt %.2f "$RAW_SUB_CORES")" "$(fmt %.2f "$RAW_SIM_CORES")" "$(fmt %.2f "$RAW_OTHER_CORES")" "$(fmt %.2f "$RAW_BUSY_CORES")" "$M_NPROC"
    printf '| 2 | firewatch ingest, QoS 1: rules, embedded store (synchronous full), TSDB, SMTP | **%s msg/s**: %s messages in %s s (first message → last commit); %s s from publisher start; accepted %s, rejected %s | ≥ %s × raw | %s |\n' \
        "$(thousands "$INGEST_RATE")" "$COMMITTED" "$(fmt %.2f "$INGEST_S")" "$(fmt %.2f "$INGEST_E2E_S")" "$ACCEPTED" "$REJECTED" \
        "$TARGET_RATIO" "$(verdict "$ratio_ok" "$(fmt %.2f "$RATIO") × raw")"
    printf '| 2a | group commits | %s commits, %s messages per commit on average; pipeline inside batches %s %% of the ingest time; pipeline queue (received, not yet committed) up to %s messages | — | — |\n' \
        "$COMMITS" "$(fmt %.0f "$BATCH")" "$(fmt %.0f "$BUSY_PCT")" "$(thousands "$ING_MAX_DEPTH")"
    printf '| 2b | CPU during the ingest (cores) | firewatch %s (%s); mosquitto %s; victoria-metrics %s; firewatch-sim %s (publisher %s msg/s); rest %s; machine %s of %s. Pipeline thread in the %s s window: on a CPU %s s, runnable but waiting for a CPU %s s, blocked or idle %s s | — | — |\n' \
        "$(fmt %.2f "$ING_FW_CORES")" "$ING_THREADS" "$(fmt %.2f "$ING_MOSQ_CORES")" "$(fmt %.2f "$ING_VM_CORES")" \
        "$(fmt %.2f "$ING_SIM_CORES")" "$(thousands "$ING_SIM_RATE")" "$(fmt %.2f "$ING_OTHER_CORES")" "$(fmt %.2f "$ING_BUSY_CORES")" "$M_NPROC" \
        "$(fmt %.1f "$WIN_S")" "$PIPE_RUN_S" "$PIPE_WAIT_S" "$(fmt %.2f "$PIPE_BLOCKED_S")"
    printf '| 2c | TSDB spool empty (all readings in VictoriaMetrics) | %s s after the first message, %s s after the last commit; %s points in %s writes, %s failed | — | — |\n' \
        "$(fmt %.2f "$SPOOL_FIRST_S")" "$(fmt %.2f "$SPOOL_AFTER_S")" "$TSDB_POINTS" "$TSDB_WRITES" "$TSDB_ERRORS"
    printf '| 2d | where the time goes, ingest (stage histograms) | readings received → committed %s; committed → in the TSDB %s | — | — |\n' \
        "$(stage_cell "$OUT/stages-ingest.txt" received_committed/reading)" "$(stage_cell "$OUT/stages-ingest.txt" committed_in_tsdb/-)"
    printf '| 3a | alert latency, publish → mail accepted, no background load | %s | p99 ≤ %s ms | %s |\n' \
        "$(lat_cell idle)" "$TARGET_IDLE_P99_MS" "$(verdict "$idle_ok" "$idle_ratio")"
    printf '| 3b | alert latency with %s msg/s background load | %s | p99 ≤ %s ms | %s |\n' \
        "$BG_RATE" "$(lat_cell loaded)" "$TARGET_P99_MS" "$(verdict "$lat_ok" "$lat_ratio")"
    printf '| 3c | latency inside firewatch (from the store: event received → mail accepted) | with load: p50 %s ms, p99 %s ms, max %s ms; idle: p50 %s ms, p99 %s ms, max %s ms. During the loaded run the pipeline queue held up to %s messages and up to %s mails waited in the outbox | — | — |\n' \
        "$SPLIT_P50" "$SPLIT_P99" "$SPLIT_MAX" "$SPLIT_IDLE_P50" "$SPLIT_IDLE_P99" "$SPLIT_IDLE_MAX" "$(thousands "$LAT_MAX_DEPTH")" "$LAT_MAX_OUTBOX"
    printf '| 3d | background load achieved | %s msg/s offered (%s sent, %s acknowledged by the broker); firewatch committed %s msg/s during the latency run; backlog committed %s s after the load ended. CPU while the alerts were published (cores): firewatch %s, mosquitto %s, background publisher %s, victoria-metrics %s, smtp-capture %s, rest %s; machine %s of %s | — | — |\n' \
        "$(thousands "$BG_RATE_REAL")" "$BG_SENT" "$BG_ACKED" "$(thousands "$LAT_FW_RATE")" "$(fmt %.1f "$BG_DRAIN_S")" \
        "$LC_FW" "$LC_MOSQ" "$LC_BG" "$LC_VM" "$LC_SMTP" "$LC_REST" "$LC_BUSY" "$M_NPROC"
    printf '| 3e | where the time goes, loaded (stage histograms) | event received → committed %s; committed → send started %s; send started → accepted %s; readings received → committed %s | — | — |\n' \
        "$(stage_cell "$OUT/stages-loaded.txt" received_committed/event)" "$(stage_cell "$OUT/stages-loaded.txt" committed_send_started/email)" \
        "$(stage_cell "$OUT/stages-loaded.txt" send_started_accepted/email)" "$(stage_cell "$OUT/stages-loaded.txt" received_committed/reading)"
    printf '| 3f | where the time goes, idle | event received → committed %s; committed → send started %s; send started → accepted %s | — | — |\n' \
        "$(stage_cell "$OUT/stages-idle.txt" received_committed/event)" "$(stage_cell "$OUT/stages-idle.txt" committed_send_started/email)" \
        "$(stage_cell "$OUT/stages-idle.txt" send_started_accepted/email)"
    for D in $MEM_DEVICES; do
        target="—"
        status="—"
        if ((D == 100000)); then
            target="≤ 2 KiB per device"
            ok="$(awk -v p="${MEM_PER[$D]}" -v t="$TARGET_RSS_B" 'BEGIN { print (p <= t) ? 1 : 0 }')"
            status="$(verdict "$ok" "$(fmt %.2f "$(calc "${MEM_PER[$D]} / $TARGET_RSS_B")") × target")"
        fi
        printf '| 4 | resident memory, %s devices | **%s bytes per device**, the largest of %s runs (%s); in that run %s of them anonymous memory, VmRSS %s → %s MiB (RssAnon %s → %s, RssFile %s → %s) | %s | %s |\n' \
            "$(thousands "$D")" "$(thousands "${MEM_PER[$D]}")" "$MEM_RUNS" "${MEM_ALL[$D]}" "$(thousands "${MEM_PER_ANON[$D]}")" \
            "$(mib "${MEM_BASE[$D]}")" "$(mib "${MEM_AFTER[$D]}")" \
            "$(mib "${MEM_BASE_ANON[$D]}")" "$(mib "${MEM_ANON[$D]}")" \
            "$(mib "${MEM_BASE_FILE[$D]}")" "$(mib "${MEM_FILE[$D]}")" \
            "$target" "$status"
    done
    printf '| 5 | drain: %s readings queued at the broker while the client is stopped | bare `mosquitto_sub` %s msg/s (%s s); **firewatch %s msg/s**: %s s from its start until the TSDB had them all (healthy after %s s, all committed after %s s) | ≥ %s × `mosquitto_sub` | %s |\n' \
        "$(thousands "$DRAIN_N")" "$(thousands "$DRAIN_SUB_RATE")" "$(fmt %.2f "$DRAIN_SUB_S")" "$(thousands "$DRAIN_FW_RATE")" "$(fmt %.2f "$DRAIN_FW_S")" \
        "$(fmt %.2f "$DRAIN_START_S")" "$(fmt %.2f "$DRAIN_COMMIT_S")" "$TARGET_DRAIN_RATIO" "$(verdict "$drain_ok" "$(fmt %.2f "$DRAIN_RATIO") × mosquitto_sub")"
    printf '| 5a | where the time goes, drain | readings received → committed %s; committed → in the TSDB %s | — | — |\n' \
        "$(stage_cell "$OUT/stages-drain.txt" received_committed/reading)" "$(stage_cell "$OUT/stages-drain.txt" committed_in_tsdb/-)"
    printf '| 6 | ingest on the embedded broker (rumqttd), as step 2 | **%s msg/s** (%s messages in %s s); publisher %s msg/s; firewatch with its broker %s cores, machine %s of %s | ≥ %s × step 2 | %s |\n' \
        "$(thousands "$EMB_RATE")" "$N" "$(fmt %.2f "$EMB_S")" "$(thousands "$EMB_PUB_RATE")" "$(fmt %.2f "$EMB_FW_CORES")" "$(fmt %.2f "$EMB_BUSY_CORES")" "$M_NPROC" \
        "$TARGET_EMBEDDED_RATIO" "$(verdict "$emb_ok" "$(fmt %.2f "$EMB_RATIO") × Mosquitto")"
    printf '| 6a | where the time goes, embedded broker | readings received → committed %s | — | — |\n' \
        "$(stage_cell "$OUT/stages-embedded.txt" received_committed/reading)"
} >"$TABLE"

cat "$TABLE"
if [[ -n $DOC ]]; then
    "$SYS_PYTHON" bench/doc-table.py "$DOC" bench "$TABLE"
    step "wrote the table into $DOC"
fi
step "done; logs and raw results in $OUT"
