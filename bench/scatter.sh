#!/usr/bin/env bash
# Scatter-gather reads (issue 4, done-means 2 and 3), over SHARDS (default 4) local PostgreSQL
# servers behind shardproxy with table `big` hash-sharded on id:
#  (a) memory: `SELECT * FROM big ORDER BY id` and `SELECT * FROM big` (ROWS rows, ~100 bytes
#      each) through the proxy with psql, sampling the proxy's peak RSS; the same scan directly
#      on one shard for comparison. The bar: proxy peak RSS under 64 MB.
#  (b) latency: `SELECT count(*) FROM big` through the proxy vs directly on each shard (alone,
#      and all shards at once), with pgbench. The bar: at most the slowest shard plus a small
#      constant.
# See bench/README.md ("Scatter-gather reads") for what each number means.
set -euo pipefail

ROWS="${ROWS:-2000000}"
SHARDS="${SHARDS:-4}"
REPEAT="${REPEAT:-3}"
DURATION="${DURATION:-10}"
KEEP_TMP="${KEEP_TMP:-0}"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
init_paths scatter-

TMP=""
SERVERS=() # data directories of the PostgreSQL servers started
PORTS=()   # their ports, shard order
PROXY_PID=""
BENCH_TAG=scatter

stop_all() {
    set +e
    [[ -n "$PROXY_PID" ]] && stop_process "$PROXY_PID"
    stop_servers
    remove_tmp
}
trap_exit stop_all

# ---------------------------------------------------------------- parameters
for v in ROWS SHARDS REPEAT DURATION; do
    is_positive_int "${!v}" || die "$v must be a positive integer, got '${!v}'"
done
((SHARDS >= 2)) || die "SHARDS must be at least 2 (a scatter needs several shards)"
command -v python3 >/dev/null 2>&1 || die "python3 is needed (free ports, row generator)"
require_pg_user
find_pg_tools

# ---------------------------------------------------------------- build
build_proxy "set SHARDPROXY_BIN"

# ---------------------------------------------------------------- PostgreSQL x SHARDS
make_tmp scatter
read -r -a ALL_PORTS <<<"$(free_ports $((SHARDS + 2)))"
PORTS=("${ALL_PORTS[@]:0:SHARDS}")
PROXY_PORT="${ALL_PORTS[SHARDS]}"
ADMIN_PORT="${ALL_PORTS[SHARDS + 1]}"
PGCONN=(-h 127.0.0.1 -U postgres)

# Parallel query is off so that a shard's count(*) is one process: with SHARDS servers on few
# cores, parallel workers would only compete with the other shards.
SERVER_CONF="max_connections = 100
max_prepared_transactions = 20
fsync = off
max_parallel_workers_per_gather = 0"

log "starting $SHARDS PostgreSQL servers ($("$PG_BIN/postgres" --version)) on ports ${PORTS[*]}"
for i in "${!PORTS[@]}"; do start_postgres "s$i" "${PORTS[$i]}" "$SERVER_CONF" --locale=C; done

# ---------------------------------------------------------------- shardproxy
{
    proxy_config "$PROXY_PORT" "$ADMIN_PORT" "$TMP/state" 4
    for i in "${!PORTS[@]}"; do
        printf '\n[[shards]]\nname = "s%d"\nurl = "postgres://postgres@127.0.0.1:%d/bench"\n' "$i" "${PORTS[$i]}"
    done
    cat <<EOF

[maps.big]
strategy = "hash"
key_type = "bigint"
buckets = 64

[tables]
big = { map = "big", key = "id" }
EOF
} >"$TMP/scatter.toml"
mkdir -p "$TMP/state"
log "starting shardproxy on 127.0.0.1:$PROXY_PORT"
run_proxy "$TMP/scatter.toml" "$TMP/proxy.log"
PROXY_PID="$LAST_PID"
wait_listening "$PROXY_PORT" "$PROXY_PID" || {
    tail -n 20 "$TMP/proxy.log" >&2
    die "shardproxy did not start listening on 127.0.0.1:$PROXY_PORT (log above)"
}

proxy_psql() { psql_bench "$PROXY_PORT" "$@"; }

# ---------------------------------------------------------------- data
log "CREATE TABLE big through the proxy (DDL goes to every shard)"
proxy_psql -c 'CREATE TABLE big (id bigint, grp int, payload text)' >/dev/null ||
    die "CREATE TABLE through the proxy failed"
log "loading $ROWS rows (~100 bytes each) through the proxy (COPY, split per shard)"
load_start="$(date +%s.%N)"
# Row = id, grp, 80 characters of payload: about 100 bytes per row on the wire.
python3 - "$ROWS" <<'EOF' |
import sys
out = sys.stdout
n = int(sys.argv[1])
for i in range(1, n + 1):
    out.write(f"{i}\t{i % 1000}\t{(i * 2654435761) % 4294967296:016x}{'p' * 64}\n")
EOF
    proxy_psql -c '\copy big (id, grp, payload) from pstdin' >"$TMP/load.log" 2>&1 ||
    {
        cat "$TMP/load.log" >&2
        die "COPY through the proxy failed"
    }
load_end="$(date +%s.%N)"
total=0
PER_SHARD=()
for port in "${PORTS[@]}"; do
    c="$(psql_bench "$port" -c 'SELECT count(*) FROM big')"
    PER_SHARD+=("$c")
    total=$((total + c))
done
((total == ROWS)) || die "the shards hold $total rows (${PER_SHARD[*]}), expected $ROWS"
log "loaded in $(awk -v a="$load_start" -v b="$load_end" 'BEGIN { printf "%.1f", b - a }') s; rows per shard: ${PER_SHARD[*]}"
for port in "${PORTS[@]}"; do
    psql_bench "$port" -c 'ALTER TABLE big ADD PRIMARY KEY (id)' -c 'VACUUM ANALYZE big' >/dev/null ||
        die "primary key / VACUUM ANALYZE on port $port failed"
done

# The merge is being built; until it lands, ordered and aggregated scatter reads are refused.
MERGE_OK=1
if ! proxy_psql -c 'SELECT id FROM big ORDER BY id LIMIT 1' >/dev/null 2>"$TMP/probe.err"; then
    MERGE_OK=0
    log "the proxy refuses a multi-shard ORDER BY ($(head -n 1 "$TMP/probe.err")): the merge has not landed; ordered and aggregated runs report 'refused'"
fi

# ---------------------------------------------------------------- (a) memory
rss_kb() { awk -v f="$2" '$1 == f ":" { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# scan LABEL PORT SQL EXPECTED_ROWS PID: runs SQL with psql (output counted, then dropped),
# prints "status seconds rows peak_kb base_kb". With a PID, that process's peak RSS is reset
# first (clear_refs 5) and read from VmHWM afterwards; a 20 ms VmRSS sampler backs it up where
# clear_refs is not allowed.
scan() {
    local label="$1" port="$2" sql="$3" expected="$4" pid="$5"
    local base=0 hwm=0 sampled=0 t0 t1 rows rc=0 sampler=""
    if [[ -n "$pid" ]]; then
        echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
        base="$(rss_kb "$pid" VmRSS)"
        : >"$TMP/rss.samples"
        (while kill -0 "$pid" 2>/dev/null; do
            rss_kb "$pid" VmRSS >>"$TMP/rss.samples"
            sleep 0.02
        done) &
        sampler=$!
    fi
    t0="$(date +%s.%N)"
    rows="$(psql_bench "$port" -c "$sql" 2>"$TMP/scan.err" | wc -l)" || rc=$?
    t1="$(date +%s.%N)"
    [[ -s "$TMP/scan.err" ]] && rc=1
    if [[ -n "$sampler" ]]; then
        kill "$sampler" 2>/dev/null
        wait "$sampler" 2>/dev/null || true
        hwm="$(rss_kb "$pid" VmHWM)"
        sampled="$(sort -n "$TMP/rss.samples" | tail -n 1)"
        ((${sampled:-0} > hwm)) && hwm="$sampled"
    fi
    if ((rc != 0)); then
        log "$label: $(head -n 1 "$TMP/scan.err")"
        if grep -q 'not supported' "$TMP/scan.err"; then echo "refused - - - -"; else echo "failed - - - -"; fi
        return
    fi
    ((rows == expected)) || log "$label: $rows rows, expected $expected"
    echo "ok $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') $rows $hwm $base"
}

SCANS_CSV="$OUT_DIR/scans.csv"
echo "run,target,query,status,seconds,rows,peak_rss_kb,base_rss_kb" >"$SCANS_CSV"
ONE_SHARD_ROWS="${PER_SHARD[0]}"
for run in $(seq "$REPEAT"); do
    for q in ordered unordered; do
        sql='SELECT * FROM big'
        [[ "$q" == ordered ]] && sql='SELECT * FROM big ORDER BY id'
        read -r st secs rows peak base <<<"$(scan "proxy $q" "$PROXY_PORT" "$sql" "$ROWS" "$PROXY_PID")"
        log "run $run proxy $q: $st ${secs}s rows=$rows peak_rss=${peak}kB (before ${base}kB)"
        echo "$run,proxy,$q,$st,${secs//-/},${rows//-/},${peak//-/},${base//-/}" >>"$SCANS_CSV"
        read -r st secs rows peak base <<<"$(scan "shard s0 $q" "${PORTS[0]}" "$sql" "$ONE_SHARD_ROWS" "")"
        log "run $run direct s0 $q: $st ${secs}s rows=$rows"
        echo "$run,s0,$q,$st,${secs//-/},${rows//-/},," >>"$SCANS_CSV"
    done
done
kill -0 "$PROXY_PID" 2>/dev/null || die "the proxy died during the scans (log: $TMP/proxy.log, kept with KEEP_TMP=1)"
# Not timed: the merged stream must really be in order, every id once (ids are 1..ROWS).
ORDER_CHECK="not run (refused)"
if [[ "$MERGE_OK" == 1 ]]; then
    if proxy_psql -c 'SELECT id FROM big ORDER BY id' |
        awk -v n="$ROWS" '$1 + 0 != NR { bad = 1 } END { exit (bad || NR != n) }'; then
        ORDER_CHECK="ok (ids 1..$ROWS in order)"
    else
        ORDER_CHECK="WRONG: SELECT id FROM big ORDER BY id through the proxy is not 1..$ROWS in order"
    fi
    log "order check of the merged stream: $ORDER_CHECK"
fi

# ---------------------------------------------------------------- (b) latency
echo 'SELECT count(*) FROM big;' >"$TMP/count.sql"
# count_latency PORT LOG: pgbench -c 1 for DURATION seconds; prints the average latency in ms.
count_latency() {
    timeout --kill-after=5 $((DURATION + 60)) \
        "$PGBENCH" "${PGCONN[@]}" -p "$1" -n -f "$TMP/count.sql" -c 1 -j 1 -T "$DURATION" bench >"$2" 2>&1 || true
    local lat
    lat="$(pgbench_value "$2" latency)"
    if [[ -n "$lat" ]] && ! grep -qiE 'error|abort' "$2"; then echo "$lat"; else echo "-"; fi
}

LAT_CSV="$OUT_DIR/latency.csv"
echo "target,mode,latency_ms" >"$LAT_CSV"
log "count(*) on each shard alone (${DURATION}s each)"
ALONE=()
for i in "${!PORTS[@]}"; do
    ALONE+=("$(count_latency "${PORTS[$i]}" "$TMP/count-alone-s$i.log")")
    echo "s$i,alone,${ALONE[$i]//-/}" >>"$LAT_CSV"
done
log "count(*) on all shards at once, directly (${DURATION}s)"
pids=()
for i in "${!PORTS[@]}"; do
    count_latency "${PORTS[$i]}" "$TMP/count-together-s$i.log" >"$TMP/together-s$i.out" &
    pids+=($!)
done
wait "${pids[@]}"
TOGETHER=()
for i in "${!PORTS[@]}"; do
    TOGETHER+=("$(<"$TMP/together-s$i.out")")
    echo "s$i,together,${TOGETHER[$i]//-/}" >>"$LAT_CSV"
done
log "count(*) through the proxy (${DURATION}s)"
PROXY_LAT="$(count_latency "$PROXY_PORT" "$TMP/count-proxy.log")"
[[ "$PROXY_LAT" == "-" ]] && log "through the proxy: $(grep -iE 'error|abort' "$TMP/count-proxy.log" | head -n 1)"
echo "proxy,scatter,${PROXY_LAT//-/}" >>"$LAT_CSV"

# ---------------------------------------------------------------- report
REPORT="$OUT_DIR/report.txt"
{
    echo "shardproxy scatter-gather reads: $ROWS rows over $SHARDS shards (${PER_SHARD[*]}), $REPEAT run(s) per scan"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  cpus: $(nproc)  $("$PG_BIN/postgres" --version)"
    [[ "$MERGE_OK" == 1 ]] || echo "NOTE: the proxy refused a multi-shard ORDER BY: the merge has not landed"
    echo
    echo "(a) full scans with psql (-At, output counted and dropped); median time, highest proxy peak RSS"
    echo "order check of the proxy's ORDER BY id stream: $ORDER_CHECK"
    awk -F, '
    NR == 1 { next }
    {
        k = $2 SUBSEP $3
        if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
        if ($4 != "ok") { bad[k] = $4; next }
        n[k]++; t[k, n[k]] = $5; rows[k] = $6
        if ($7 != "" && $7 + 0 > peak[k]) peak[k] = $7 + 0
        if ($8 != "") base[k] = $8
    }
    function median(k,    a, i, j, x, c) {
        c = n[k]
        for (i = 1; i <= c; i++) a[i] = t[k, i] + 0
        for (i = 2; i <= c; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
        return c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
    }
    END {
        printf "%-8s %-10s %10s %10s %12s %14s\n", "target", "query", "rows", "seconds", "rows/s", "peak RSS MB"
        for (i = 1; i <= nk; i++) {
            k = keys[i]; split(k, p, SUBSEP)
            if (k in bad || !n[k]) { printf "%-8s %-10s %10s\n", p[1], p[2], (k in bad ? bad[k] : "failed"); continue }
            m = median(k)
            r = (k in peak) ? sprintf("%.1f", peak[k] / 1024) : "-"
            printf "%-8s %-10s %10d %10.2f %12.0f %14s\n", p[1], p[2], rows[k], m, (m > 0 ? rows[k] / m : 0), r
            if (k in peak && peak[k] >= 65536) over = 1
        }
        print ""
        print "bar: proxy peak RSS under 64 MB" (over ? "  -> NOT MET" : "")
    }' "$SCANS_CSV"
    echo
    echo "(b) SELECT count(*) FROM big, pgbench -c 1 -T $DURATION, average latency in ms"
    awk -F, '
    NR == 1 { next }
    $1 ~ /^s[0-9]+$/ && !($1 in seen) { seen[$1] = 1; shards[++ns] = $1 }
    $3 == "" { v[$1, $2] = "-"; next }
    { v[$1, $2] = $3 }
    $2 == "alone" && $3 + 0 > slow_a { slow_a = $3 + 0; sa = $1 }
    $2 == "together" && $3 + 0 > slow_t { slow_t = $3 + 0; st = $1 }
    END {
        printf "%-8s %14s %20s\n", "shard", "alone", "all shards at once"
        for (i = 1; i <= ns; i++) printf "%-8s %14s %20s\n", shards[i], v[shards[i], "alone"], v[shards[i], "together"]
        printf "%-8s %14s %20s\n", "slowest", (sa ? sprintf("%.3f (%s)", slow_a, sa) : "-"), (st ? sprintf("%.3f (%s)", slow_t, st) : "-")
        p = v["proxy", "scatter"]
        printf "proxy    %14s\n", (p == "-" ? "failed/refused" : p)
        if (p != "-" && p != "") {
            printf "proxy - slowest shard alone:            %+.3f ms\n", p - slow_a
            printf "proxy - slowest shard, all at once:     %+.3f ms\n", p - slow_t
        }
        print ""
        print "bar: the proxy costs at most the slowest shard plus a small constant; the shards run"
        print "concurrently under the proxy, so on a machine with fewer cores than shards compare with"
        print "\"all shards at once\" (the same contention), not with a shard alone"
    }' "$LAT_CSV"
} | tee "$REPORT"
log "results: $REPORT (per run: $SCANS_CSV, $LAT_CSV)"
