#!/usr/bin/env bash
# Broker candidates for several firewatch instances: a NATS cluster's MQTT listeners with
# devices partitioned by subject mapping, against one Mosquitto, on this machine.
#
#   bench/brokers.sh
#
# Starts (free loopback ports, state in the run's directory, everything stopped on exit):
#   - Mosquitto alone (the single-node reference);
#   - three nats-server nodes in one cluster, JetStream on (NATS needs it for MQTT sessions and
#     QoS 1), an MQTT listener on each, and the mapping
#       fw.v1.*.*.*.*  →  fwp.{{partition(P,3)}}.fw.v1.…
#     which puts every device's messages (its id is the third wildcard) into one of P
#     partitions, whichever node they were published to.
#
# Then, in the same run:
#   a. spread: BENCH_BROKERS_DEVICES devices publish one message each to the three nodes in
#      turn; one subscriber per partition (spread over the nodes) counts what it gets: every
#      message once, every device in exactly one partition;
#   b. takeover: a persistent session (`clean session` off) of partition 0 subscribes on node 1
#      and leaves; messages for its devices are published on node 3; the same client id
#      connects to node 2 and must get every one of them;
#   c. throughput, QoS 1: `firewatch-sim load` publishes BENCH_BROKERS_N readings, and
#      `mosquitto_sub` takes them — on Mosquitto (`fw/v1/#`), and on the cluster (publisher on
#      node 1, three subscribers, one per node, each for a third of the partitions).
#
# Prints a table and writes it into docs/scaling.md between `<!-- bench-brokers:begin -->` and
# `<!-- bench-brokers:end -->`.
#
# Environment (all optional):
#   BENCH_BROKERS_N          messages of run c (100000)
#   BENCH_BROKERS_DEVICES    devices of runs a and c (1000)
#   BENCH_BROKERS_P          partitions (12)
#   BENCH_BROKERS_NATS_MQTT  more settings of NATS's `mqtt {}` block, e.g. `stream_replicas: 1` ()
#   BENCH_BUILD              1: `cargo build --release -p firewatch-sim --locked` first (1)
#   BENCH_OUT                logs and results (bench/out/brokers-<UTC time>-<pid>)
#   BENCH_DOC                the file to update (docs/scaling.md); empty: none

set -Eeuo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO_ROOT"

N="${BENCH_BROKERS_N:-100000}"
DEVICES="${BENCH_BROKERS_DEVICES:-1000}"
P="${BENCH_BROKERS_P:-12}"
NATS_MQTT="${BENCH_BROKERS_NATS_MQTT:-}"
BUILD="${BENCH_BUILD:-1}"
DOC="${BENCH_DOC-docs/scaling.md}"
OUT="${BENCH_OUT:-bench/out/brokers-$(date -u +%Y%m%dT%H%M%SZ)-$$}"
SIM="$REPO_ROOT/target/release/firewatch-sim"

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

for cmd in nats-server mosquitto_sub mosquitto_pub /usr/sbin/mosquitto python3; do
    command -v "$cmd" >/dev/null || die "$cmd is missing (apt-get install nats-server mosquitto mosquitto-clients)"
done
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd -P)"
if [[ $BUILD == 1 ]]; then
    say "Building firewatch-sim (release)"
    cargo build --release -p firewatch-sim --locked >"$OUT/build.log" 2>&1
fi

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_until() {
    local bound=$1 what=$2
    shift 2
    local end=$((SECONDS + bound))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < end)) || die "$what: not within $bound s"
        sleep 0.1
    done
}

# A subscriber in the background: sub NAME PORT CLIENT_ID COUNT TOPIC... (clean session,
# QoS 1, debug output so that its SUBACK can be waited for). Sets SUB_PID.
sub() {
    local name=$1 port=$2 id=$3 count=$4
    shift 4
    local topics=()
    for t in "$@"; do topics+=(-t "$t"); done
    timeout 300 stdbuf -oL mosquitto_sub -h 127.0.0.1 -p "$port" -i "$id" -q 1 -d -v -C "$count" "${topics[@]}" \
        >"$OUT/$name.out" 2>"$OUT/$name.err" &
    SUB_PID=$!
    PIDS+=("$SUB_PID")
    wait_until 30 "$name subscribed" grep -q SUBACK "$OUT/$name.out"
}
received() { grep -c '^fw' "$OUT/$1.out" || true; }

# --- Mosquitto ---------------------------------------------------------------------------
MQ_PORT="$(free_port)"
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 1000\n' \
    "$MQ_PORT" >"$OUT/mosquitto.conf"
/usr/sbin/mosquitto -c "$OUT/mosquitto.conf" >"$OUT/mosquitto.log" 2>&1 &
PIDS+=($!)
wait_until 10 "Mosquitto listening" bash -c "exec 3<>/dev/tcp/127.0.0.1/$MQ_PORT"

# --- NATS cluster --------------------------------------------------------------------------
declare -a CLIENT CLUSTER MQTT
for i in 1 2 3; do CLIENT[i]="$(free_port)"; CLUSTER[i]="$(free_port)"; MQTT[i]="$(free_port)"; done
routes="nats-route://127.0.0.1:${CLUSTER[1]}, nats-route://127.0.0.1:${CLUSTER[2]}, nats-route://127.0.0.1:${CLUSTER[3]}"
for i in 1 2 3; do
    cat >"$OUT/nats-$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:${CLIENT[i]}
http: 127.0.0.1:$(free_port)
jetstream { store_dir: "$OUT/js-$i" }
cluster { name: fw, listen: 127.0.0.1:${CLUSTER[i]}, routes: [$routes] }
mqtt { listen: 127.0.0.1:${MQTT[i]}, $NATS_MQTT }
mappings = {
  "fw.v1.*.*.*.*": "fwp.{{partition($P,3)}}.fw.v1.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}.{{wildcard(4)}}"
}
EOF
    nats-server -c "$OUT/nats-$i.conf" >"$OUT/nats-$i.log" 2>&1 &
    PIDS+=($!)
done
# MQTT needs the JetStream cluster: a subscription with a session succeeds only once it is up.
for i in 1 2 3; do
    wait_until 60 "NATS node $i serving MQTT sessions" \
        timeout 5 mosquitto_sub -h 127.0.0.1 -p "${MQTT[i]}" -i "probe-$i" -q 1 -t probe -W 1 -E
done

# --- a. spread -----------------------------------------------------------------------------
say "a. spread: $DEVICES devices over $P partitions, published to the three nodes in turn"
SPREAD_PIDS=()
for k in $(seq 0 $((P - 1))); do
    sub "spread-$k" "${MQTT[$((k % 3 + 1))]}" "spread-$k-$$" "$DEVICES" "fwp/$k/#"
    SPREAD_PIDS+=("$SUB_PID")
done
python3 - "$DEVICES" >"$OUT/spread.in" <<'PY'
import sys
for d in range(int(sys.argv[1])):
    print(f"fw/v1/bb-{d // 100:03d}/water_pressure/dev-{d:06d}/telemetry {d % 3 + 1}")
PY
for i in 1 2 3; do
    awk -v n="$i" '$2 == n {print $1}' "$OUT/spread.in" | while read -r topic; do
        mosquitto_pub -h 127.0.0.1 -p "${MQTT[i]}" -q 1 -t "$topic" -m '{"seq":1}'
    done &
done
wait_until 60 "all $DEVICES spread messages received" bash -c \
    "(( \$(cat $OUT/spread-*.out | grep -c '^fwp') >= $DEVICES ))"
for k in $(seq 0 $((P - 1))); do
    grep '^fwp' "$OUT/spread-$k.out" | awk -v k="$k" '{split($1, t, "/"); print k, t[7]}'
done >"$OUT/spread.tsv"
SPREAD="$(python3 - "$OUT/spread.tsv" "$DEVICES" "$P" <<'PY'
import sys, collections
rows = [l.split() for l in open(sys.argv[1])]
n, p = int(sys.argv[2]), int(sys.argv[3])
per = collections.Counter(k for k, _ in rows)
homes = collections.defaultdict(set)
for k, d in rows:
    homes[d].add(k)
twice = sum(1 for h in homes.values() if len(h) > 1)
counts = [per.get(str(k), 0) for k in range(p)]
print(f"{len(rows)} of {n} messages received, {len(homes)} devices, {twice} in more than one partition; per partition {min(counts)}–{max(counts)} (mean {n / p:.0f})")
PY
)"
say "    $SPREAD"
kill "${SPREAD_PIDS[@]}" 2>/dev/null || true

# --- b. takeover ---------------------------------------------------------------------------
say "b. takeover: partition 0's session on node 1, away; messages on node 3; back on node 2"
mine="$(awk '$1 == 0 {print $2}' "$OUT/spread.tsv")"
want="$(printf '%s\n' "$mine" | grep -c . || true)"
((want > 0)) || die "partition 0 got no devices in run a"
# The session must exist (its SUBACK seen) before it leaves: else nothing is kept for it.
timeout 10 stdbuf -oL mosquitto_sub -h 127.0.0.1 -p "${MQTT[1]}" -i "owner-p0-$$" -c -q 1 -t 'fwp/0/#' -d -E \
    >"$OUT/owner-p0.out" 2>&1 || true
grep -q SUBACK "$OUT/owner-p0.out" || die "partition 0's session got no SUBACK on node 1: $(tail -n 2 "$OUT/owner-p0.out")"
for d in $mine; do
    mosquitto_pub -h 127.0.0.1 -p "${MQTT[3]}" -q 1 -t "fw/v1/bb-${d:5:3}/water_pressure/$d/telemetry" -m queued
done
TAKEN="$(timeout 30 mosquitto_sub -h 127.0.0.1 -p "${MQTT[2]}" -i "owner-p0-$$" -c -q 1 -t 'fwp/0/#' \
    -C "$want" -W 20 2>/dev/null | grep -c '^queued$' || true)"
say "    $TAKEN of $want queued messages delivered to the session on another node"

# --- c. throughput -------------------------------------------------------------------------
load() { # PORT: publishes N readings from DEVICES devices, QoS 1, 4 connections
    "$SIM" load --broker "mqtt://127.0.0.1:$1" --devices "$DEVICES" --count "$N" --qos 1 \
        --connections 4 --prefix dev --quiet >"$OUT/load-$1.json" 2>"$OUT/load-$1.err"
}
say "c. throughput: $N readings, QoS 1"
sub tp-mosquitto "$MQ_PORT" "tp-mq-$$" "$N" 'fw/v1/#'
t0="$(now)"; load "$MQ_PORT"; wait "$SUB_PID"; t1="$(now)"
MQ_S="$(python3 -c "print($t1 - $t0)")"
say "    Mosquitto: $N in $MQ_S s"
declare -a TP_PIDS
for i in 1 2 3; do
    topics=()
    for k in $(seq 0 $((P - 1))); do ((k % 3 + 1 == i)) && topics+=("fwp/$k/#"); done
    count=0
    for k in $(seq 0 $((P - 1))); do
        ((k % 3 + 1 == i)) && count=$((count + $(awk -v k="$k" '$1 == k' "$OUT/spread.tsv" | wc -l)))
    done
    # Each node's subscriber takes its partitions' share of the N messages: the load tool's
    # devices are run a's (`dev-000000`…, the same partitions), N / DEVICES messages each.
    sub "tp-nats-$i" "${MQTT[i]}" "tp-nats-$i-$$" "$((count * N / DEVICES))" "${topics[@]}"
    TP_PIDS[i]=$SUB_PID
done
t0="$(now)"; load "${MQTT[1]}"
for i in 1 2 3; do wait "${TP_PIDS[i]}" || die "the node $i subscriber failed: $(tail -n 2 "$OUT/tp-nats-$i.err")"; done
t1="$(now)"
NATS_S="$(python3 -c "print($t1 - $t0)")"
say "    NATS cluster: $N in $NATS_S s"

python3 - "$N" "$MQ_S" "$NATS_S" "$SPREAD" "$TAKEN" "$want" "$P" "$(git rev-parse --short HEAD)" \
    "$(nats-server --version)" "$(/usr/sbin/mosquitto -h 2>/dev/null | head -n 1)" \
    "$OUT/load-$MQ_PORT.json" "$OUT/load-${MQTT[1]}.json" <<'PY' >"$OUT/table.md"
import sys, json, datetime, os
n, mq, nats, spread, taken, want, p, commit, nv, mv, lmq, lnats = sys.argv[1:]
n, mq, nats = int(n), float(mq), float(nats)
pub_mq, pub_nats = json.load(open(lmq)), json.load(open(lnats))
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print(f"Run {now} · commit {commit} · machine: `nproc` {os.cpu_count()} · {nv} · {mv}\n")
print("| # | measurement | result |\n|---|---|---|")
print(f"| a | NATS cluster, {p} partitions: a device's messages in one partition whichever node they reach | {spread} |")
print(f"| b | partition 0's persistent session taken over on another node | {taken} of {want} messages queued while it was away delivered |")
print(f"| c | Mosquitto, QoS 1, `firewatch-sim load` → `mosquitto_sub` | **{n / mq:,.0f} msg/s** ({n} in {mq:.2f} s; publisher {pub_mq['acked']} acknowledged) |")
print(f"| c | NATS cluster of 3, QoS 1, publisher on node 1, a subscriber per node for its third of the partitions | **{n / nats:,.0f} msg/s** ({n} in {nats:.2f} s; publisher {pub_nats['acked']} acknowledged); {n / nats / (n / mq):.2f} × Mosquitto |")
PY
cat "$OUT/table.md"
if [[ -n $DOC ]]; then
    python3 bench/doc-table.py "$DOC" bench-brokers "$OUT/table.md"
fi
