#!/usr/bin/env bash
# Foundation benchmark: pgbench -S (select-only) against direct PostgreSQL, shardproxy and
# PgBouncer (transaction mode), in interleaved rounds so machine drift hits every target alike.
# See bench/README.md for what each number means.
set -euo pipefail

DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
SCALE="${SCALE:-10}"
CLIENTS="${CLIENTS:-1 8}"
MODES="${MODES:-simple extended prepared}"
TARGETS="${TARGETS:-direct proxy pgbouncer}"
WARMUP="${WARMUP:-2}"
KEEP_TMP="${KEEP_TMP:-0}"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
init_paths ""

TMP=""
SERVERS=() # the data directory of the PostgreSQL server, once started
PROXY_PID=""
PGB_PID=""
CLK_TCK="$(getconf CLK_TCK)"
BENCH_TAG=bench

stop_all() {
    set +e
    [[ -n "$PROXY_PID" ]] && stop_process "$PROXY_PID"
    # PgBouncer daemonizes: it is no child of ours, so stop_process cannot reap it (and need not).
    [[ -n "$PGB_PID" ]] && stop_process "$PGB_PID"
    stop_servers
    remove_tmp
}
trap_exit stop_all

# ---------------------------------------------------------------- parameters
require_counts DURATION ROUNDS SCALE WARMUP
require_positive DURATION ROUNDS SCALE
require_positive_list CLIENTS
require_known MODES mode "simple extended prepared"
require_known TARGETS target "direct proxy pgbouncer"
[[ -n "${CLIENTS// /}" && -n "${MODES// /}" && -n "${TARGETS// /}" ]] ||
    die "CLIENTS, MODES and TARGETS must not be empty"

require_pg_user
find_pg_tools

# Targets actually run; pgbouncer drops out (reported as skipped) when it is not installed.
RUN_TARGETS=""
SKIPPED=""
for t in $TARGETS; do
    if [[ "$t" == pgbouncer ]] && ! PGBOUNCER="$(command -v pgbouncer 2>/dev/null || ls /usr/sbin/pgbouncer 2>/dev/null)"; then
        log "pgbouncer is not installed: skipping the pgbouncer target (apt-get install -y pgbouncer)"
        SKIPPED="$SKIPPED pgbouncer"
        continue
    fi
    RUN_TARGETS="$RUN_TARGETS $t"
done
RUN_TARGETS="${RUN_TARGETS# }"

# ---------------------------------------------------------------- build
if has_word proxy "$RUN_TARGETS"; then
    build_proxy "run with TARGETS='direct pgbouncer'"
fi

# ---------------------------------------------------------------- PostgreSQL
make_tmp bench
mkdir -p "$TMP/pgbench"
read -r PG_PORT PROXY_PORT ADMIN_PORT PGB_PORT <<<"$(free_ports 4)"
PGCONN=(-h 127.0.0.1 -U postgres)
SERVER_CONF="max_connections = 200
fsync = off"

log "starting PostgreSQL ($("$PG_BIN/postgres" --version)) on 127.0.0.1:$PG_PORT in $TMP"
# No name: the one server's files are $TMP/pgdata, $TMP/initdb.log and $TMP/postgres.log.
start_postgres "" "$PG_PORT" "$SERVER_CONF"
log "pgbench -i -s $SCALE bench"
"$PGBENCH" "${PGCONN[@]}" -p "$PG_PORT" -i -q -s "$SCALE" bench >"$TMP/pgbench-init.log" 2>&1 ||
    {
        cat "$TMP/pgbench-init.log" >&2
        die "pgbench -i failed"
    }

# ---------------------------------------------------------------- shardproxy
start_proxy() {
    mkdir -p "$TMP/state"
    {
        proxy_config "$PROXY_PORT" "$ADMIN_PORT" "$TMP/state" 8
        cat <<EOF

[[shards]]
name = "s0"
url = "postgres://postgres@127.0.0.1:$PG_PORT/bench"
EOF
    } >"$TMP/shardproxy.toml"
    log "starting shardproxy on 127.0.0.1:$PROXY_PORT"
    run_proxy "$TMP/shardproxy.toml" "$TMP/proxy.log"
    PROXY_PID="$LAST_PID"
    wait_listening "$PROXY_PORT" "$PROXY_PID" && return 0
    tail -n 20 "$TMP/proxy.log" >&2
    if kill -0 "$PROXY_PID" 2>/dev/null; then
        die "shardproxy ($PROXY_BIN run -c ...) did not start listening on 127.0.0.1:$PROXY_PORT within 10 s (log above); run with TARGETS='direct pgbouncer' to benchmark without it"
    fi
    die "shardproxy ($PROXY_BIN run -c ...) exited before listening on 127.0.0.1:$PROXY_PORT (log above); run with TARGETS='direct pgbouncer' to benchmark without it"
}

# ---------------------------------------------------------------- PgBouncer
start_pgbouncer() {
    echo '"postgres" ""' >"$TMP/userlist.txt"
    # unix_socket_dir is left empty (no socket): PgBouncer's ini keeps quotes literally, so ''
    # would make it try to bind a directory named ''.
    cat >"$TMP/pgbouncer.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $TMP/userlist.txt
pool_mode = transaction
default_pool_size = 8
max_client_conn = 200
logfile = $TMP/pgbouncer.log
pidfile = $TMP/pgbouncer.pid
admin_users = postgres
log_connections = 0
log_disconnections = 0
EOF
    [[ "$(id -u)" -eq 0 ]] && chown postgres: "$TMP/userlist.txt" "$TMP/pgbouncer.ini"
    log "starting $("$PGBOUNCER" --version | head -n 1) on 127.0.0.1:$PGB_PORT"
    as_pg "$PGBOUNCER" -d "$TMP/pgbouncer.ini" >"$TMP/pgbouncer.out" 2>&1 ||
        {
            cat "$TMP/pgbouncer.out" "$TMP/pgbouncer.log" >&2 2>/dev/null
            die "pgbouncer did not start"
        }
    local i
    for i in $(seq 100); do
        [[ -z "$PGB_PID" && -s "$TMP/pgbouncer.pid" ]] && PGB_PID="$(<"$TMP/pgbouncer.pid")"
        [[ -n "$PGB_PID" ]] && port_open "$PGB_PORT" && return 0
        sleep 0.1
    done
    tail -n 20 "$TMP/pgbouncer.log" >&2
    die "pgbouncer did not start listening on 127.0.0.1:$PGB_PORT within 10 s"
}

has_word proxy "$RUN_TARGETS" && start_proxy
has_word pgbouncer "$RUN_TARGETS" && start_pgbouncer

target_port() {
    case "$1" in
    direct) echo "$PG_PORT" ;;
    proxy) echo "$PROXY_PORT" ;;
    pgbouncer) echo "$PGB_PORT" ;;
    esac
}

target_pid() {
    case "$1" in
    proxy) echo "$PROXY_PID" ;;
    pgbouncer) echo "$PGB_PID" ;;
    *) echo "" ;;
    esac
}

# ---------------------------------------------------------------- runs
RUNS_CSV="$OUT_DIR/runs.csv"
echo "round,mode,clients,target,status,tps,latency_ms,transactions,cpu_seconds,cpu_us_per_tx" >"$RUNS_CSV"

# One pgbench run; prints "status tps latency_ms transactions cpu_seconds" on stdout.
run_pgbench() {
    local target="$1" mode="$2" clients="$3" duration="$4" logfile="$5"
    local port pid jobs before="" after="" rc=0
    port="$(target_port "$target")"
    pid="$(target_pid "$target")"
    jobs=$((clients < 2 ? clients : 2))
    [[ -n "$pid" ]] && before="$(cpu_ticks "$pid" 2>/dev/null || true)"
    # The timeout turns a hung target into a failed run instead of a stuck benchmark.
    timeout --kill-after=5 $((duration + 60)) \
        "$PGBENCH" "${PGCONN[@]}" -p "$port" -n -S -M "$mode" -c "$clients" -j "$jobs" \
        -T "$duration" bench >"$logfile" 2>&1 || rc=$?
    [[ -n "$pid" ]] && after="$(cpu_ticks "$pid" 2>/dev/null || true)"

    local tps lat tx cpu=""
    tps="$(pgbench_value "$logfile" tps)"
    lat="$(pgbench_value "$logfile" latency)"
    tx="$(pgbench_value "$logfile" transactions)"
    if [[ -n "$before" && -n "$after" ]]; then cpu="$(cpu_seconds "$before" "$after")"; fi
    if ((rc != 0)) || [[ -z "$tps" || -z "$lat" || -z "${tx:-}" || "${tx:-0}" -eq 0 ]]; then
        echo "failed - - - -"
    else
        echo "ok $tps $lat $tx ${cpu:--}"
    fi
}

# A pooler that crashed would turn every later run into a "failure"; stop with its log instead.
ensure_alive() {
    local pid
    pid="$(target_pid "$1")"
    [[ -z "$pid" ]] && return 0
    kill -0 "$pid" 2>/dev/null && return 0
    tail -n 20 "$TMP/$1.log" >&2 2>/dev/null || true
    die "$1 (pid $pid) is no longer running (its log: $TMP/$1.log, kept when KEEP_TMP=1)"
}

if ((WARMUP > 0)); then
    max_clients=1
    for c in $CLIENTS; do ((c > max_clients)) && max_clients=$c; done
    for t in $RUN_TARGETS; do
        ensure_alive "$t"
        log "warm-up: $t (${WARMUP}s, $max_clients clients)"
        read -r st _ <<<"$(run_pgbench "$t" simple "$max_clients" "$WARMUP" "$TMP/pgbench/warmup-$t.log")"
        if [[ "$st" != ok ]]; then
            tail -n 5 "$TMP/pgbench/warmup-$t.log" >&2
            log "warm-up against $t failed (see above); continuing"
        fi
    done
fi

total=0
for _ in $(seq "$ROUNDS"); do for _ in $MODES; do for _ in $CLIENTS; do for _ in $RUN_TARGETS; do
    total=$((total + 1))
done; done; done; done
log "$total runs of ${DURATION}s each (about $((total * DURATION / 60 + 1)) min)"

n=0
for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        for clients in $CLIENTS; do
            for target in $(rotate_words "$round" "$RUN_TARGETS"); do
                n=$((n + 1))
                ensure_alive "$target"
                logfile="$TMP/pgbench/r$round-$mode-c$clients-$target.log"
                read -r st tps lat tx cpu <<<"$(run_pgbench "$target" "$mode" "$clients" "$DURATION" "$logfile")"
                cpu_us="-"
                if [[ "$st" == ok && "$cpu" != "-" ]]; then
                    cpu_us="$(us_per_tx "$cpu" "$tx")"
                fi
                if [[ "$st" == ok ]]; then
                    msg="tps=${tps%.*} latency=${lat}ms"
                    [[ "$cpu_us" != "-" ]] && msg="$msg cpu=${cpu_us}us/tx"
                    log "[$n/$total] round $round $mode c=$clients $target: $msg"
                else
                    log "[$n/$total] round $round $mode c=$clients $target: FAILED; pgbench said:"
                    show_pgbench_error "$logfile"
                fi
                row="$round,$mode,$clients,$target,$st,$tps,$lat,$tx,$cpu,$cpu_us"
                # "-" marks a missing value; the CSV leaves it empty.
                echo "${row//-/}" >>"$RUNS_CSV"
            done
        done
    done
done

# ---------------------------------------------------------------- report
SUMMARY_CSV="$OUT_DIR/summary.csv"
REPORT="$OUT_DIR/report.txt"
{
    echo "shardproxy foundation benchmark: pgbench -S, ${DURATION}s per run, $ROUNDS round(s), scale $SCALE"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  cpus: $(nproc)  $("$PG_BIN/postgres" --version)"
    [[ -n "${PGBOUNCER:-}" ]] && echo "pgbouncer: $("$PGBOUNCER" --version | head -n 1)"
    [[ -n "$SKIPPED" ]] && echo "skipped (not installed):$SKIPPED"
    echo
    awk -F, -v modes="$MODES" -v clients="$CLIENTS" \
        -v run_targets="$RUN_TARGETS" -v summary="$SUMMARY_CSV" -f "$BENCH_DIR/report.awk" "$RUNS_CSV"
} | tee "$REPORT"
log "results: $REPORT, $SUMMARY_CSV (per run: $RUNS_CSV)"
