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

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
OUT_DIR="${OUT_DIR:-$BENCH_DIR/results/$(date +%Y%m%d-%H%M%S)}"
# SHARDPROXY_BIN: benchmark an already built binary instead of building target/release/shardproxy.
PROXY_BIN="${SHARDPROXY_BIN:-$REPO_DIR/target/release/shardproxy}"

TMP=""
PG_DATA=""
PROXY_PID=""
PGB_PID=""
CLK_TCK="$(getconf CLK_TCK)"
BENCH_TAG=bench
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stop_all() {
    set +e
    if [[ -n "$PROXY_PID" ]] && kill -0 "$PROXY_PID" 2>/dev/null; then
        kill -TERM "$PROXY_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PROXY_PID" 2>/dev/null
        wait "$PROXY_PID" 2>/dev/null
    fi
    if [[ -n "$PGB_PID" ]] && kill -0 "$PGB_PID" 2>/dev/null; then
        kill -TERM "$PGB_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$PGB_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PGB_PID" 2>/dev/null
    fi
    if [[ -n "$PG_DATA" && -f "$PG_DATA/postmaster.pid" ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1
    fi
    if [[ -n "$TMP" && -d "$TMP" ]]; then
        if [[ "$KEEP_TMP" == 1 ]]; then log "kept temp dir $TMP"; else rm -rf "$TMP"; fi
    fi
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- parameters
for v in DURATION ROUNDS SCALE WARMUP; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"
done
is_positive_int "$DURATION" || die "DURATION must be at least 1"
is_positive_int "$ROUNDS" || die "ROUNDS must be at least 1"
is_positive_int "$SCALE" || die "SCALE must be at least 1"
for c in $CLIENTS; do is_positive_int "$c" || die "CLIENTS must be positive integers, got '$c'"; done
for m in $MODES; do
    has_word "$m" "simple extended prepared" || die "unknown mode '$m' in MODES (simple extended prepared)"
done
for t in $TARGETS; do
    has_word "$t" "direct proxy pgbouncer" || die "unknown target '$t' in TARGETS (direct proxy pgbouncer)"
done
[[ -n "${CLIENTS// /}" && -n "${MODES// /}" && -n "${TARGETS// /}" ]] ||
    die "CLIENTS, MODES and TARGETS must not be empty"

if [[ "$(id -u)" -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    die "running as root needs a 'postgres' OS user to run the servers (apt-get install -y postgresql creates it)"
fi

PG_BIN="$(find_pg_bin)"
for b in initdb pg_ctl postgres; do
    [[ -x "$PG_BIN/$b" ]] || die "$PG_BIN/$b is missing; install the PostgreSQL server package"
done
PGBENCH="$PG_BIN/pgbench"
[[ -x "$PGBENCH" ]] || PGBENCH="$(command -v pgbench)" || die "pgbench not found; apt-get install -y postgresql-contrib"
PSQL="$PG_BIN/psql"
[[ -x "$PSQL" ]] || PSQL="$(command -v psql)" || die "psql not found; install the PostgreSQL client package"

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
if has_word proxy "$RUN_TARGETS" && [[ -z "${SHARDPROXY_BIN:-}" ]]; then
    log "building shardproxy (cargo build --release -p shardproxy)"
    (cd "$REPO_DIR" && cargo build --release -p shardproxy) ||
        die "cargo build --release -p shardproxy failed; fix the build or run with TARGETS='direct pgbouncer'"
fi
if has_word proxy "$RUN_TARGETS"; then
    [[ -x "$PROXY_BIN" ]] || die "$PROXY_BIN does not exist or is not executable"
fi

# ---------------------------------------------------------------- PostgreSQL
TMP="$(mktemp -d /tmp/shardproxy-bench.XXXXXX)"
chmod 755 "$TMP"
[[ "$(id -u)" -eq 0 ]] && chown postgres: "$TMP"
mkdir -p "$TMP/pgbench" "$OUT_DIR"
read -r PG_PORT PROXY_PORT ADMIN_PORT PGB_PORT <<<"$(free_ports 4)"
PG_DATA="$TMP/pgdata"

log "starting PostgreSQL ($("$PG_BIN/postgres" --version)) on 127.0.0.1:$PG_PORT in $TMP"
as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --no-sync >"$TMP/initdb.log" 2>&1 ||
    {
        cat "$TMP/initdb.log" >&2
        die "initdb failed"
    }
cat >>"$PG_DATA/postgresql.conf" <<EOF
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$TMP'
max_connections = 200
fsync = off
EOF
as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$TMP/postgres.log" -w -t 60 start >/dev/null ||
    {
        tail -n 20 "$TMP/postgres.log" >&2
        die "PostgreSQL did not start"
    }

PGCONN=(-h 127.0.0.1 -U postgres)
"$PSQL" "${PGCONN[@]}" -p "$PG_PORT" -d postgres -qAtc 'CREATE DATABASE bench' >/dev/null
log "pgbench -i -s $SCALE bench"
"$PGBENCH" "${PGCONN[@]}" -p "$PG_PORT" -i -q -s "$SCALE" bench >"$TMP/pgbench-init.log" 2>&1 ||
    {
        cat "$TMP/pgbench-init.log" >&2
        die "pgbench -i failed"
    }

# ---------------------------------------------------------------- shardproxy
start_proxy() {
    mkdir -p "$TMP/state"
    cat >"$TMP/shardproxy.toml" <<EOF
[proxy]
listen = "127.0.0.1:$PROXY_PORT"
admin_listen = "127.0.0.1:$ADMIN_PORT"
state_dir = "$TMP/state"

[auth]
method = "trust"

[pool]
size = 8
mode = "transaction"

[[shards]]
name = "s0"
url = "postgres://postgres@127.0.0.1:$PG_PORT/bench"
EOF
    log "starting shardproxy on 127.0.0.1:$PROXY_PORT"
    RUST_LOG="${RUST_LOG:-warn}" "$PROXY_BIN" run -c "$TMP/shardproxy.toml" >"$TMP/proxy.log" 2>&1 &
    PROXY_PID=$!
    local i
    for i in $(seq 100); do
        port_open "$PROXY_PORT" && return 0
        kill -0 "$PROXY_PID" 2>/dev/null || break
        sleep 0.1
    done
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
    tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$logfile" | head -n 1)"
    lat="$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$logfile" | head -n 1)"
    tx="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$logfile" | head -n 1)"
    if [[ -n "$before" && -n "$after" ]]; then
        cpu="$(awk -v a="$after" -v b="$before" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (a - b) / hz }')"
    fi
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

# Rotate the target order each round so no target always runs first.
targets_for_round() {
    local r="$1" arr
    read -r -a arr <<<"$RUN_TARGETS"
    local n=${#arr[@]} i out=()
    for ((i = 0; i < n; i++)); do out+=("${arr[$(((i + r) % n))]}"); done
    echo "${out[*]}"
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
            for target in $(targets_for_round "$round"); do
                n=$((n + 1))
                ensure_alive "$target"
                logfile="$TMP/pgbench/r$round-$mode-c$clients-$target.log"
                read -r st tps lat tx cpu <<<"$(run_pgbench "$target" "$mode" "$clients" "$DURATION" "$logfile")"
                cpu_us="-"
                if [[ "$st" == ok && "$cpu" != "-" ]]; then
                    cpu_us="$(awk -v c="$cpu" -v t="$tx" 'BEGIN { printf "%.2f", c * 1e6 / t }')"
                fi
                if [[ "$st" == ok ]]; then
                    msg="tps=${tps%.*} latency=${lat}ms"
                    [[ "$cpu_us" != "-" ]] && msg="$msg cpu=${cpu_us}us/tx"
                    log "[$n/$total] round $round $mode c=$clients $target: $msg"
                else
                    log "[$n/$total] round $round $mode c=$clients $target: FAILED; pgbench said:"
                    grep -Ei 'error|abort|fatal' "$logfile" | head -n 3 | sed 's/^/    /' >&2 || tail -n 3 "$logfile" >&2
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
