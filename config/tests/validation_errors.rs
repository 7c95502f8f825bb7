//! Every kind of config error, with the exact `line:col` it is reported at.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use config::Config;

/// Two shards, lines 1-7 of every test file that needs shards.
const SHARDS: [&str; 7] = [
    "[[shards]]",
    "name = \"s0\"",
    "url = \"postgres://u:pw@h1/db\"",
    "",
    "[[shards]]",
    "name = \"s1\"",
    "url = \"postgres://u:pw@h2/db\"",
];

/// Joins lines so that `lines[i]` is line `i + 1` of the file.
fn file(lines: &[&str]) -> String {
    lines.join("\n") + "\n"
}

/// The shards above followed by `rest` (which starts at line 8).
fn with_shards(rest: &[&str]) -> String {
    let mut all: Vec<&str> = SHARDS.to_vec();
    all.extend_from_slice(rest);
    file(&all)
}

/// All errors as `line:col: message` (the file name is checked once, in `file_name_is_used`).
fn errors(text: &str) -> Vec<String> {
    match Config::parse(text, "t.toml") {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(errs) => errs
            .iter()
            .map(|e| {
                assert_eq!(e.file, "t.toml");
                format!("{}:{}: {}", e.line, e.col, e.message)
            })
            .collect(),
    }
}

/// `line:col` of the first `needle` on line `line` of `text` (ASCII lines only).
fn p(text: &str, line: usize, needle: &str) -> String {
    let l = text.lines().nth(line - 1).unwrap();
    let col = l
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not on line {line}: {l}"));
    format!("{line}:{}", col + 1)
}

/// Asserts exactly one error, at `pos`, whose message contains `needle`.
#[track_caller]
fn one_error(text: &str, pos: &str, needle: &str) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    let e = &errs[0];
    assert!(e.starts_with(&format!("{pos}: ")), "expected at {pos}: {e}");
    assert!(e.contains(needle), "expected {needle:?} in {e}");
}

#[test]
fn file_name_is_used() {
    let err = Config::parse("[proxy]\nlisten = \n", "conf/x.toml").unwrap_err();
    assert!(err.to_string().starts_with("conf/x.toml:2:10: "), "{err}");
}

#[test]
fn toml_syntax_errors_are_all_reported() {
    let text = file(&["[proxy]", "listen = ", "a = 1", "a = 2"]);
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].starts_with("2:10: TOML syntax"), "{}", errs[0]);
    assert!(
        errs[1].starts_with("4:1: TOML syntax: duplicate key"),
        "{}",
        errs[1]
    );
}

#[test]
fn unknown_keys_everywhere() {
    let text = with_shards(&[
        "replica = \"x\"",       // 8: unknown key in the second [[shards]]
        "[proxy]",               // 9
        "lisen = \"1.2.3.4:5\"", // 10
        "[pool]",                // 11
        "sise = 3",              // 12
        "mode = \"session\"",    // 13
        "timeout = 1",           // 14
        "[extra]",               // 15
    ]);
    let errs = errors(&text);
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(errs[0]
        .starts_with("8:1: unknown key `replica`, expected one of `name`, `url`, `replicas`"));
    assert!(errs[1].starts_with("10:1: unknown key `lisen`"));
    assert!(errs[2].starts_with("12:1: unknown key `sise`"));
    assert!(errs[3].starts_with("14:1: unknown key `timeout`"));
    assert!(errs[4].starts_with("15:2: unknown section `extra`"));
}

#[test]
fn wrong_value_types_and_missing_keys() {
    let text = file(&[
        "[proxy]",
        "listen = 6432", // 2:10
        "[[shards]]",    // 3: missing url
        "name = \"s0\"",
    ]);
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].starts_with("2:10: invalid type: integer `6432`, expected a string"));
    assert!(errs[1].starts_with("3:1: missing key `url`"), "{}", errs[1]);
}

#[test]
fn no_shards() {
    one_error("[proxy]\nlisten = \"127.0.0.1:1\"\n", "1:1", "no shards");
    let errs = errors("x = 1\nshards = []\n");
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].starts_with("1:1: unknown section `x`"));
    assert!(errs[1].starts_with("2:1: no shards"));
    let errs = errors("shards = []\n");
    assert_eq!(
        errs,
        vec!["1:1: no shards: add at least one [[shards]] entry with a name and url"]
    );
}

#[test]
fn duplicate_shard_names() {
    let mut lines = SHARDS.to_vec();
    lines[5] = "name = \"s0\"";
    one_error(
        &file(&lines),
        "6:8",
        "duplicate shard name \"s0\" (first defined at 2:8)",
    );
}

#[test]
fn bad_shard_names_and_urls() {
    let mut lines = SHARDS.to_vec();
    lines[1] = "name = \"s 0\"";
    lines[6] = "url = \"mysql://u@h/db\"";
    let errs = errors(&file(&lines));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with("2:8: shard name \"s 0\" must be"),
        "{}",
        errs[0]
    );
    assert!(errs[1].starts_with("7:7: invalid shard url: a shard URL must start with postgres://"));
    let text = with_shards(&[
        "replicas = [\"postgres://u@h3/db\", \"postgres://u@h4/db?sslmode=require\"]",
    ]);
    one_error(
        &text,
        &p(&text, 8, "\"postgres://u@h4"),
        "invalid replica url: sslmode=require is not supported",
    );
}

#[test]
fn hash_map_errors() {
    let text = with_shards(&[
        "[maps.m]",                                 // 8
        "strategy = \"hash\"",                      // 9
        "key_type = \"bigint\"",                    // 10
        "buckets = 8",                              // 11
        "assign = [",                               // 12
        "  { buckets = \"0-3\", shard = \"s0\" },", // 13
        "  { buckets = \"3-5\", shard = \"s1\" },", // 14: bucket 3 twice
        "  { buckets = \"6-8\", shard = \"s1\" },", // 15: 8 out of range
        "  { buckets = 7, shard = \"s9\" },",       // 16: unknown shard
        "]",
    ]);
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert_eq!(
        errs[0],
        "14:15: bucket 3 is assigned twice (already assigned at 13:15)"
    );
    assert!(errs[1].starts_with("15:15: \"6-8\" is not a bucket or bucket range within 0-7"));
    assert_eq!(errs[2], "16:26: unknown shard \"s9\" (shards are: s0, s1)");
}

#[test]
fn buckets_not_fully_assigned() {
    let text = with_shards(&[
        "[maps.m]",
        "strategy = \"hash\"",
        "key_type = \"text\"",
        "buckets = 1024",
        "assign = [ { buckets = \"0-500\", shard = \"s0\" }, { buckets = \"512-1000\", shard = \"s1\" } ]",
    ]);
    one_error(
        &text,
        "12:10",
        "buckets 501-511, 1001-1023 of map \"m\" are not assigned to any shard",
    );
}

#[test]
fn zero_and_missing_buckets() {
    let map = |buckets: &'static str| {
        with_shards(&[
            "[maps.m]",
            "strategy = \"hash\"",
            "key_type = \"uuid\"",
            buckets,
        ])
    };
    one_error(
        &map("buckets = 0"),
        "11:11",
        "buckets must be between 1 and 1048576, not 0",
    );
    one_error(&map("buckets = -5"), "11:11", "not -5");
    one_error(&map(""), "8:7", "hash map \"m\" needs `buckets`");
}

#[test]
fn keys_of_another_strategy() {
    let text = with_shards(&[
        "[maps.m]",
        "strategy = \"hash\"",
        "key_type = \"bigint\"",
        "buckets = 4",
        "ranges = [ { from = 0, shard = \"s0\" } ]",
        "default = \"s1\"",
    ]);
    let errs = errors(&text);
    assert_eq!(
        errs,
        vec![
            "12:10: `ranges` belongs to range maps, not to a hash map",
            "13:11: `default` belongs to list maps, not to a hash map",
        ]
    );
    let text = with_shards(&[
        "[maps.r]",
        "strategy = \"range\"",
        "key_type = \"bigint\"",
        "buckets = 4",
        "ranges = [ { from = 0, shard = \"s0\" } ]",
    ]);
    one_error(
        &text,
        "11:11",
        "`buckets` belongs to hash maps, not to a range map",
    );
}

#[test]
fn unknown_strategy_and_key_type() {
    let text = with_shards(&["[maps.m]", "strategy = \"modulo\"", "key_type = \"int\""]);
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].starts_with("9:12: unknown strategy \"modulo\""));
    assert!(errs[1].starts_with("10:12: unknown key_type \"int\""));
}

#[test]
fn overlapping_bigint_ranges_use_numeric_order() {
    let ranges = |r: &'static str| {
        with_shards(&[
            "[maps.e]",
            "strategy = \"range\"",
            "key_type = \"bigint\"",
            r,
        ])
    };
    // 9 < 10 numerically (as text "10" < "9"): adjacent, not overlapping.
    let ok = ranges("ranges = [ { to = 9, shard = \"s0\" }, { from = 10, shard = \"s1\" }, { from = 9, to = 10, shard = \"s0\" } ]");
    assert!(Config::parse(&ok, "t.toml").is_ok());
    let bad = ranges(
        "ranges = [ { from = 100, shard = \"s1\" }, { from = 2, to = 101, shard = \"s0\" } ]",
    );
    one_error(
        &bad,
        &p(&bad, 11, "{ from = 2,"),
        "range [2, 101) overlaps range [100, ..) at 11:12",
    );
    let bad = ranges("ranges = [ { shard = \"s1\" }, { from = -5, to = 5, shard = \"s0\" } ]");
    one_error(
        &bad,
        &p(&bad, 11, "{ from = -5"),
        "range [-5, 5) overlaps range [.., ..) at 11:12",
    );
    let empty = ranges("ranges = [ { from = 5, to = 5, shard = \"s0\" } ]");
    one_error(
        &empty,
        "11:12",
        "empty range: `from` (5) must be less than `to` (5)",
    );
    one_error(
        &ranges("ranges = []"),
        "11:10",
        "needs at least one entry in `ranges`",
    );
}

#[test]
fn overlapping_text_ranges_use_byte_order() {
    let ranges = |r: &'static str| {
        with_shards(&["[maps.e]", "strategy = \"range\"", "key_type = \"text\"", r])
    };
    // "B" < "a" in byte order, so ["B", "c") reaches into ["a", "m").
    let bad = ranges("ranges = [ { from = \"a\", to = \"m\", shard = \"s0\" }, { from = \"B\", to = \"c\", shard = \"s1\" } ]");
    one_error(
        &bad,
        &p(&bad, 11, "{ from = \"B\""),
        "range [\"B\", \"c\") overlaps range [\"a\", \"m\") at 11:12",
    );
    let ok = ranges("ranges = [ { from = \"a\", shard = \"s0\" }, { from = \"B\", to = \"a\", shard = \"s1\" } ]");
    assert!(Config::parse(&ok, "t.toml").is_ok());
}

#[test]
fn range_bounds_of_the_wrong_type() {
    let map = |key_type: &'static str, ranges: &'static str| {
        with_shards(&["[maps.e]", "strategy = \"range\"", key_type, ranges])
    };
    let text = map(
        "key_type = \"bigint\"",
        "ranges = [ { from = \"5\", to = 9, shard = \"s0\" }, { from = 9, to = 8, shard = \"s1\" } ]",
    );
    let errs = errors(&text);
    assert_eq!(
        errs,
        vec![
            format!(
                "{}: range bound `from` must be an integer for a bigint map, found a string \"5\"",
                p(&text, 11, "\"5\"")
            ),
            format!(
                "{}: empty range: `from` (9) must be less than `to` (8)",
                p(&text, 11, "{ from = 9")
            ),
        ]
    );
    // A float is no key at all: a shape error, reported alone for this map.
    let text = map(
        "key_type = \"bigint\"",
        "ranges = [ { from = 1.5, shard = \"s1\" } ]",
    );
    one_error(
        &text,
        &p(&text, 11, "1.5"),
        "invalid type: floating point `1.5`, expected an integer or a string",
    );
    let text = map(
        "key_type = \"uuid\"",
        "ranges = [ { to = 7, shard = \"s0\" }, { from = \"not-a-uuid\", shard = \"s1\" } ]",
    );
    let errs = errors(&text);
    assert_eq!(
        errs,
        vec![
            format!(
                "{}: range bound `to` must be a string for a uuid map, found an integer 7",
                p(&text, 11, "7")
            ),
            format!(
                "{}: \"not-a-uuid\" is not a uuid",
                p(&text, 11, "\"not-a-uuid")
            ),
        ]
    );
}

#[test]
fn list_errors() {
    let text = with_shards(&[
        "[maps.region]",                                       // 8
        "strategy = \"list\"",                                 // 9
        "key_type = \"text\"",                                 // 10
        "lists = [",                                           // 11
        "  { values = [\"KR\", \"JP\"], shard = \"s0\" },",    // 12
        "  { values = [\"US\", \"KR\", 5], shard = \"s1\" },", // 13
        "  { values = [\"JP\"], shard = \"s0\" },",            // 14
        "]",                                                   // 15
        "default = \"s7\"",                                    // 16
    ]);
    let errs = errors(&text);
    assert_eq!(p(&text, 13, "\"KR\""), "13:21");
    assert_eq!(p(&text, 13, "5]"), "13:27");
    assert_eq!(
        errs,
        vec![
            "13:21: value \"KR\" is on two shards: s0 (at 12:15) and s1",
            "13:27: list value must be a string for a text map, found an integer 5",
            "14:15: value \"JP\" is listed twice (first at 12:21)",
            "16:11: unknown shard \"s7\" (shards are: s0, s1)",
        ]
    );
}

#[test]
fn uuid_list_values_match_in_any_spelling() {
    let text = with_shards(&[
        "[maps.u]",
        "strategy = \"list\"",
        "key_type = \"uuid\"",
        "lists = [",
        "  { values = [\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"], shard = \"s0\" },",
        "  { values = [\"A0EEBC999C0B4EF8BB6D6BB9BD380A11\"], shard = \"s1\" },",
        "]",
    ]);
    one_error(
        &text,
        "13:15",
        "value a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 is on two shards: s0 (at 12:15) and s1",
    );
}

#[test]
fn list_value_types() {
    let text = with_shards(&[
        "[maps.n]",
        "strategy = \"list\"",
        "key_type = \"bigint\"",
        "lists = [ { values = [1, \"2\", true], shard = \"s0\" } ]",
    ]);
    // A bool is a shape error (serde), so the map stops there; "2" would be the next problem.
    one_error(
        &text,
        &p(&text, 11, "true"),
        "invalid type: boolean `true`, expected an integer or a string",
    );
    let text = with_shards(&[
        "[maps.n]",
        "strategy = \"list\"",
        "key_type = \"bigint\"",
        "lists = [ { values = [1, \"2\"], shard = \"s0\" } ]",
    ]);
    one_error(
        &text,
        &p(&text, 11, "\"2\""),
        "list value must be an integer for a bigint map, found a string \"2\"",
    );
}

#[test]
fn table_errors() {
    let text = with_shards(&[
        "[maps.users]",                                               // 8
        "strategy = \"hash\"",                                        // 9
        "key_type = \"bigint\"",                                      // 10
        "buckets = 16",                                               // 11
        "[tables]",                                                   // 12
        "users = { map = \"users\", key = \"id\" }",                  // 13
        "\"public.users\" = { map = \"users\", key = \"id\" }",       // 14: same table
        "USERS = { reference = true }",                               // 15: same table again
        "orders = { map = \"orderz\", key = \"user_id\" }",           // 16: unknown map
        "both = { map = \"users\", key = \"id\", reference = true }", // 17
        "'\"Users\"' = { map = \"users\", key = '\"Id\"' }", // 18: quoted: a different table
        "nokey = { map = \"users\" }",                       // 19
        "\"bad name\" = { reference = true }",               // 20
    ]);
    let errs = errors(&text);
    assert_eq!(
        errs,
        vec![
            "14:1: table \"public.users\" is configured twice: \"users\" at 13:1 names the same table",
            "15:1: table \"USERS\" is configured twice: \"users\" at 13:1 names the same table",
            "16:18: unknown map \"orderz\" (maps are: users)",
            "17:49: table \"both\" has both `map`/`key` and `reference`: a table is either sharded (map + key) or a reference table (reference = true)",
            "19:1: table \"nokey\" needs `key`: the shard key column",
            "20:1: invalid table name \"bad name\": \"bad name\" is not a plain SQL name; to use it as written, put it in double quotes inside the TOML key, like '\"bad name\"'",
        ]
    );
}

#[test]
fn auth_errors() {
    let text = with_shards(&[
        "[auth]",                                  // 8
        "method = \"password\"",                   // 9
        "users = [",                               // 10
        "  { name = \"app\", password = \"a\" },", // 11
        "  { name = \"app\", password = \"b\" },", // 12
        "  { name = \"ro\" },",                    // 13
        "]",
    ]);
    let errs = errors(&text);
    assert_eq!(
        errs,
        vec![
            "9:10: unknown auth method \"password\": expected \"scram-sha-256\", \"md5\" or \"trust\"",
            "12:12: user \"app\" is listed twice (first at 11:12)",
            "13:3: user \"ro\" needs a password (method scram-sha-256)",
        ]
    );
    one_error(
        &with_shards(&["[auth]", "method = \"md5\""]),
        "9:10",
        "method md5 needs at least one entry in `users`",
    );
    let trust = with_shards(&[
        "[auth]",
        "method = \"trust\"",
        "users = [ { name = \"ro\" } ]",
    ]);
    let config = Config::parse(&trust, "t.toml").unwrap();
    assert_eq!(config.auth.users[0].password, "");
    assert!(!config.auth.accepts_any_user());
}

#[test]
fn pool_and_proxy_errors() {
    let text = with_shards(&[
        "[pool]",                      // 8
        "size = 0",                    // 9
        "mode = \"statement\"",        // 10
        "checkout_timeout_ms = -1",    // 11
        "[proxy]",                     // 12
        "listen = \"localhost:6432\"", // 13
        "max_message_bytes = 10",      // 14
        "admin_token = \"\"",          // 15
    ]);
    let errs = errors(&text);
    assert_eq!(
        errs,
        vec![
            "9:8: pool size must be between 1 and 100000, not 0",
            "10:8: unknown pool mode \"statement\": expected \"transaction\" or \"session\"",
            "11:23: checkout_timeout_ms must be between 1 and 86400000, not -1",
            "13:10: listen \"localhost:6432\" is not an IP:port address (like 127.0.0.1:6432; host names are not accepted)",
            "14:21: max_message_bytes must be between 1024 and 1073741824, not 10",
            "15:15: admin_token must not be empty",
        ]
    );
}

#[test]
fn every_error_is_reported_in_one_pass() {
    let mut lines = SHARDS.to_vec();
    lines[5] = "name = \"s0\""; // duplicate shard name at 6:8
    lines.extend_from_slice(&[
        "[pool]",                                               // 8
        "size = 0",                                             // 9
        "[maps.m]",                                             // 10
        "strategy = \"hash\"",                                  // 11
        "key_type = \"bigint\"",                                // 12
        "buckets = 4",                                          // 13
        "assign = [ { buckets = \"0-3\", shard = \"nope\" } ]", // 14
        "[tables]",                                             // 15
        "t = { map = \"m\" }",                                  // 16
    ]);
    let errs = errors(&file(&lines));
    let positions: Vec<&str> = errs.iter().map(|e| e.split(": ").next().unwrap()).collect();
    let text = file(&lines);
    let nope = p(&text, 14, "\"nope\"");
    assert_eq!(
        positions,
        vec!["6:8", "9:8", nope.as_str(), "16:1"],
        "{errs:#?}"
    );
}

#[test]
fn dotted_table_keys_are_schema_qualified_names() {
    let text = with_shards(&[
        "[tables]",
        "public.countries = { reference = true }",
        "countries = { reference = true }",
    ]);
    one_error(
        &text,
        "10:1",
        "table \"countries\" is configured twice: \"public.countries\" at 9:8",
    );
}
