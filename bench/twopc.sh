#!/usr/bin/env bash
# Two-phase commit cost: pgbench custom scripts through shardproxy over two PostgreSQL servers,
# a transaction of two UPDATEs on ONE shard (one-phase commit) against the same on TWO shards
# (PREPARE on both, fsync'd decision, COMMIT PREPARED on both), with 1 and 8 clients. Two
# proxies run side by side, one with its state_dir (the decision log) on disk and one on tmpfs,
# so the fsync's cost shows; /metrics gives commits per fsync (grouping) and the fsync time.
# See bench/README.md ("Two-phase commit") for what each number means.
set -euo pipefail

DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
ROWS="${ROWS:-100000}"
CLIENTS="${CLIENTS:-1 8}"
MODE="${MODE:-simple}"
STATES="${STATES:-disk tmpfs}"
WARMUP="${WARMUP:-2}"
PG_FSYNC="${PG_FSYNC:-off}"
KEEP_TMP="${KEEP_TMP:-0}"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
init_paths twopc-
# Where the decision logs live: a directory on a real disk, and one on tmpfs.
STATE_DISK="${STATE_DISK:-$REPO_DIR/target}"
STATE_TMPFS="${STATE_TMPFS:-/dev/shm}"
WORKLOADS="one two"

TMP=""
SERVERS=() # data directories of the PostgreSQL servers started
PROXY_PIDS=()
STATE_DIRS=()
declare -A PROXY_PORT PROXY_ADMIN PROXY_PID
BENCH_TAG=twopc

stop_all() {
    set +e
    local pid d
    for pid in "${PROXY_PIDS[@]}"; do stop_process "$pid"; done
    stop_servers
    for d in "${STATE_DIRS[@]}"; do rm -rf "$d"; done
    remove_tmp
}
trap_exit stop_all

# ---------------------------------------------------------------- parameters
require_counts DURATION ROUNDS ROWS WARMUP
require_positive DURATION ROUNDS
((ROWS >= 1000)) || die "ROWS must be at least 1000"
require_positive_list CLIENTS
has_word "$MODE" "simple extended prepared" || die "unknown MODE '$MODE' (simple extended prepared)"
require_known STATES state "disk tmpfs"
[[ -n "${CLIENTS// /}" && -n "${STATES// /}" ]] || die "CLIENTS and STATES must not be empty"
has_word "$PG_FSYNC" "on off" || die "PG_FSYNC must be on or off"
if has_word tmpfs "$STATES"; then
    [[ "$(stat -f -c %T "$STATE_TMPFS" 2>/dev/null)" == tmpfs ]] ||
        die "$STATE_TMPFS is not a tmpfs; set STATE_TMPFS to one or STATES=disk"
fi
if has_word disk "$STATES"; then
    mkdir -p "$STATE_DISK"
    [[ "$(stat -f -c %T "$STATE_DISK" 2>/dev/null)" != tmpfs ]] ||
        die "$STATE_DISK is on tmpfs; set STATE_DISK to a directory on a disk"
fi
require_pg_user
find_pg_tools

# ---------------------------------------------------------------- build
build_proxy "set SHARDPROXY_BIN"

# ---------------------------------------------------------------- PostgreSQL B, C
make_tmp twopc
mkdir -p "$TMP/pgbench"
read -r PORT_B PORT_C PORT_DISK ADMIN_DISK PORT_TMPFS ADMIN_TMPFS <<<"$(free_ports 6)"
PROXY_PORT[disk]="$PORT_DISK"
PROXY_ADMIN[disk]="$ADMIN_DISK"
PROXY_PORT[tmpfs]="$PORT_TMPFS"
PROXY_ADMIN[tmpfs]="$ADMIN_TMPFS"
PGCONN=(-h 127.0.0.1 -U postgres)
SERVER_CONF="max_connections = 200
max_prepared_transactions = 100
fsync = $PG_FSYNC"
HALF=$((ROWS / 2))

# start_server NAME PORT FIRST LAST: initdb + start, then bench_accounts rows FIRST..LAST.
start_server() {
    local name="$1" port="$2" first="$3" last="$4"
    start_postgres "$name" "$port" "$SERVER_CONF"
    # The range map puts 1..HALF on B and the rest on C, so each server gets its rows directly.
    psql_bench "$port" >/dev/null <<EOF
CREATE TABLE bench_accounts (aid bigint PRIMARY KEY, abalance int NOT NULL);
INSERT INTO bench_accounts SELECT a, 0 FROM generate_series($first, $last) a;
VACUUM ANALYZE bench_accounts;
EOF
}

log "starting PostgreSQL ($("$PG_BIN/postgres" --version), fsync=$PG_FSYNC): B on $PORT_B, C on $PORT_C"
start_server B "$PORT_B" 1 "$HALF"
start_server C "$PORT_C" $((HALF + 1)) $((2 * HALF))

# ---------------------------------------------------------------- pgbench scripts
# Rows are locked in key order, so concurrent transactions cannot deadlock (across shards no
# server could detect it). One shard: both keys on the same, randomly chosen, shard.
cat >"$TMP/one.sql" <<'EOF'
\set s random(0, 1)
\set a random(1, :half) + :s * :half
\set b random(1, :half) + :s * :half
\set lo least(:a, :b)
\set hi greatest(:a, :b)
BEGIN;
UPDATE bench_accounts SET abalance = abalance - 1 WHERE aid = :lo;
UPDATE bench_accounts SET abalance = abalance + 1 WHERE aid = :hi;
COMMIT;
EOF
cat >"$TMP/two.sql" <<'EOF'
\set a random(1, :half)
\set b random(:half + 1, 2 * :half)
BEGIN;
UPDATE bench_accounts SET abalance = abalance - 1 WHERE aid = :a;
UPDATE bench_accounts SET abalance = abalance + 1 WHERE aid = :b;
COMMIT;
EOF

# ---------------------------------------------------------------- shardproxy per state dir
# start_proxy STATE: writes its config and runs it; must listen within 10 s.
start_proxy() {
    local state="$1" dir pid
    case "$state" in
    disk) dir="$(mktemp -d "$STATE_DISK/shardproxy-twopc-state.XXXXXX")" ;;
    tmpfs) dir="$(mktemp -d "$STATE_TMPFS/shardproxy-twopc-state.XXXXXX")" ;;
    esac
    STATE_DIRS+=("$dir")
    {
        proxy_config "${PROXY_PORT[$state]}" "${PROXY_ADMIN[$state]}" "$dir" 12 "proxy_id = \"bench$state\""
        cat <<EOF

[[shards]]
name = "b"
url = "postgres://postgres@127.0.0.1:$PORT_B/bench"

[[shards]]
name = "c"
url = "postgres://postgres@127.0.0.1:$PORT_C/bench"

[maps.accounts]
strategy = "range"
key_type = "bigint"
ranges = [ { to = $((HALF + 1)), shard = "b" }, { from = $((HALF + 1)), shard = "c" } ]

[tables]
bench_accounts = { map = "accounts", key = "aid" }
EOF
    } >"$TMP/$state.toml"
    run_proxy "$TMP/$state.toml" "$TMP/proxy-$state.log"
    pid="$LAST_PID"
    PROXY_PIDS+=("$pid")
    PROXY_PID[$state]="$pid"
    wait_listening "${PROXY_PORT[$state]}" "$pid" && return 0
    tail -n 20 "$TMP/proxy-$state.log" >&2
    die "shardproxy ($state) did not start listening on 127.0.0.1:${PROXY_PORT[$state]} (log above)"
}

for s in $STATES; do
    log "starting shardproxy with the decision log on $s on port ${PROXY_PORT[$s]}"
    start_proxy "$s"
done

# "2pc_commits fsyncs fsync_seconds" from a proxy's /metrics (0 for what it does not export).
metrics_snapshot() {
    local port="$1"
    {
        exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
        printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
        cat <&3
        exec 3<&-
    } 2>/dev/null | tr -d '\r' | awk '
        /^shardproxy_2pc_commits_total[ {]/ { c += $NF }
        /^shardproxy_2pc_log_fsync_seconds_count[ {]/ { n += $NF }
        /^shardproxy_2pc_log_fsync_seconds_sum[ {]/ { s += $NF }
        END { printf "%d %d %.6f\n", c, n, s }'
}

# One pgbench run; prints "status tps latency_ms commits fsyncs fsync_seconds".
run_pgbench() {
    local state="$1" workload="$2" clients="$3" duration="$4" logfile="$5"
    local jobs rc=0 c0 n0 s0 c1 n1 s1
    jobs=$((clients < 2 ? clients : 2))
    read -r c0 n0 s0 <<<"$(metrics_snapshot "${PROXY_ADMIN[$state]}" || echo "0 0 0")"
    timeout --kill-after=5 $((duration + 60)) \
        "$PGBENCH" "${PGCONN[@]}" -p "${PROXY_PORT[$state]}" -n -M "$MODE" -c "$clients" -j "$jobs" \
        -T "$duration" -D "half=$HALF" -f "$TMP/$workload.sql" bench >"$logfile" 2>&1 || rc=$?
    read -r c1 n1 s1 <<<"$(metrics_snapshot "${PROXY_ADMIN[$state]}" || echo "0 0 0")"
    local tps lat tx
    tps="$(pgbench_value "$logfile" tps)"
    lat="$(pgbench_value "$logfile" latency)"
    tx="$(pgbench_value "$logfile" transactions)"
    if ((rc != 0)) || [[ -z "$tps" || -z "$lat" || "${tx:-0}" -eq 0 ]]; then
        echo "failed - - - - -"
    else
        echo "ok $tps $lat $((c1 - c0)) $((n1 - n0)) $(awk -v a="$s1" -v b="$s0" 'BEGIN { printf "%.6f", a - b }')"
    fi
}

ensure_alive() {
    local pid="${PROXY_PID[$1]}"
    kill -0 "$pid" 2>/dev/null && return 0
    tail -n 20 "$TMP/proxy-$1.log" >&2 2>/dev/null || true
    die "the $1 proxy (pid $pid) is no longer running"
}

# The order of the (state, workload) cells rotates from round to round.
cells_for_round() {
    local cells=() s w
    for s in $STATES; do for w in $WORKLOADS; do cells+=("$s:$w"); done; done
    rotate_words "$1" "${cells[*]}"
}

if ((WARMUP > 0)); then
    for s in $STATES; do
        for w in $WORKLOADS; do
            log "warm-up: $s $w (${WARMUP}s)"
            read -r st _ <<<"$(run_pgbench "$s" "$w" 8 "$WARMUP" "$TMP/pgbench/warmup-$s-$w.log")"
            [[ "$st" == ok ]] || {
                tail -n 5 "$TMP/pgbench/warmup-$s-$w.log" >&2
                die "warm-up of $w-shard transactions through the $s proxy failed (above)"
            }
        done
    done
fi

RUNS_CSV="$OUT_DIR/runs.csv"
echo "round,clients,state,workload,status,tps,latency_ms,twopc_commits,fsyncs,fsync_seconds" >"$RUNS_CSV"
for round in $(seq "$ROUNDS"); do
    for clients in $CLIENTS; do
        for cell in $(cells_for_round "$round"); do
            state="${cell%%:*}" workload="${cell##*:}"
            ensure_alive "$state"
            logfile="$TMP/pgbench/r$round-c$clients-$state-$workload.log"
            read -r st tps lat commits fsyncs fsecs <<<"$(run_pgbench "$state" "$workload" "$clients" "$DURATION" "$logfile")"
            if [[ "$st" == ok ]]; then
                log "round $round c=$clients $state $workload-shard: tps=${tps%.*} lat=${lat}ms 2pc=$commits fsyncs=$fsyncs"
            else
                log "round $round c=$clients $state $workload-shard: FAILED; pgbench said:"
                show_pgbench_error "$logfile"
            fi
            echo "$round,$clients,$state,$workload,$st,${tps//-/},${lat//-/},${commits//-/},${fsyncs//-/},${fsecs//-/}" >>"$RUNS_CSV"
        done
    done
done

# ---------------------------------------------------------------- report
REPORT="$OUT_DIR/report.txt"
{
    echo "shardproxy two-phase commit: pgbench -M $MODE, ${DURATION}s per run, $ROUNDS round(s), $ROWS rows over 2 shards"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  cpus: $(nproc)  $("$PG_BIN/postgres" --version)  shard fsync=$PG_FSYNC"
    echo "one = BEGIN; 2 UPDATEs on one shard; COMMIT   two = the same with one UPDATE on each shard (2PC)"
    echo "state = where the proxy's decision log lives; medians over the rounds"
    echo
    awk -F, '
    NR == 1 { next }
    {
        k = $2 SUBSEP $3 SUBSEP $4
        if (!(k in seen)) { seen[k] = 1 }
        if (!(($2 SUBSEP $3) in rowseen)) { rowseen[$2 SUBSEP $3] = 1; rows[++nr] = $2 SUBSEP $3 }
        if ($5 != "ok") { failed[k] = 1; next }
        n[k]++; tps[k, n[k]] = $6; lat[k, n[k]] = $7
        commits[k] += $8; fsyncs[k] += $9; fsecs[k] += $10
    }
    function median(arr, k, cnt,    a, i, j, x) {
        for (i = 1; i <= cnt; i++) a[i] = arr[k, i] + 0
        for (i = 2; i <= cnt; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
        return cnt % 2 ? a[(cnt + 1) / 2] : (a[cnt / 2] + a[cnt / 2 + 1]) / 2
    }
    function ok(k) { return (k in seen) && !(k in failed) && n[k] > 0 }
    END {
        printf "%-7s %-6s %9s %9s %8s %9s %9s %8s %12s %10s\n", "clients", "state", "one tps", "two tps", "tps 2/1", "one ms", "two ms", "lat 2/1", "commits/fs", "fsync us"
        for (i = 1; i <= nr; i++) {
            split(rows[i], p, SUBSEP); o = rows[i] SUBSEP "one"; t = rows[i] SUBSEP "two"
            ot = ok(o) ? median(tps, o, n[o]) : 0; tt = ok(t) ? median(tps, t, n[t]) : 0
            ol = ok(o) ? median(lat, o, n[o]) : 0; tl = ok(t) ? median(lat, t, n[t]) : 0
            if (ok(t)) two_tps[p[1], p[2]] = tt
            printf "%-7s %-6s %9s %9s %8s %9s %9s %8s %12s %10s\n", p[1], p[2],
                ok(o) ? sprintf("%.0f", ot) : "n/a", ok(t) ? sprintf("%.0f", tt) : "n/a",
                ((ot > 0 && tt > 0) ? sprintf("%.2fx", tt / ot) : "n/a"),
                ok(o) ? sprintf("%.2f", ol) : "n/a", ok(t) ? sprintf("%.2f", tl) : "n/a",
                ((ol > 0 && tl > 0) ? sprintf("%.2fx", tl / ol) : "n/a"),
                (fsyncs[t] > 0 ? sprintf("%.2f", commits[t] / fsyncs[t]) : "n/a"),
                (fsyncs[t] > 0 ? sprintf("%.1f", fsecs[t] * 1000000 / fsyncs[t]) : "n/a")
        }
        print ""
        for (i = 1; i <= nr; i++) {
            split(rows[i], p, SUBSEP)
            if (p[2] != "disk" || !((p[1] SUBSEP "tmpfs") in two_tps) || !((p[1] SUBSEP "disk") in two_tps)) continue
            printf "clients %s: two-shard tps disk/tmpfs = %.2fx (the decision log fsync cost)\n", p[1], two_tps[p[1], "disk"] / two_tps[p[1], "tmpfs"]
        }
        print ""
        print "commits/fs = 2PC commits per decision-log fsync (above 1: concurrent commits shared one fsync);"
        print "fsync us = mean decision-log fsync time in microseconds; both from /metrics, n/a when the proxy counted none"
    }' "$RUNS_CSV"
} | tee "$REPORT"
log "results: $REPORT (per run: $RUNS_CSV)"
