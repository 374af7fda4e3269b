#!/usr/bin/env bash
# Throwaway external services for firewatch integration tests.
#
#   scripts/test-services.sh start DIR   install missing packages, start the services
#   scripts/test-services.sh stop DIR    stop them again (idempotent)
#
# `start` runs, on free loopback ports and with all state under DIR:
#   - Mosquitto (MQTT broker), configured from deploy/mosquitto.conf
#   - VictoriaMetrics (InfluxDB v2 write API at /api/v2/write, export at /api/v1/export)
#   - scripts/smtp_capture.py (SMTP server that saves every mail to DIR/mail)
#   - PostgreSQL (the shared store's tests), a cluster initialised in DIR/pg with the user
#     `firewatch` (password `firewatch-test`); tests make their own databases in it
# and writes DIR/env with `export FW_TEST_...=...` lines; `source DIR/env` before
# running the tests. It also installs what tests start themselves: Chromium and its driver
# (dashboard tests), nginx-light (the reverse-proxy test), g++ (the fuzz targets).
#
# Layout of DIR:
#   env                          variables for the tests (see write_env)
#   mosquitto.conf               generated broker config (FW_TEST_MOSQUITTO_CONF)
#   mosquitto/                   broker persistence
#   vm/                          VictoriaMetrics storage
#   mail/                        captured mail: <ns>-<n>.eml + <ns>-<n>.json
#   pg/                          PostgreSQL cluster (owned by the `postgres` user when run as root)
#   <service>.pid, <service>.log for mosquitto, victoria-metrics, smtp-capture
#     (Mosquitto also writes mosquitto.pid itself via pid_file, so a broker that a
#     test restarts with FW_TEST_MOSQUITTO_CONF is still stopped by `stop`)
#
# Works as root on a bare Debian 12 machine without systemd; as another user it
# needs sudo only if packages are missing.

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd -P)"
DEPLOY_MOSQUITTO_CONF="$REPO_ROOT/deploy/mosquitto.conf"
SMTP_CAPTURE="$SCRIPT_DIR/smtp_capture.py"

MOSQUITTO_BIN=/usr/sbin/mosquitto
VM_BIN=/usr/bin/victoria-metrics
# Debian's interpreter, which is the one python3-aiosmtpd is installed for. A
# python3 found earlier on PATH (pyenv, venv, ...) usually lacks aiosmtpd.
SYS_PYTHON=/usr/bin/python3

# g++: the fuzz step builds libFuzzer (C++).
PACKAGES=(mosquitto mosquitto-clients victoria-metrics python3-aiosmtpd
    chromium chromium-driver fonts-wqy-zenhei g++ nginx-light postgresql)
CHROMIUM_BIN=/usr/bin/chromium
CHROMEDRIVER_BIN=/usr/bin/chromedriver
SERVICES=(mosquitto victoria-metrics smtp-capture postgresql)
# Debian's PostgreSQL 15 (package postgresql); initdb and postgres refuse to run as root, so as
# root they run as the package's `postgres` user.
PG_BIN=/usr/lib/postgresql/15/bin
PG_PASSWORD=firewatch-test

# Seconds to wait for each service to accept connections.
START_TIMEOUT="${FW_TEST_SERVICES_START_TIMEOUT:-30}"
# Seconds to wait for each service to exit after SIGTERM before using SIGKILL.
STOP_TIMEOUT=10

say() { printf '%s\n' "$*"; }
die() {
    printf 'test-services: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat >&2 <<EOF
usage: $0 start DIR   start Mosquitto, VictoriaMetrics and the SMTP capture server
       $0 stop DIR    stop them
After start, 'source DIR/env' to get the FW_TEST_* variables.
EOF
    exit 2
}

# ---------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

pkg_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

# Installs the given packages without letting their maintainer scripts start the
# system services (Debian's mosquitto would otherwise grab port 1883 and
# victoria-metrics port 8428). invoke-rc.d consults /usr/sbin/policy-rc.d, and exit
# code 101 means "action forbidden". Any existing policy-rc.d is restored afterwards.
# Runs in a subshell so that its EXIT trap restores the policy even if apt-get fails.
apt_install() (
    policy=/usr/sbin/policy-rc.d
    backup=""
    if [[ -e $policy ]]; then
        backup="$policy.test-services.$$"
        as_root mv "$policy" "$backup"
    fi
    # shellcheck disable=SC2317  # invoked by the trap
    restore_policy() {
        as_root rm -f "$policy"
        if [[ -n $backup ]]; then as_root mv "$backup" "$policy"; fi
    }
    trap restore_policy EXIT
    printf '#!/bin/sh\n# Temporary, from scripts/test-services.sh: do not start services.\nexit 101\n' |
        as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"

    say "Running apt-get update ..."
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    say "Installing $* ..."
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
)

# A broker started by the package (for example when policy-rc.d was ignored) would
# occupy port 1883; stop it. Only called right after installing mosquitto.
stop_system_mosquitto() {
    local pidfile=/run/mosquitto/mosquitto.pid pid
    [[ -r $pidfile ]] || return 0
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if [[ $pid =~ ^[0-9]+$ ]] && [[ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" == "$MOSQUITTO_BIN" ]]; then
        say "Stopping the system Mosquitto started by the package (pid $pid) ..."
        as_root kill "$pid" 2>/dev/null || true
    fi
}

ensure_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} > 0)); then
        apt_install "${missing[@]}"
        for p in "${missing[@]}"; do
            if [[ $p == mosquitto ]]; then stop_system_mosquitto; fi
        done
    fi
    local f
    for f in "$MOSQUITTO_BIN" "$VM_BIN" /usr/bin/mosquitto_pub /usr/bin/mosquitto_sub "$SYS_PYTHON" \
        "$CHROMIUM_BIN" "$CHROMEDRIVER_BIN" /usr/sbin/nginx "$PG_BIN/initdb" "$PG_BIN/postgres"; do
        [[ -x $f ]] || die "$f is missing although its package is installed"
    done
    "$SYS_PYTHON" -c 'import aiosmtpd' 2>/dev/null ||
        die "$SYS_PYTHON cannot import aiosmtpd (package python3-aiosmtpd)"
}

# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

pidfile_of() { printf '%s/%s.pid' "$DIR" "$1"; }
logfile_of() { printf '%s/%s.log' "$DIR" "$1"; }

# True if the process exists and is not a zombie (PID 1 in a container does not
# always reap orphans, so a killed service can linger as a zombie).
alive() {
    local pid=$1 stat
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ ${stat:0:1} != Z ]]
}

# Pid recorded for a service, if it is still running and really is the process we
# started (its command line mentions DIR), so a recycled pid is never killed.
running_pid() {
    local pidfile pid
    pidfile="$(pidfile_of "$1")"
    [[ -r $pidfile ]] || return 1
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)" == *"$DIR"* ]] || return 1
    printf '%s' "$pid"
}

stop_service() {
    local name=$1 pid i
    # PostgreSQL's "fast" shutdown is SIGINT (SIGTERM waits for its clients to leave).
    local sig=TERM
    [[ $name == postgresql ]] && sig=INT
    if pid="$(running_pid "$name")"; then
        say "Stopping $name (pid $pid) ..."
        kill -"$sig" "$pid" 2>/dev/null || true
        for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            say "$name did not exit within ${STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                alive "$pid" || break
                sleep 0.1
            done
        fi
    fi
    rm -f "$(pidfile_of "$name")"
}

stop_all() {
    local i
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
        stop_service "${SERVICES[i]}"
    done
}

# Starts "$@" in the background as a new session (so it outlives this script and
# ignores the terminal's signals), stdin from /dev/null, output to the log file.
# Sets SPAWNED_PID.
spawn() {
    local name=$1 log
    shift
    log="$(logfile_of "$name")"
    setsid "$@" </dev/null >"$log" 2>&1 &
    SPAWNED_PID=$!
    printf '%s\n' "$SPAWNED_PID" >"$(pidfile_of "$name")"
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_for_port() {
    local name=$1 label=$2 port=$3 pid=$4 log i
    log="$(logfile_of "$name")"
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        if ! alive "$pid"; then
            tail -n 20 "$log" >&2 || true
            die "$label exited during startup; see $log"
        fi
        if port_open "$port"; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$log" >&2 || true
    die "$label did not accept connections on 127.0.0.1:$port within ${START_TIMEOUT}s; see $log"
}

# Four distinct free loopback ports: all three sockets are bound at the same time,
# then released.
pick_ports() {
    "$SYS_PYTHON" -c '
import socket
socks = []
for _ in range(4):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
'
}

# ---------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------

# Options removed from deploy/mosquitto.conf for the test broker: listeners and
# listener-scoped options, authentication, and file locations.
MOSQUITTO_DROP='listener|port|bind_address|bind_interface|socket_domain|protocol|mount_point|max_connections|cafile|capath|certfile|keyfile|crlfile|ciphers|ciphers_tls1.3|dhparamfile|tls_version|tls_engine|tls_engine_kpass_sha1|tls_keyform|require_certificate|use_identity_as_username|use_subject_as_username|use_username_as_clientid|psk_hint|psk_file|http_dir|websockets_log_level|websockets_headers_size|allow_anonymous|password_file|acl_file|auth_plugin|auth_opt_[^ ]*|plugin|plugin_opt_[^ ]*|persistence_location|persistence_file|pid_file|log_dest|user|include_dir'

write_mosquitto_conf() {
    local conf=$1 port=$2
    [[ -r $DEPLOY_MOSQUITTO_CONF ]] || die "$DEPLOY_MOSQUITTO_CONF not found"
    {
        printf '# Generated by scripts/test-services.sh from %s; regenerated on every start.\n\n' \
            "$DEPLOY_MOSQUITTO_CONF"
        printf '# ---- from deploy/mosquitto.conf (listener, auth and path settings removed) ----\n'
        grep -Ev "^[[:space:]]*($MOSQUITTO_DROP)([[:space:]]|\$)" "$DEPLOY_MOSQUITTO_CONF"
        printf '\n# ---- test settings ----\n'
        # As root, Mosquitto would otherwise switch to the "mosquitto" user and could
        # not write to DIR; for any other user this option is ignored.
        printf 'user %s\n' "$(id -un)"
        printf 'pid_file %s\n' "$(pidfile_of mosquitto)"
        printf 'persistence true\n'
        printf 'persistence_location %s\n' "$DIR/mosquitto"
        # stderr, not stdout: Mosquitto's stdout logging is block-buffered in a file.
        printf 'log_dest stderr\n'
        printf 'allow_anonymous true\n'
        printf 'listener %s 127.0.0.1\n' "$port"
    } >"$conf"
}

start_mosquitto() {
    local port=$1 conf="$DIR/mosquitto.conf"
    mkdir -p "$DIR/mosquitto"
    write_mosquitto_conf "$conf" "$port"
    spawn mosquitto "$MOSQUITTO_BIN" -c "$conf"
    wait_for_port mosquitto Mosquitto "$port" "$SPAWNED_PID"
    say "Started Mosquitto on 127.0.0.1:$port (log $(logfile_of mosquitto))"
}

start_victoria_metrics() {
    local port=$1
    mkdir -p "$DIR/vm"
    # -search.latencyOffset=0s and -search.disableCache make freshly written points
    # visible to /api/v1/query at once (the defaults hide the last 30 s and cache
    # query results); /api/v1/export is not affected by either.
    spawn victoria-metrics "$VM_BIN" \
        -httpListenAddr="127.0.0.1:$port" \
        -storageDataPath="$DIR/vm" \
        -retentionPeriod=1d \
        -search.latencyOffset=0s \
        -search.disableCache
    wait_for_port victoria-metrics VictoriaMetrics "$port" "$SPAWNED_PID"
    say "Started VictoriaMetrics on 127.0.0.1:$port (log $(logfile_of victoria-metrics))"
}

start_smtp_capture() {
    local port=$1
    mkdir -p "$DIR/mail"
    spawn smtp-capture "$SYS_PYTHON" -u "$SMTP_CAPTURE" \
        --listen "127.0.0.1:$port" --maildir "$DIR/mail"
    wait_for_port smtp-capture "SMTP capture server" "$port" "$SPAWNED_PID"
    say "Started SMTP capture server on 127.0.0.1:$port, saving mail to $DIR/mail (log $(logfile_of smtp-capture))"
}

start_postgresql() {
    local port=$1 data="$DIR/pg" as_pg=()
    mkdir -p "$data"
    printf '%s\n' "$PG_PASSWORD" >"$DIR/pg.password"
    if ((EUID == 0)); then
        # The postgres user must reach DIR/pg (DIR is root's, mode 700 from mktemp).
        chmod o+x "$DIR"
        chown postgres:postgres "$data" "$DIR/pg.password"
        as_pg=(setpriv --reuid postgres --regid postgres --clear-groups)
    fi
    "${as_pg[@]}" "$PG_BIN/initdb" -D "$data" -U firewatch --pwfile="$DIR/pg.password" \
        --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$(logfile_of postgresql-initdb)" 2>&1 ||
        { tail -n 20 "$(logfile_of postgresql-initdb)" >&2; die "initdb failed; see $(logfile_of postgresql-initdb)"; }
    # Durable as in production (fsync and synchronous_commit stay on); sockets only in DIR/pg.
    spawn postgresql "${as_pg[@]}" "$PG_BIN/postgres" -D "$data" -p "$port" -c listen_addresses=127.0.0.1 \
        -c unix_socket_directories="$data" -c max_connections=200 -c shared_buffers=128MB
    wait_for_port postgresql PostgreSQL "$port" "$SPAWNED_PID"
    # The port opens before the server takes sessions; pg_isready says when it does.
    local i
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" && break
        sleep 0.1
    done
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" ||
        die "PostgreSQL did not take sessions within ${START_TIMEOUT}s; see $(logfile_of postgresql)"
    say "Started PostgreSQL on 127.0.0.1:$port (log $(logfile_of postgresql))"
}

write_env() {
    local mqtt=$1 tsdb=$2 smtp=$3 pg=$4 env="$DIR/env"
    {
        printf '# Generated by scripts/test-services.sh start; source this file.\n'
        printf 'export FW_TEST_MQTT_URL=%q\n' "mqtt://127.0.0.1:$mqtt"
        printf 'export FW_TEST_MQTT_PORT=%q\n' "$mqtt"
        printf 'export FW_TEST_TSDB_URL=%q\n' "http://127.0.0.1:$tsdb"
        printf 'export FW_TEST_SMTP_URL=%q\n' "smtp://127.0.0.1:$smtp"
        printf 'export FW_TEST_MAILDIR=%q\n' "$DIR/mail"
        printf 'export FW_TEST_MOSQUITTO_CONF=%q\n' "$DIR/mosquitto.conf"
        printf 'export FW_TEST_CHROMIUM=%q\n' "$CHROMIUM_BIN"
        printf 'export FW_TEST_CHROMEDRIVER=%q\n' "$CHROMEDRIVER_BIN"
        printf 'export FW_TEST_POSTGRES_URL=%q\n' "postgres://firewatch:$PG_PASSWORD@127.0.0.1:$pg/postgres"
    } >"$env.tmp"
    mv "$env.tmp" "$env"
}

cmd_start() {
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd -P)"

    local name
    for name in "${SERVICES[@]}"; do
        if running_pid "$name" >/dev/null; then
            die "$name is already running for $DIR; run '$0 stop $DIR' first"
        fi
    done

    ensure_packages

    # Fresh state on every start: no old sessions, series or mail.
    rm -rf "$DIR/mosquitto" "$DIR/vm" "$DIR/mail" "$DIR/env" "$DIR/mosquitto.conf" "$DIR/pg"
    for name in "${SERVICES[@]}"; do
        rm -f "$(pidfile_of "$name")" "$(logfile_of "$name")"
    done

    # Whatever was started is stopped again if a later step fails.
    trap 'status=$?; if ((status != 0)); then say "Start failed; stopping what was started" >&2; stop_all >&2; fi' EXIT

    local ports mqtt_port tsdb_port smtp_port pg_port
    ports="$(pick_ports)" || die "could not pick free ports"
    read -r mqtt_port tsdb_port smtp_port pg_port <<<"$ports"

    start_mosquitto "$mqtt_port"
    start_victoria_metrics "$tsdb_port"
    start_smtp_capture "$smtp_port"
    start_postgresql "$pg_port"
    write_env "$mqtt_port" "$tsdb_port" "$smtp_port" "$pg_port"
    trap - EXIT

    say "Wrote $DIR/env; run: source $DIR/env"
}

cmd_stop() {
    if [[ ! -d $DIR ]]; then
        say "Nothing to stop: $DIR does not exist"
        return 0
    fi
    DIR="$(cd "$DIR" && pwd -P)"
    stop_all
    rm -f "$DIR/env"
    say "Stopped test services in $DIR"
}

main() {
    (($# == 2)) || usage
    [[ -n $2 ]] || usage
    DIR=$2
    case $1 in
    start) cmd_start ;;
    stop) cmd_stop ;;
    *) usage ;;
    esac
}

main "$@"
