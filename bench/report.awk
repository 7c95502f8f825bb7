# Turns bench/pgbench.sh's runs.csv into the readable tables (stdout) and summary.csv.
# Inputs (-v): modes, clients, run_targets (the targets actually run), summary (path).
# A cell is "n/a (failed)" when any of its rounds failed: a partly failing run is not a result.

function has(list, w,    a, n, i) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) if (a[i] == w) return 1
    return 0
}

# State of one (mode, clients, target) cell: ok, failed or skipped.
function state(m, c, t,    k) {
    k = m SUBSEP c SUBSEP t
    if (!has(run_targets, t) || !(k in runs)) return "skipped"
    if (okruns[k] < runs[k]) return "failed"
    return "ok"
}

# Median over the rounds: one round disturbed by other load on the machine does not move it.
function median(vals, k, n,    a, i, j, x) {
    for (i = 1; i <= n; i++) a[i] = vals[k, i] + 0
    for (i = 2; i <= n; i++) {
        x = a[i]
        for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]
        a[j + 1] = x
    }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}

function tps(m, c, t) { return median(v_tps, m SUBSEP c SUBSEP t, okruns[m, c, t]) }
function lat(m, c, t) { return median(v_lat, m SUBSEP c SUBSEP t, okruns[m, c, t]) }
function has_cpu(m, c, t) { return state(m, c, t) == "ok" && cpu_runs[m, c, t] == okruns[m, c, t] }
function cpu_us(m, c, t) { return median(v_cpu, m SUBSEP c SUBSEP t, okruns[m, c, t]) }

function na(m, c, t,    s) {
    s = state(m, c, t)
    return s == "failed" ? "n/a (failed)" : (s == "skipped" ? "skipped" : "n/a")
}

function fmt_tps(m, c, t) { return state(m, c, t) == "ok" ? sprintf("%.0f", tps(m, c, t)) : na(m, c, t) }
function fmt_lat(m, c, t) { return state(m, c, t) == "ok" ? sprintf("%.3f", lat(m, c, t)) : na(m, c, t) }
function fmt_cpu(m, c, t) { return has_cpu(m, c, t) ? sprintf("%.1f", cpu_us(m, c, t)) : na(m, c, t) }
function fmt_cpu10k(m, c, t) { return has_cpu(m, c, t) ? sprintf("%.3f", cpu_us(m, c, t) / 100) : na(m, c, t) }

function ratio_tps(m, c, a, b) {
    if (state(m, c, a) != "ok" || state(m, c, b) != "ok" || tps(m, c, b) == 0) return ""
    return sprintf("%.2f", tps(m, c, a) / tps(m, c, b))
}
function ratio_cpu(m, c, a, b) {
    if (!has_cpu(m, c, a) || !has_cpu(m, c, b) || cpu_us(m, c, b) == 0) return ""
    return sprintf("%.2f", cpu_us(m, c, a) / cpu_us(m, c, b))
}
function show(r) { return r == "" ? "n/a" : r "x" }
# Machine-readable value: empty when there is none.
function val(s) { return (s ~ /^[0-9.]+$/) ? s : "" }

NR == 1 { next }
{
    k = $2 SUBSEP $3 SUBSEP $4
    runs[k]++
    if ($5 == "ok") {
        i = ++okruns[k]
        v_tps[k, i] = $6
        v_lat[k, i] = $7
        if ($10 != "") { cpu_runs[k]++; v_cpu[k, i] = $10 }
    }
}

END {
    nm = split(modes, M, " ")
    nc = split(clients, C, " ")
    line = "------------------------------------------------------------------------------------------"

    print "Throughput (TPS) and average latency (ms); every number is the median over the rounds"
    print line
    printf "%-9s %3s | %13s %9s | %13s %9s | %13s %9s\n", "mode", "cl",
        "direct tps", "lat", "proxy tps", "lat", "pgbouncer tps", "lat"
    for (i = 1; i <= nm; i++) for (j = 1; j <= nc; j++) {
        m = M[i]; c = C[j]
        printf "%-9s %3s | %13s %9s | %13s %9s | %13s %9s\n", m, c,
            fmt_tps(m, c, "direct"), fmt_lat(m, c, "direct"),
            fmt_tps(m, c, "proxy"), fmt_lat(m, c, "proxy"),
            fmt_tps(m, c, "pgbouncer"), fmt_lat(m, c, "pgbouncer")
    }
    print ""
    print "TPS ratios (higher is better for the first name)"
    print line
    printf "%-9s %3s | %14s %17s %18s\n", "mode", "cl", "proxy/direct", "proxy/pgbouncer", "pgbouncer/direct"
    for (i = 1; i <= nm; i++) for (j = 1; j <= nc; j++) {
        m = M[i]; c = C[j]
        printf "%-9s %3s | %14s %17s %18s\n", m, c,
            show(ratio_tps(m, c, "proxy", "direct")),
            show(ratio_tps(m, c, "proxy", "pgbouncer")),
            show(ratio_tps(m, c, "pgbouncer", "direct"))
    }
    print ""
    print "CPU of the pooler process: microseconds per transaction, CPU seconds per 10k queries"
    print line
    printf "%-9s %3s | %13s %12s | %15s %12s | %14s\n", "mode", "cl",
        "proxy us/tx", "s/10k", "pgbouncer us/tx", "s/10k", "proxy/pgbouncer"
    for (i = 1; i <= nm; i++) for (j = 1; j <= nc; j++) {
        m = M[i]; c = C[j]
        printf "%-9s %3s | %13s %12s | %15s %12s | %14s\n", m, c,
            fmt_cpu(m, c, "proxy"), fmt_cpu10k(m, c, "proxy"),
            fmt_cpu(m, c, "pgbouncer"), fmt_cpu10k(m, c, "pgbouncer"),
            show(ratio_cpu(m, c, "proxy", "pgbouncer"))
    }

    hdr = "mode,clients"
    split("direct proxy pgbouncer", T, " ")
    for (t = 1; t <= 3; t++)
        hdr = hdr sprintf(",%s_status,%s_rounds_ok,%s_tps,%s_latency_ms,%s_cpu_us_per_tx,%s_cpu_s_per_10k",
            T[t], T[t], T[t], T[t], T[t], T[t])
    hdr = hdr ",proxy_over_direct_tps,proxy_over_pgbouncer_tps,pgbouncer_over_direct_tps,proxy_over_pgbouncer_cpu"
    print hdr > summary
    for (i = 1; i <= nm; i++) for (j = 1; j <= nc; j++) {
        m = M[i]; c = C[j]
        row = m "," c
        for (t = 1; t <= 3; t++) {
            row = row "," state(m, c, T[t]) "," (okruns[m, c, T[t]] + 0)
            row = row "," val(fmt_tps(m, c, T[t])) "," val(fmt_lat(m, c, T[t]))
            row = row "," val(fmt_cpu(m, c, T[t])) "," val(fmt_cpu10k(m, c, T[t]))
        }
        row = row "," ratio_tps(m, c, "proxy", "direct") "," ratio_tps(m, c, "proxy", "pgbouncer")
        row = row "," ratio_tps(m, c, "pgbouncer", "direct") "," ratio_cpu(m, c, "proxy", "pgbouncer")
        print row > summary
    }
    close(summary)
}
