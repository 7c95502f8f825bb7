# shellcheck shell=bash
# Shell helpers shared by the benchmarks (sourced, not run). Callers set BENCH_TAG (log prefix),
# TMP (their temp dir) and CLK_TCK, and may set PG_BIN.

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
