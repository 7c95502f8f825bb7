#!/usr/bin/env bash
# Routed single-row lookups: pgbench -S against pgbench_accounts hash-sharded on aid over two
# PostgreSQL servers through shardproxy, compared with the same workload through shardproxy in
# front of one unsharded PostgreSQL, and with that PostgreSQL directly. Reports TPS and the proxy
# process's CPU per query; the issue's bar is sharded/unsharded proxy CPU <= 1.20x.
# See bench/README.md ("Routed lookups") for what each number means.
set -euo pipefail

DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
SCALE="${SCALE:-5}"
CLIENTS="${CLIENTS:-8}"
MODES="${MODES:-simple prepared}"
WARMUP="${WARMUP:-2}"
KEEP_TMP="${KEEP_TMP:-0}"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
init_paths routed-
TARGETS="direct unsharded sharded"

TMP=""
SERVERS=() # data directories of the PostgreSQL servers started
PROXY_PIDS=()
UNSHARDED_PID=""
SHARDED_PID=""
CLK_TCK="$(getconf CLK_TCK)"
BENCH_TAG=routed

stop_all() {
    set +e
    local pid
    for pid in "${PROXY_PIDS[@]}"; do stop_process "$pid"; done
    stop_servers
    remove_tmp
}
trap_exit stop_all

# ---------------------------------------------------------------- parameters
require_counts DURATION ROUNDS SCALE WARMUP
require_positive DURATION ROUNDS SCALE
require_positive_list CLIENTS
require_known MODES mode "simple extended prepared"
[[ -n "${CLIENTS// /}" && -n "${MODES// /}" ]] || die "CLIENTS and MODES must not be empty"
command -v python3 >/dev/null 2>&1 || die "python3 is needed (free ports, row generator)"
require_pg_user
find_pg_tools

# ---------------------------------------------------------------- build
build_proxy "set SHARDPROXY_BIN"

# ---------------------------------------------------------------- PostgreSQL A, B, C
make_tmp routed
mkdir -p "$TMP/pgbench"
read -r PORT_A PORT_B PORT_C PORT_UNSHARDED PORT_SHARDED ADMIN_U ADMIN_S <<<"$(free_ports 7)"
PGCONN=(-h 127.0.0.1 -U postgres)
SERVER_CONF="max_connections = 200
max_prepared_transactions = 100
fsync = off"

log "starting PostgreSQL ($("$PG_BIN/postgres" --version)): A on $PORT_A (unsharded), B on $PORT_B and C on $PORT_C (shards)"
start_postgres A "$PORT_A" "$SERVER_CONF"
start_postgres B "$PORT_B" "$SERVER_CONF"
start_postgres C "$PORT_C" "$SERVER_CONF"

log "A: pgbench -i -s $SCALE"
"$PGBENCH" "${PGCONN[@]}" -p "$PORT_A" -i -q -s "$SCALE" bench >"$TMP/init-A.log" 2>&1 ||
    {
        cat "$TMP/init-A.log" >&2
        die "pgbench -i on A failed"
    }
for p in "$PORT_B" "$PORT_C"; do
    # Empty tables; the reference tables get their (small) rows directly, on both shards.
    "$PGBENCH" "${PGCONN[@]}" -p "$p" -i -q -I dt -s "$SCALE" bench >"$TMP/init-$p.log" 2>&1 ||
        {
            cat "$TMP/init-$p.log" >&2
            die "pgbench -i -I dt on port $p failed"
        }
    psql_bench "$p" >/dev/null <<EOF
INSERT INTO pgbench_branches (bid, bbalance) SELECT b, 0 FROM generate_series(1, $SCALE) b;
INSERT INTO pgbench_tellers (tid, bid, tbalance) SELECT t, (t - 1) / 10 + 1, 0 FROM generate_series(1, 10 * $SCALE) t;
EOF
done

# ---------------------------------------------------------------- shardproxy x2
# start_proxy NAME PORT: runs the proxy with $TMP/NAME.toml; sets LAST_PID.
start_proxy() {
    local name="$1" port="$2"
    mkdir -p "$TMP/state-$name"
    run_proxy "$TMP/$name.toml" "$TMP/proxy-$name.log"
    PROXY_PIDS+=("$LAST_PID")
    wait_listening "$port" "$LAST_PID" && return 0
    tail -n 20 "$TMP/proxy-$name.log" >&2
    die "shardproxy ($name) did not start listening on 127.0.0.1:$port (log above)"
}

{
    proxy_config "$PORT_UNSHARDED" "$ADMIN_U" "$TMP/state-unsharded" 8
    cat <<EOF

[[shards]]
name = "a"
url = "postgres://postgres@127.0.0.1:$PORT_A/bench"
EOF
} >"$TMP/unsharded.toml"

{
    proxy_config "$PORT_SHARDED" "$ADMIN_S" "$TMP/state-sharded" 8
    cat <<EOF

[[shards]]
name = "b"
url = "postgres://postgres@127.0.0.1:$PORT_B/bench"

[[shards]]
name = "c"
url = "postgres://postgres@127.0.0.1:$PORT_C/bench"

[maps.accounts]
strategy = "hash"
key_type = "bigint"
buckets = 1024

[tables]
pgbench_accounts = { map = "accounts", key = "aid" }
pgbench_branches = { reference = true }
pgbench_tellers = { reference = true }
EOF
} >"$TMP/sharded.toml"

log "starting shardproxy: unsharded (A) on $PORT_UNSHARDED, sharded (B+C) on $PORT_SHARDED"
start_proxy unsharded "$PORT_UNSHARDED"
UNSHARDED_PID="$LAST_PID"
start_proxy sharded "$PORT_SHARDED"
SHARDED_PID="$LAST_PID"

ROWS=$((SCALE * 100000))
log "loading $ROWS pgbench_accounts rows through the sharded proxy (COPY, split per shard)"
python3 - "$ROWS" <<'EOF' |
import sys
out = sys.stdout
n = int(sys.argv[1])
for aid in range(1, n + 1):
    out.write(f"{aid}\t{(aid - 1) // 100000 + 1}\t0\t\n")
EOF
    psql_bench "$PORT_SHARDED" -c '\copy pgbench_accounts (aid, bid, abalance, filler) from pstdin' >"$TMP/load.log" 2>&1 ||
    {
        cat "$TMP/load.log" >&2
        die "COPY through the sharded proxy failed"
    }
count_b="$("$PSQL" "${PGCONN[@]}" -p "$PORT_B" -d bench -qAtc 'SELECT count(*) FROM pgbench_accounts')"
count_c="$("$PSQL" "${PGCONN[@]}" -p "$PORT_C" -d bench -qAtc 'SELECT count(*) FROM pgbench_accounts')"
((count_b + count_c == ROWS)) || die "after loading, B has $count_b and C $count_c rows, expected $ROWS in total"
log "rows per shard: B $count_b, C $count_c"
for p in "$PORT_B" "$PORT_C"; do
    "$PGBENCH" "${PGCONN[@]}" -p "$p" -i -q -I pv bench >"$TMP/keys-$p.log" 2>&1 ||
        {
            cat "$TMP/keys-$p.log" >&2
            die "creating primary keys on port $p failed"
        }
done

# ---------------------------------------------------------------- runs
target_port() {
    case "$1" in
    direct) echo "$PORT_A" ;;
    unsharded) echo "$PORT_UNSHARDED" ;;
    sharded) echo "$PORT_SHARDED" ;;
    esac
}
target_pid() {
    case "$1" in
    unsharded) echo "$UNSHARDED_PID" ;;
    sharded) echo "$SHARDED_PID" ;;
    *) echo "" ;;
    esac
}

# One pgbench run; prints "status tps transactions cpu_seconds".
run_pgbench() {
    local target="$1" mode="$2" clients="$3" duration="$4" logfile="$5"
    local port pid jobs before="" after="" rc=0
    port="$(target_port "$target")"
    pid="$(target_pid "$target")"
    jobs=$((clients < 2 ? clients : 2))
    [[ -n "$pid" ]] && before="$(cpu_ticks "$pid" 2>/dev/null || true)"
    timeout --kill-after=5 $((duration + 60)) \
        "$PGBENCH" "${PGCONN[@]}" -p "$port" -n -S -M "$mode" -c "$clients" -j "$jobs" \
        -T "$duration" bench >"$logfile" 2>&1 || rc=$?
    [[ -n "$pid" ]] && after="$(cpu_ticks "$pid" 2>/dev/null || true)"
    local tps tx cpu="-"
    tps="$(pgbench_value "$logfile" tps)"
    tx="$(pgbench_value "$logfile" transactions)"
    if [[ -n "$before" && -n "$after" ]]; then cpu="$(cpu_seconds "$before" "$after")"; fi
    if ((rc != 0)) || [[ -z "$tps" || -z "${tx:-}" || "${tx:-0}" -eq 0 ]]; then
        echo "failed - - -"
    else
        echo "ok $tps $tx $cpu"
    fi
}

ensure_alive() {
    local pid
    pid="$(target_pid "$1")"
    [[ -z "$pid" ]] && return 0
    kill -0 "$pid" 2>/dev/null && return 0
    tail -n 20 "$TMP/proxy-$1.log" >&2 2>/dev/null || true
    die "the $1 proxy (pid $pid) is no longer running"
}


if ((WARMUP > 0)); then
    for t in $TARGETS; do
        for m in $MODES; do
            log "warm-up: $t $m (${WARMUP}s)"
            read -r st _ <<<"$(run_pgbench "$t" "$m" 8 "$WARMUP" "$TMP/pgbench/warmup-$t-$m.log")"
            [[ "$st" == ok ]] || {
                tail -n 5 "$TMP/pgbench/warmup-$t-$m.log" >&2
                die "warm-up against $t ($m) failed (above)"
            }
        done
    done
fi

RUNS_CSV="$OUT_DIR/runs.csv"
echo "round,mode,clients,target,status,tps,transactions,cpu_seconds,cpu_us_per_tx" >"$RUNS_CSV"
for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        for clients in $CLIENTS; do
            for target in $(rotate_words "$round" "$TARGETS"); do
                ensure_alive "$target"
                logfile="$TMP/pgbench/r$round-$mode-c$clients-$target.log"
                read -r st tps tx cpu <<<"$(run_pgbench "$target" "$mode" "$clients" "$DURATION" "$logfile")"
                cpu_us="-"
                if [[ "$st" == ok && "$cpu" != "-" ]]; then
                    cpu_us="$(us_per_tx "$cpu" "$tx")"
                fi
                if [[ "$st" == ok ]]; then
                    log "round $round $mode c=$clients $target: tps=${tps%.*} cpu=${cpu_us}us/tx"
                else
                    log "round $round $mode c=$clients $target: FAILED; pgbench said:"
                    show_pgbench_error "$logfile"
                fi
                echo "$round,$mode,$clients,$target,$st,${tps//-/},${tx//-/},${cpu//-/},${cpu_us//-/}" >>"$RUNS_CSV"
            done
        done
    done
done

# ---------------------------------------------------------------- report
REPORT="$OUT_DIR/report.txt"
{
    echo "shardproxy routed lookups: pgbench -S, ${DURATION}s per run, $ROUNDS round(s), scale $SCALE"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  cpus: $(nproc)  $("$PG_BIN/postgres" --version)"
    echo "direct = PostgreSQL A; unsharded = shardproxy over A alone; sharded = shardproxy over B+C (hash on aid)"
    echo "medians over the rounds; cpu = proxy process user+system CPU per transaction"
    echo
    awk -F, '
    NR == 1 { next }
    {
        k = $2 SUBSEP $3 SUBSEP $4
        if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
        if ($5 != "ok") { failed[k] = 1; next }
        n[k]++; tps[k, n[k]] = $6; if ($9 != "") { ncpu[k]++; cpu[k, ncpu[k]] = $9 }
    }
    function median(arr, k, cnt,    a, i, j, x) {
        for (i = 1; i <= cnt; i++) a[i] = arr[k, i] + 0
        for (i = 2; i <= cnt; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
        return cnt % 2 ? a[(cnt + 1) / 2] : (a[cnt / 2] + a[cnt / 2 + 1]) / 2
    }
    END {
        printf "%-9s %-7s %-10s %10s %14s\n", "mode", "clients", "target", "tps", "cpu us/tx"
        for (i = 1; i <= nk; i++) {
            k = keys[i]; split(k, p, SUBSEP)
            t = (k in failed || !n[k]) ? "n/a (failed)" : sprintf("%.0f", median(tps, k, n[k]))
            c = (k in failed || !ncpu[k]) ? "-" : sprintf("%.1f", median(cpu, k, ncpu[k]))
            printf "%-9s %-7s %-10s %10s %14s\n", p[1], p[2], p[3], t, c
            if (!(k in failed) && ncpu[k]) med[k] = median(cpu, k, ncpu[k])
            if (!(k in failed) && n[k]) mtps[k] = median(tps, k, n[k])
        }
        print ""
        printf "%-9s %-7s %22s %22s\n", "mode", "clients", "cpu sharded/unsharded", "tps sharded/unsharded"
        for (i = 1; i <= nk; i++) {
            k = keys[i]; split(k, p, SUBSEP)
            if (p[3] != "sharded") continue
            u = p[1] SUBSEP p[2] SUBSEP "unsharded"
            r = (k in med && u in med && med[u] > 0) ? sprintf("%.2fx", med[k] / med[u]) : "n/a"
            q = (k in mtps && u in mtps && mtps[u] > 0) ? sprintf("%.2fx", mtps[k] / mtps[u]) : "n/a"
            printf "%-9s %-7s %22s %22s\n", p[1], p[2], r, q
        }
        print ""
        print "target: cpu sharded/unsharded <= 1.20x (the parse cache keeps routing cheap)"
    }' "$RUNS_CSV"
} | tee "$REPORT"
log "results: $REPORT (per run: $RUNS_CSV)"
