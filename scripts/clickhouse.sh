#!/usr/bin/env bash
# A private ClickHouse server for the tests: its own config and data under target/clickhouse/, bound to
# 127.0.0.1 only, never the system service or /var/lib/clickhouse.
#
#   scripts/clickhouse.sh start   install the Debian packages if missing, start, wait for /ping
#   scripts/clickhouse.sh stop    stop the server started by `start` (pid file)
#   scripts/clickhouse.sh status  exit 0 when the private server answers /ping
#
# Ports: HTTP on $PAVEMETER_TEST_CH_PORT (default 8123); the native TCP and interserver ports are picked free.
# `start` also installs `prometheus` and `chromium` when they are missing, since other tests need them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${PAVEMETER_TEST_CH_DIR:-$ROOT/target/clickhouse}"
HTTP_PORT="${PAVEMETER_TEST_CH_PORT:-8123}"
PID_FILE="$BASE/clickhouse.pid"
LOG_DIR="$BASE/log"

log() { printf 'clickhouse.sh: %s\n' "$*" >&2; }

find_server() {
    local b
    for b in clickhouse-server /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
        if command -v "$b" >/dev/null 2>&1; then
            command -v "$b"
            return 0
        fi
    done
    # Upstream packages ship one `clickhouse` binary with a `server` mode.
    if command -v clickhouse >/dev/null 2>&1; then
        echo "$(command -v clickhouse) server"
        return 0
    fi
    return 1
}

apt_updated=0
apt_install() {
    if [ "$(id -u)" != 0 ]; then
        log "cannot install $* without root; install them and re-run"
        exit 1
    fi
    if [ "$apt_updated" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        apt_updated=1
    fi
    log "installing $*"
    # The packages' postinst may try to start the system service; policy-rc.d 101 keeps it from doing so.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        created_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 || {
        [ "$created_policy" = 1 ] && rm -f "$policy"
        return 1
    }
    [ "$created_policy" = 1 ] && rm -f "$policy"
    return 0
}

install_missing() {
    local want=()
    find_server >/dev/null || want+=(clickhouse-server clickhouse-client)
    command -v prometheus >/dev/null 2>&1 || want+=(prometheus)
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || want+=(chromium)
    if [ "${#want[@]}" -gt 0 ]; then
        apt_install "${want[@]}"
    fi
    # Debian's package starts the system server on install; it would hold port 8123 and is not ours to use.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet clickhouse-server 2>/dev/null; then
        log "note: the system clickhouse-server service is running; the private server needs port $HTTP_PORT free"
    fi
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
    local p
    for p in $(seq "$1" "$(($1 + 200))"); do
        if [ "$p" != "$HTTP_PORT" ] && port_free "$p"; then
            echo "$p"
            return 0
        fi
    done
    log "no free port near $1"
    exit 1
}

ping_ok() {
    [ "$(curl -fsS --max-time 2 "http://127.0.0.1:$HTTP_PORT/ping" 2>/dev/null)" = "Ok." ]
}

running_pid() {
    [ -f "$PID_FILE" ] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

write_config() {
    local tcp_port="$1" inter_port="$2"
    mkdir -p "$BASE/data" "$BASE/tmp" "$BASE/user_files" "$BASE/format_schemas" "$LOG_DIR"
    cat >"$BASE/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$LOG_DIR/clickhouse-server.log</log>
        <errorlog>$LOG_DIR/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$HTTP_PORT</http_port>
    <tcp_port>$tcp_port</tcp_port>
    <interserver_http_port>$inter_port</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$BASE/data/</path>
    <tmp_path>$BASE/tmp/</tmp_path>
    <user_files_path>$BASE/user_files/</user_files_path>
    <format_schema_path>$BASE/format_schemas/</format_schema_path>
    <users_config>$BASE/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
EOF
    cat >"$BASE/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

start() {
    if pid="$(running_pid)"; then
        if ping_ok; then
            log "already running (pid $pid) on http://127.0.0.1:$HTTP_PORT"
            return 0
        fi
        log "stale server (pid $pid) does not answer; stopping it"
        stop
    fi
    if ping_ok; then
        log "something else already answers on 127.0.0.1:$HTTP_PORT; set PAVEMETER_TEST_CH_PORT to another port"
        exit 1
    fi
    install_missing
    local server
    server="$(find_server)" || {
        log "no clickhouse-server binary found after install"
        exit 1
    }
    local tcp_port inter_port
    tcp_port="$(free_port 19000)"
    inter_port="$(free_port $((tcp_port + 1)))"
    write_config "$tcp_port" "$inter_port"
    # Not --daemon: we keep the pid ourselves and the process dies with a clean SIGTERM.
    # shellcheck disable=SC2086
    nohup $server --config-file="$BASE/config.xml" >"$LOG_DIR/stdout.log" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    local pid
    pid="$(cat "$PID_FILE")"
    local i
    for i in $(seq 1 300); do
        if ping_ok; then
            log "ready on http://127.0.0.1:$HTTP_PORT (pid $pid, data $BASE/data)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "server exited during start-up; last log lines:"
            tail -n 30 "$LOG_DIR/clickhouse-server.err.log" "$LOG_DIR/stdout.log" >&2 2>/dev/null || true
            rm -f "$PID_FILE"
            exit 1
        fi
        sleep 0.1
    done
    log "server did not answer /ping within 30 s; see $LOG_DIR"
    stop
    exit 1
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        return 0
    fi
    kill "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "server (pid $pid) ignored SIGTERM for 15 s; killing it"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    log "stopped (pid $pid)"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) ping_ok ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
