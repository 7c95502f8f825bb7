# shellcheck shell=bash
# Shell helpers shared by the benchmarks (sourced, not run). Callers set BENCH_TAG (log prefix),
# KEEP_TMP, SERVERS=() (data directories started), PGCONN (psql/pgbench connection options) and,
# for cpu_seconds, CLK_TCK; they may set PG_BIN and SHARDPROXY_BIN. The helpers below set TMP,
# BENCH_DIR, REPO_DIR, OUT_DIR, PROXY_BIN, PG_BIN, PGBENCH, PSQL and LAST_PID where they say so.

log() { printf '[%s] %s\n' "$BENCH_TAG" "$*" >&2; }
die() {
    printf '[%s] ERROR: %s\n' "$BENCH_TAG" "$*" >&2
    exit 1
}

is_positive_int() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }

# has_word WORD "LIST": is WORD one of the space-separated words of LIST?
has_word() {
    local w
    for w in $2; do [[ "$w" == "$1" ]] && return 0; done
    return 1
}

# Servers must not run as root: as root, hand them to the postgres OS user. The cd keeps
# runuser from starting in a directory (like /root) that postgres cannot enter.
as_pg() {
    if [[ "$(id -u)" -eq 0 ]]; then
        (cd "$TMP" && runuser -u postgres -- "$@")
    else
        (cd "$TMP" && "$@")
    fi
}

# Several free ports at once: binding them all together guarantees they are distinct.
free_ports() {
    local n="$1"
    if command -v python3 >/dev/null 2>&1 &&
        python3 - "$n" <<'EOF' 2>/dev/null; then
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
        return 0
    fi
    # Fallback: probe random high ports until nothing answers on them.
    local ports=() p tries=0
    while ((${#ports[@]} < n)); do
        ((tries++ < 1000)) || die "could not find $n free TCP ports"
        p=$((20000 + RANDOM % 40000))
        has_word "$p" "${ports[*]:-}" && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then ports+=("$p"); fi
    done
    echo "${ports[*]}"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# utime + stime of a whole process (all threads), in clock ticks.
cpu_ticks() {
    local stat rest fields
    stat="$(<"/proc/$1/stat")" || return 1
    # comm (field 2) may contain spaces or ')', so split after the last ')'.
    rest="${stat##*) }"
    read -r -a fields <<<"$rest"
    echo $((fields[11] + fields[12]))
}

find_pg_bin() {
    if [[ -n "${PG_BIN:-}" ]]; then
        echo "$PG_BIN"
        return
    fi
    local initdb
    if initdb="$(command -v initdb 2>/dev/null)"; then
        dirname "$(readlink -f "$initdb")"
        return
    fi
    local d
    d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$d" && -x "$d/initdb" ]] ||
        die "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or under /usr/lib/postgresql/*/bin; install them with: apt-get install -y postgresql"
    echo "$d"
}

# ---------------------------------------------------------------- set-up

# init_paths PREFIX: sets BENCH_DIR, REPO_DIR, PROXY_BIN and OUT_DIR (default bench/results/PREFIX<date-time>).
init_paths() {
    BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
    OUT_DIR="${OUT_DIR:-$BENCH_DIR/results/$1$(date +%Y%m%d-%H%M%S)}"
    # SHARDPROXY_BIN: benchmark an already built binary instead of building target/release/shardproxy.
    PROXY_BIN="${SHARDPROXY_BIN:-$REPO_DIR/target/release/shardproxy}"
}

# trap_exit FN: runs FN on every exit, also after Ctrl-C (status 130) or SIGTERM (143).
trap_exit() {
    # shellcheck disable=SC2064 # FN is meant to be expanded now
    trap "$1" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# require_counts VAR...: each named variable holds a non-negative integer.
require_counts() {
    local v
    for v in "$@"; do
        [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"
    done
}

# require_positive VAR...: each named variable (already a count) is at least 1.
require_positive() {
    local v
    for v in "$@"; do is_positive_int "${!v}" || die "$v must be at least 1"; done
}

# require_positive_list VAR: every word of the named variable is a positive integer.
require_positive_list() {
    local w
    for w in ${!1}; do is_positive_int "$w" || die "$1 must be positive integers, got '$w'"; done
}

# require_known VAR KIND "ALLOWED": every word of the named variable is one of ALLOWED.
require_known() {
    local w
    for w in ${!1}; do has_word "$w" "$3" || die "unknown $2 '$w' in $1 ($3)"; done
}

# require_pg_user: as root, the servers need a postgres OS user to run as.
require_pg_user() {
    if [[ "$(id -u)" -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        die "running as root needs a 'postgres' OS user to run the servers (apt-get install -y postgresql creates it)"
    fi
}

# find_pg_tools: sets PG_BIN (with initdb, pg_ctl and postgres), PGBENCH and PSQL.
find_pg_tools() {
    local b
    PG_BIN="$(find_pg_bin)"
    for b in initdb pg_ctl postgres; do
        [[ -x "$PG_BIN/$b" ]] || die "$PG_BIN/$b is missing; install the PostgreSQL server package"
    done
    PGBENCH="$PG_BIN/pgbench"
    [[ -x "$PGBENCH" ]] || PGBENCH="$(command -v pgbench)" || die "pgbench not found; apt-get install -y postgresql-contrib"
    PSQL="$PG_BIN/psql"
    [[ -x "$PSQL" ]] || PSQL="$(command -v psql)" || die "psql not found; install the PostgreSQL client package"
}

# build_proxy HINT: builds unless SHARDPROXY_BIN is set (failure says "fix the build or HINT"); checks PROXY_BIN.
build_proxy() {
    if [[ -z "${SHARDPROXY_BIN:-}" ]]; then
        log "building shardproxy (cargo build --release -p shardproxy)"
        (cd "$REPO_DIR" && cargo build --release -p shardproxy) ||
            die "cargo build --release -p shardproxy failed; fix the build or $1"
    fi
    [[ -x "$PROXY_BIN" ]] || die "$PROXY_BIN does not exist or is not executable"
}

# make_tmp NAME: sets TMP to a new /tmp/shardproxy-NAME.* the postgres user can use; creates OUT_DIR.
make_tmp() {
    TMP="$(mktemp -d "/tmp/shardproxy-$1.XXXXXX")"
    chmod 755 "$TMP"
    if [[ "$(id -u)" -eq 0 ]]; then chown postgres: "$TMP"; fi
    mkdir -p "$OUT_DIR"
}

# ---------------------------------------------------------------- servers

# start_postgres NAME PORT CONF [INITDB_ARG...]: initdb, append CONF, start, CREATE DATABASE bench.
start_postgres() {
    local name="$1" port="$2" conf="$3" data="$TMP/pgdata"
    shift 3
    # An unnamed (lone) server keeps the file names pgbench.sh always used: pgdata, initdb.log, postgres.log.
    [[ -n "$name" ]] && data="$TMP/pg-$name"
    local initdb_log="$TMP/initdb${name:+-$name}.log" server_log="$TMP/postgres${name:+-$name}.log"
    as_pg "$PG_BIN/initdb" -D "$data" -U postgres -A trust -E UTF8 "$@" --no-sync >"$initdb_log" 2>&1 ||
        {
            cat "$initdb_log" >&2
            die "initdb${name:+ of server $name} failed"
        }
    cat >>"$data/postgresql.conf" <<EOC
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$TMP'
$conf
EOC
    SERVERS+=("$data")
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$server_log" -w -t 60 start >/dev/null ||
        {
            tail -n 20 "$server_log" >&2
            die "PostgreSQL${name:+ server $name} did not start"
        }
    "$PSQL" "${PGCONN[@]}" -p "$port" -d postgres -qAtc 'CREATE DATABASE bench' >/dev/null
}

# proxy_config PORT ADMIN STATE_DIR POOL_SIZE [LINE...]: the [proxy] (LINEs last), [auth] and [pool] sections.
proxy_config() {
    local port="$1" admin="$2" state="$3" size="$4"
    shift 4
    printf '[proxy]\nlisten = "127.0.0.1:%s"\nadmin_listen = "127.0.0.1:%s"\nstate_dir = "%s"\n' \
        "$port" "$admin" "$state"
    if (($# > 0)); then printf '%s\n' "$@"; fi
    cat <<EOC

[auth]
method = "trust"

[pool]
size = $size
mode = "transaction"
EOC
}

# psql_bench PORT [PSQL_ARG...]: psql on database bench at PORT, unaligned, stopping at the first error.
psql_bench() {
    local port="$1"
    shift
    "$PSQL" "${PGCONN[@]}" -p "$port" -d bench -qAt -v ON_ERROR_STOP=1 "$@"
}

# run_proxy CONFIG LOG: starts shardproxy with CONFIG in the background, output to LOG; sets LAST_PID.
run_proxy() {
    RUST_LOG="${RUST_LOG:-warn}" "$PROXY_BIN" run -c "$1" >"$2" 2>&1 &
    # shellcheck disable=SC2034 # read by the caller
    LAST_PID=$!
}

# wait_listening PORT PID: waits up to 10 s for PORT to accept connections; fails early if PID exits.
wait_listening() {
    for _ in $(seq 100); do
        port_open "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- clean-up

# stop_process PID: SIGTERM, up to 5 s to exit, then SIGKILL; reaps it when it is our child.
stop_process() {
    local pid="$1"
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}

# stop_servers: fast shutdown of every server in SERVERS that is still running.
stop_servers() {
    local d
    for d in "${SERVERS[@]}"; do
        [[ -f "$d/postmaster.pid" ]] && as_pg "$PG_BIN/pg_ctl" -D "$d" -m fast -w stop >/dev/null 2>&1
    done
}

# remove_tmp: deletes TMP, or keeps it (and says where) when KEEP_TMP=1.
remove_tmp() {
    if [[ -n "$TMP" && -d "$TMP" ]]; then
        if [[ "$KEEP_TMP" == 1 ]]; then log "kept temp dir $TMP"; else rm -rf "$TMP"; fi
    fi
}

# ---------------------------------------------------------------- pgbench runs

# pgbench_value LOG WHAT: tps, latency (average ms) or transactions from pgbench's output, empty if absent.
pgbench_value() {
    local expr
    case "$2" in
    tps) expr='s/^tps = \([0-9.]*\).*/\1/p' ;;
    latency) expr='s/^latency average = \([0-9.]*\) ms.*/\1/p' ;;
    transactions) expr='s/^number of transactions actually processed: \([0-9]*\).*/\1/p' ;;
    esac
    sed -n "$expr" "$1" | head -n 1
}

# show_pgbench_error LOG: the first error lines of a failed pgbench run (or its tail), on stderr.
show_pgbench_error() {
    grep -Ei 'error|abort|fatal' "$1" | head -n 3 | sed 's/^/    /' >&2 || tail -n 3 "$1" >&2
}

# cpu_seconds BEFORE AFTER: the CPU time between two cpu_ticks readings, in seconds.
cpu_seconds() {
    awk -v a="$2" -v b="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (a - b) / hz }'
}

# us_per_tx CPU_SECONDS TRANSACTIONS: CPU microseconds per transaction.
us_per_tx() {
    awk -v c="$1" -v t="$2" 'BEGIN { printf "%.2f", c * 1e6 / t }'
}

# rotate_words N "LIST": the words of LIST rotated left by N, so that no target always runs first.
rotate_words() {
    local r="$1" arr n i out=()
    read -r -a arr <<<"$2"
    n=${#arr[@]}
    for ((i = 0; i < n; i++)); do out+=("${arr[$(((i + r) % n))]}"); done
    echo "${out[*]}"
}
