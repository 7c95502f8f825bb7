//! Human-readable views of the admin API's JSON: tables for status/maps/jobs/transactions, a job's
//! detail and its one-line progress bar.
//!
//! Each view returns `None` when the JSON does not have the expected shape; the caller then
//! prints the JSON itself, so a newer server never makes the CLI show nothing.

use serde_json::Value;

/// Width of the progress bar, in cells.
const BAR_WIDTH: usize = 30;

/// `GET /api/v1/shards`: one row per host.
pub fn status(reply: &Value) -> Option<String> {
    let shards = reply.get("shards")?.as_array()?;
    let mut rows = Vec::new();
    for shard in shards {
        let name = text(shard.get("name")?);
        for host in shard.get("hosts")?.as_array()? {
            let field = |k: &str| host.get(k).map_or_else(|| "-".to_owned(), text);
            rows.push(vec![
                name.clone(),
                field("url"),
                field("role"),
                field("healthy"),
                field("circuit"),
                format!(
                    "{}/{}/{} of {}",
                    field("pool_in_use"),
                    field("pool_idle"),
                    field("pool_waiting"),
                    field("pool_size")
                ),
            ]);
        }
    }
    if rows.is_empty() {
        return Some("no shards\n".to_owned());
    }
    Some(table(
        &[
            "SHARD",
            "HOST",
            "ROLE",
            "HEALTHY",
            "CIRCUIT",
            "POOL (in use/idle/waiting)",
        ],
        &rows,
    ))
}

/// `GET /api/v1/maps`: one row per map, then the reference tables.
pub fn maps(reply: &Value) -> Option<String> {
    let maps = reply.get("maps")?.as_array()?;
    let mut rows = Vec::new();
    for map in maps {
        let tables: Vec<String> = map
            .get("tables")?
            .as_array()?
            .iter()
            .map(|t| match (t.get("name"), t.get("key")) {
                (Some(name), Some(key)) => format!("{}({})", text(name), text(key)),
                _ => text(t),
            })
            .collect();
        rows.push(vec![
            text(map.get("name")?),
            text(map.get("strategy")?),
            text(map.get("key_type")?),
            if tables.is_empty() {
                "-".to_owned()
            } else {
                tables.join(", ")
            },
            placement(map),
        ]);
    }
    let mut out = if rows.is_empty() {
        "no shard maps\n".to_owned()
    } else {
        table(
            &["MAP", "STRATEGY", "KEY TYPE", "TABLES", "PLACEMENT"],
            &rows,
        )
    };
    if let Some(refs) = reply.get("reference_tables").and_then(Value::as_array) {
        if !refs.is_empty() {
            let names: Vec<String> = refs.iter().map(text).collect();
            out.push_str(&format!("\nreference tables: {}\n", names.join(", ")));
        }
    }
    Some(out)
}

/// Where a map's key space lives, in one line: `0-511 -> s0, ...`, `..100 -> s0, ...`,
/// `KR,JP -> s0; ...; default -> s1`.
fn placement(map: &Value) -> String {
    let shard = |v: &Value| v.get("shard").map_or_else(|| "?".to_owned(), text);
    if let Some(assign) = map.get("assign").and_then(Value::as_array) {
        let runs: Vec<String> = assign
            .iter()
            .map(|run| {
                let buckets = run.get("buckets").map_or_else(|| "?".to_owned(), text);
                format!("{buckets} -> {}", shard(run))
            })
            .collect();
        let count = map.get("buckets").map_or_else(|| "?".to_owned(), text);
        return format!("{count} buckets: {}", runs.join(", "));
    }
    if let Some(ranges) = map.get("ranges").and_then(Value::as_array) {
        let bound = |r: &Value, k: &str| match r.get(k) {
            None | Some(Value::Null) => String::new(),
            Some(v) => text(v),
        };
        let parts: Vec<String> = ranges
            .iter()
            .map(|r| format!("{}..{} -> {}", bound(r, "from"), bound(r, "to"), shard(r)))
            .collect();
        return parts.join(", ");
    }
    if let Some(lists) = map.get("lists").and_then(Value::as_array) {
        let mut parts: Vec<String> = lists
            .iter()
            .map(|l| {
                let values = l.get("values").map_or_else(
                    || "?".to_owned(),
                    |v| {
                        v.as_array()
                            .map(|vs| vs.iter().map(text).collect::<Vec<_>>().join(","))
                            .unwrap_or_else(|| text(v))
                    },
                );
                format!("{values} -> {}", shard(l))
            })
            .collect();
        match map.get("default") {
            Some(Value::Null) | None => parts.push("others: error".to_owned()),
            Some(default) => parts.push(format!("default -> {}", text(default))),
        }
        return parts.join("; ");
    }
    "-".to_owned()
}

/// The list in a `{"jobs": [..]}` / `{"transactions": [..]}` reply, or a bare array.
fn list<'a>(reply: &'a Value, key: &str) -> Option<&'a Vec<Value>> {
    match reply {
        Value::Array(items) => Some(items),
        other => other.get(key)?.as_array(),
    }
}

/// `GET /api/v1/jobs`.
pub fn jobs(reply: &Value) -> Option<String> {
    let jobs = list(reply, "jobs")?;
    if jobs.is_empty() {
        return Some("no jobs\n".to_owned());
    }
    let mut rows = Vec::new();
    for job in jobs {
        let field = |k: &str| job.get(k).map_or_else(|| "-".to_owned(), text);
        rows.push(vec![
            field("id"),
            field("map"),
            field("state"),
            progress_text(job),
            field("started_at"),
            field("finished_at"),
            field("error"),
        ]);
    }
    Some(table(
        &[
            "JOB", "MAP", "STATE", "ROWS", "STARTED", "FINISHED", "ERROR",
        ],
        &rows,
    ))
}

/// `GET /api/v1/jobs/{id}`: one `key: value` line per field, known fields first.
pub fn job_detail(job: &Value) -> Option<String> {
    let fields = job.as_object()?;
    const FIRST: [&str; 3] = ["id", "state", "map"];
    let mut out = String::new();
    for key in FIRST {
        if let Some(v) = fields.get(key) {
            out.push_str(&format!("{key}: {}\n", text(v)));
        }
    }
    if fields.contains_key("rows_copied") || fields.contains_key("rows_total") {
        out.push_str(&format!("rows: {}\n", progress_text(job)));
    }
    for (key, v) in fields {
        if !FIRST.contains(&key.as_str()) && key != "rows_copied" && key != "rows_total" {
            out.push_str(&format!("{key}: {}\n", text(v)));
        }
    }
    Some(out)
}

/// `copied/total (pct%)`, or what is known of it.
fn progress_text(job: &Value) -> String {
    let copied = job.get("rows_copied").and_then(Value::as_u64);
    let total = job.get("rows_total").and_then(Value::as_u64);
    match (copied, total) {
        (Some(c), Some(t)) if t > 0 => format!("{c}/{t} ({}%)", percent(c, t)),
        (Some(c), Some(t)) => format!("{c}/{t}"),
        (Some(c), None) => format!("{c}/?"),
        _ => "-".to_owned(),
    }
}

/// `copied` as a whole percentage of `total` (> 0), capped at 100.
fn percent(copied: u64, total: u64) -> u64 {
    (u128::from(copied) * 100 / u128::from(total)).min(100) as u64
}

/// One line for `job ID --wait`: `[#####.....]  42%  420/1000 rows  copying`.
pub fn progress_bar(job: &Value) -> String {
    let state = job.get("state").map_or_else(|| "?".to_owned(), text);
    let copied = job.get("rows_copied").and_then(Value::as_u64).unwrap_or(0);
    let total = job.get("rows_total").and_then(Value::as_u64);
    let pct = match total {
        Some(t) if t > 0 => percent(copied, t),
        // Nothing to copy: the bar is full once the job is done.
        _ if state == "done" => 100,
        _ => 0,
    };
    let filled = usize::try_from(pct)
        .unwrap_or(100)
        .saturating_mul(BAR_WIDTH)
        / 100;
    let total_text = total.map_or_else(|| "?".to_owned(), |t| t.to_string());
    format!(
        "[{}{}] {pct:>3}%  {copied}/{total_text} rows  {state}",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH.saturating_sub(filled)),
    )
}

/// `GET /api/v1/transactions`: GID first, then every other field the server gives.
pub fn transactions(reply: &Value) -> Option<String> {
    let txs = list(reply, "transactions")?;
    if txs.is_empty() {
        return Some("no in-doubt transactions\n".to_owned());
    }
    let mut columns: Vec<String> = Vec::new();
    for tx in txs {
        for key in tx.as_object()?.keys() {
            if key != "gid" && !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    let rows: Vec<Vec<String>> = txs
        .iter()
        .map(|tx| {
            std::iter::once("gid")
                .chain(columns.iter().map(String::as_str))
                .map(|k| tx.get(k).map_or_else(|| "-".to_owned(), text))
                .collect()
        })
        .collect();
    let headers: Vec<String> = std::iter::once("GID".to_owned())
        .chain(columns.iter().map(|c| c.to_uppercase()))
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    Some(table(&headers, &rows))
}

/// A JSON value as a table cell: strings bare, null as `-`, arrays comma-joined.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        Value::Object(_) => value.to_string(),
    }
}

/// Left-aligned columns, two spaces apart, with a header row.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            out.push_str(&" ".repeat(width.saturating_sub(cell.chars().count())));
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn status_table() {
        let reply = json!({"shards": [{"name": "s0", "hosts": [
            {"url": "postgres://app@h:5432/db", "role": "primary", "healthy": true,
             "circuit": "closed", "pool_size": 20, "pool_in_use": 1, "pool_idle": 3,
             "pool_waiting": 0}]}]});
        let out = status(&reply).unwrap();
        let mut lines = out.lines();
        assert!(lines.next().unwrap().starts_with("SHARD  HOST"));
        let row = lines.next().unwrap();
        for part in [
            "s0",
            "postgres://app@h:5432/db",
            "primary",
            "yes",
            "closed",
            "1/3/0 of 20",
        ] {
            assert!(row.contains(part), "{row}");
        }
        assert!(status(&json!({"oops": 1})).is_none());
    }

    #[test]
    fn maps_table() {
        let reply = json!({"maps": [
            {"name": "users", "strategy": "hash", "key_type": "bigint",
             "tables": [{"name": "users", "key": "id"}, {"name": "orders", "key": "user_id"}],
             "buckets": 8, "assign": [{"buckets": "0-3", "shard": "s0"}, {"buckets": "4-7", "shard": "s1"}]},
            {"name": "events", "strategy": "range", "key_type": "bigint", "tables": [],
             "ranges": [{"from": null, "to": 100, "shard": "s0"}, {"from": 100, "to": null, "shard": "s1"}]},
            {"name": "region", "strategy": "list", "key_type": "text", "tables": [],
             "lists": [{"values": ["KR", "JP"], "shard": "s0"}], "default": null}],
            "reference_tables": ["countries"]});
        let out = maps(&reply).unwrap();
        assert!(out.contains("users(id), orders(user_id)"), "{out}");
        assert!(out.contains("8 buckets: 0-3 -> s0, 4-7 -> s1"), "{out}");
        assert!(out.contains("..100 -> s0, 100.. -> s1"), "{out}");
        assert!(out.contains("KR,JP -> s0; others: error"), "{out}");
        assert!(out.contains("reference tables: countries"), "{out}");
    }

    #[test]
    fn jobs_and_transactions() {
        let job = json!({"id": 7, "state": "copying", "rows_copied": 50, "rows_total": 200,
                         "started_at": "t0", "finished_at": null, "error": null});
        let out = jobs(&json!({"jobs": [job.clone()]})).unwrap();
        assert!(
            out.contains("50/200 (25%)") && out.contains("copying"),
            "{out}"
        );
        assert_eq!(jobs(&json!([])).unwrap(), "no jobs\n");
        let detail = job_detail(&job).unwrap();
        assert!(
            detail.starts_with("id: 7\nstate: copying\nrows: 50/200 (25%)\n"),
            "{detail}"
        );
        let out = transactions(&json!({"transactions": [
            {"gid": "g1", "shards": ["s0", "s1"], "decision": "commit"}]}))
        .unwrap();
        assert!(
            out.starts_with("GID  DECISION  SHARDS\ng1   commit    s0,s1\n"),
            "{out}"
        );
        assert_eq!(
            transactions(&json!({"transactions": []})).unwrap(),
            "no in-doubt transactions\n"
        );
    }

    #[test]
    fn progress_bars() {
        let bar = progress_bar(&json!({"state": "copying", "rows_copied": 50, "rows_total": 200}));
        assert_eq!(
            bar,
            format!(
                "[{}{}]  25%  50/200 rows  copying",
                "#".repeat(7),
                ".".repeat(23)
            )
        );
        let bar = progress_bar(&json!({"state": "done", "rows_copied": 0, "rows_total": 0}));
        assert!(bar.contains("100%") && bar.ends_with("done"), "{bar}");
        let bar = progress_bar(&json!({"state": "queued"}));
        assert!(bar.contains("  0%  0/? rows  queued"), "{bar}");
        let bar = progress_bar(&json!({"state": "copying", "rows_copied": 900, "rows_total": 100}));
        assert!(bar.contains("100%"), "{bar}");
    }
}
