//! Session state that must follow a client across pooled backends: parameters changed by `SET`
//! (and startup parameters), and statements whose session-level effects cannot be replayed,
//! which pin the backend to the client.
//!
//! Detection works on a light lexer ([`super::lexer`]) so it costs next to nothing on ordinary
//! statements; full SQL analysis belongs to the router.

use std::hash::{Hash, Hasher};

pub(crate) use super::lexer::{split_statements, Token};

/// Session parameters, sorted by name, values as SQL text ready for `SET name TO value`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamSet {
    params: Vec<(String, String)>,
    hash: u64,
}

impl ParamSet {
    /// Sets `name` (lower-cased) to the SQL text `value`.
    pub fn set(&mut self, name: &str, value: &str) {
        let name = name.to_ascii_lowercase();
        match self.params.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(i) => self.params[i].1 = value.to_string(),
            Err(i) => self.params.insert(i, (name, value.to_string())),
        }
        self.rehash();
    }

    /// Removes `name` (back to the server default).
    pub fn reset(&mut self, name: &str) {
        let name = name.to_ascii_lowercase();
        self.params.retain(|(n, _)| *n != name);
        self.rehash();
    }

    /// Removes every parameter.
    pub fn clear(&mut self) {
        self.params.clear();
        self.rehash();
    }

    /// The SQL value text of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All parameters, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Cheap equality check for the hot path.
    pub fn same_as(&self, other: &ParamSet) -> bool {
        self.hash == other.hash && self.params == other.params
    }

    fn rehash(&mut self) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.params.hash(&mut h);
        self.hash = h.finish();
    }

    /// Applies one change.
    pub fn apply(&mut self, change: &ParamChange) {
        match change {
            ParamChange::Set(n, v) => self.set(n, v),
            ParamChange::Reset(n) => self.reset(n),
            ParamChange::ResetAll => self.clear(),
        }
    }

    /// SQL turning a backend whose parameters are `from` into one with `self`'s, or None if equal.
    pub fn sync_sql(&self, from: &ParamSet) -> Option<String> {
        if self.same_as(from) {
            return None;
        }
        let mut sql = String::new();
        for (name, _) in from.iter() {
            if self.get(name).is_none() {
                sql.push_str(&format!("RESET {};", quote_ident(name)));
            }
        }
        for (name, value) in self.iter() {
            if from.get(name) != Some(value) {
                sql.push_str(&format!("SET {} TO {};", quote_ident(name), value));
            }
        }
        Some(sql)
    }
}

/// Quotes a GUC name when it is not a plain identifier (e.g. custom `my.setting` stays as is).
fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Quotes a plain string as an SQL literal (for startup parameters).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A change to the session parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamChange {
    /// `SET name TO value` (value as SQL text).
    Set(String, String),
    /// `RESET name` / `SET name TO DEFAULT`.
    Reset(String),
    /// `RESET ALL` / `DISCARD ALL`.
    ResetAll,
}

/// What a statement text does to session state beyond its own transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionEffects {
    /// Parameter changes outside any transaction block this text opens (or in blocks it
    /// commits), in order. They belong to the session's current transaction, if any.
    pub changes: Vec<ParamChange>,
    /// Changes inside a transaction block this text opens and leaves open: undone if that
    /// transaction rolls back.
    pub block_changes: Vec<ParamChange>,
    /// Creates state we cannot replay on another backend (LISTEN, temp tables, SQL PREPARE,
    /// WITH HOLD cursors, session advisory locks): keep this backend for the rest of the session.
    pub pins: bool,
    /// `DISCARD ALL` / `DEALLOCATE ALL`: server-side prepared statements are gone.
    pub drops_prepared: bool,
}

impl SessionEffects {
    /// True when the statement has no session-level effect (the common case).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
            && self.block_changes.is_empty()
            && !self.pins
            && !self.drops_prepared
    }
}

/// Finds the session-level effects of a (possibly multi-statement) SQL text.
pub fn analyze(sql: &str) -> SessionEffects {
    if is_plain_statement(sql) {
        return SessionEffects::default();
    }
    let mut effects = SessionEffects::default();
    if contains_ignore_case(sql, "advisory_lock") && !contains_ignore_case(sql, "advisory_xact") {
        effects.pins = true;
    }
    // Changes made inside BEGIN ... in this same text: kept at COMMIT, dropped at ROLLBACK.
    let mut block: Option<Vec<ParamChange>> = None;
    for stmt in split_statements(sql) {
        let word = |i: usize| match stmt.get(i) {
            Some(Token::Word(w)) => Some(w.to_ascii_lowercase()),
            _ => None,
        };
        let first = word(0);
        match first.as_deref() {
            Some("begin") | Some("start") => {
                block.get_or_insert_with(Vec::new);
                continue;
            }
            Some("commit") | Some("end") if word(1).as_deref() != Some("prepared") => {
                if let Some(changes) = block.take() {
                    effects.changes.extend(changes);
                }
                continue;
            }
            Some("rollback") | Some("abort")
                if !matches!(word(1).as_deref(), Some("to") | Some("prepared"))
                    && word(2).as_deref() != Some("to") =>
            {
                block = None;
                continue;
            }
            _ => {}
        }
        let mut changes = Vec::new();
        analyze_statement(&stmt, &mut changes, &mut effects);
        match block.as_mut() {
            Some(b) => b.extend(changes),
            None => effects.changes.extend(changes),
        }
    }
    if let Some(changes) = block {
        effects.block_changes = changes;
    }
    effects
}

/// Fast path for the per-query hot path: one statement (no `;` before trailing blanks) that
/// starts with a keyword that never changes session state and mentions no advisory lock.
fn is_plain_statement(sql: &str) -> bool {
    let body = sql.trim_end_matches(|c: char| c.is_ascii_whitespace() || c == ';');
    if body.contains(';') {
        return false;
    }
    let first = body
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    const PLAIN: [&str; 13] = [
        "select", "insert", "update", "delete", "with", "values", "table", "begin", "commit",
        "rollback", "end", "start", "show",
    ];
    PLAIN.iter().any(|k| first.eq_ignore_ascii_case(k)) && !contains_ignore_case(body, "advisory")
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn analyze_statement(
    tokens: &[Token<'_>],
    changes: &mut Vec<ParamChange>,
    fx: &mut SessionEffects,
) {
    let word = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) => Some(w.to_ascii_lowercase()),
        _ => None,
    };
    let Some(first) = word(0) else { return };
    match first.as_str() {
        "set" => {
            let mut i = 1;
            if word(i).as_deref() == Some("session") {
                i += 1;
                match word(i).as_deref() {
                    Some("characteristics") => {
                        fx.pins = true;
                        return;
                    }
                    Some("authorization") => {
                        set_value(tokens, i + 1, "session_authorization", changes);
                        return;
                    }
                    _ => {}
                }
            }
            match word(i).as_deref() {
                None | Some("local") | Some("transaction") | Some("constraints") => {}
                Some("time") if word(i + 1).as_deref() == Some("zone") => {
                    set_value(tokens, i + 2, "timezone", changes)
                }
                Some("role") => set_value(tokens, i + 1, "role", changes),
                Some(name) => {
                    let mut name = name.to_string();
                    let mut j = i + 1;
                    // dotted custom parameters: my.setting
                    while matches!(tokens.get(j), Some(Token::Punct('.'))) {
                        if let Some(part) = word(j + 1) {
                            name.push('.');
                            name.push_str(&part);
                            j += 2;
                        } else {
                            break;
                        }
                    }
                    match tokens.get(j) {
                        Some(Token::Word(w)) if w.eq_ignore_ascii_case("to") => {
                            set_value(tokens, j + 1, &name, changes)
                        }
                        Some(Token::Punct('=')) => set_value(tokens, j + 1, &name, changes),
                        _ => {}
                    }
                }
            }
        }
        "reset" => match word(1).as_deref() {
            Some("all") => changes.push(ParamChange::ResetAll),
            Some("session") => changes.push(ParamChange::Reset("session_authorization".into())),
            Some("time") => changes.push(ParamChange::Reset("timezone".into())),
            Some(name) => changes.push(ParamChange::Reset(name.to_string())),
            None => {}
        },
        "discard" => match word(1).as_deref() {
            Some("all") => {
                changes.push(ParamChange::ResetAll);
                fx.drops_prepared = true;
            }
            Some("temp") | Some("temporary") | Some("plans") | Some("sequences") => {}
            _ => {}
        },
        "deallocate" => {
            fx.drops_prepared |= tokens
                .iter()
                .any(|t| matches!(t, Token::Word(w) if w.eq_ignore_ascii_case("all")))
        }
        "listen" | "prepare" | "load" => fx.pins = true,
        "declare" => {
            let hold = tokens.windows(2).any(|w| {
                matches!((&w[0], &w[1]), (Token::Word(a), Token::Word(b))
                    if a.eq_ignore_ascii_case("with") && b.eq_ignore_ascii_case("hold"))
            });
            fx.pins |= hold;
        }
        "create" => {
            let temp = tokens.iter().take(4).any(|t| {
                matches!(t, Token::Word(w) if w.eq_ignore_ascii_case("temp") || w.eq_ignore_ascii_case("temporary"))
            });
            fx.pins |= temp;
        }
        _ => {}
    }
}

/// Records `SET name TO <tokens from i>`; `DEFAULT` means reset.
fn set_value(tokens: &[Token<'_>], i: usize, name: &str, changes: &mut Vec<ParamChange>) {
    let Some(rest) = tokens.get(i..) else { return };
    if rest.is_empty() {
        return;
    }
    if let [Token::Word(w)] = rest {
        if w.eq_ignore_ascii_case("default") {
            changes.push(ParamChange::Reset(name.to_string()));
            return;
        }
    }
    let mut value = String::new();
    for (k, t) in rest.iter().enumerate() {
        let text = t.text();
        let glue = matches!(t, Token::Punct(',')) || k == 0;
        if !glue {
            value.push(' ');
        }
        value.push_str(&text);
    }
    changes.push(ParamChange::Set(name.to_ascii_lowercase(), value));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(sql: &str) -> Vec<ParamChange> {
        analyze(sql).changes
    }

    #[test]
    fn detects_set_forms() {
        use ParamChange::*;
        assert_eq!(
            changes("SET search_path TO a, b"),
            vec![Set("search_path".into(), "a, b".into())]
        );
        assert_eq!(
            changes("set statement_timeout = '5s';"),
            vec![Set("statement_timeout".into(), "'5s'".into())]
        );
        assert_eq!(
            changes("SET SESSION DateStyle TO ISO"),
            vec![Set("datestyle".into(), "ISO".into())]
        );
        assert_eq!(
            changes("SET TIME ZONE 'UTC'"),
            vec![Set("timezone".into(), "'UTC'".into())]
        );
        assert_eq!(
            changes("SET my.opt = 3"),
            vec![Set("my.opt".into(), "3".into())]
        );
        assert_eq!(
            changes("SET work_mem TO DEFAULT"),
            vec![Reset("work_mem".into())]
        );
        assert_eq!(changes("RESET work_mem"), vec![Reset("work_mem".into())]);
        assert_eq!(changes("RESET ALL"), vec![ResetAll]);
        assert_eq!(changes("SET LOCAL work_mem = '1MB'"), vec![]);
        assert_eq!(
            changes("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
            vec![]
        );
        assert_eq!(changes("select 'SET x = 1'; -- SET y = 2\n"), vec![]);
        assert_eq!(
            analyze("BEGIN; SET a = 1; SELECT $$;SET b=2$$; set c to 'x;y'").block_changes,
            vec![Set("a".into(), "1".into()), Set("c".into(), "'x;y'".into())]
        );
    }

    #[test]
    fn set_inside_a_block_of_the_same_text() {
        use ParamChange::*;
        let fx = analyze("BEGIN; SET TIME ZONE 'UTC'");
        assert!(fx.changes.is_empty());
        assert_eq!(
            fx.block_changes,
            vec![Set("timezone".into(), "'UTC'".into())]
        );
        let fx = analyze("BEGIN; SET a = 1; COMMIT");
        assert_eq!(fx.changes, vec![Set("a".into(), "1".into())]);
        assert!(fx.block_changes.is_empty());
        let fx = analyze("SET a = 1; BEGIN; SET b = 2; ROLLBACK");
        assert_eq!(fx.changes, vec![Set("a".into(), "1".into())]);
        assert!(fx.block_changes.is_empty());
        let fx = analyze("BEGIN; SET b = 2; ROLLBACK TO SAVEPOINT s");
        assert_eq!(fx.block_changes, vec![Set("b".into(), "2".into())]);
    }

    #[test]
    fn detects_pinning_statements() {
        assert!(analyze("LISTEN chan").pins);
        assert!(analyze("create temp table t(x int)").pins);
        assert!(analyze("CREATE TEMPORARY TABLE t(x int)").pins);
        assert!(analyze("PREPARE p AS SELECT 1").pins);
        assert!(analyze("DECLARE c CURSOR WITH HOLD FOR SELECT 1").pins);
        assert!(analyze("SELECT pg_advisory_lock(1)").pins);
        assert!(!analyze("SELECT pg_advisory_xact_lock(1)").pins);
        assert!(!analyze("DECLARE c CURSOR FOR SELECT 1").pins);
        assert!(!analyze("CREATE TABLE t(x int)").pins);
        assert!(analyze("DISCARD ALL").drops_prepared);
    }

    #[test]
    fn sync_sql_diffs() {
        let mut a = ParamSet::default();
        let mut b = ParamSet::default();
        assert_eq!(a.sync_sql(&b), None);
        a.set("application_name", "'psql'");
        b.set("work_mem", "'1MB'");
        assert_eq!(
            a.sync_sql(&b).unwrap(),
            "RESET work_mem;SET application_name TO 'psql';"
        );
        b.reset("work_mem");
        b.set("Application_Name", "'psql'");
        assert!(a.same_as(&b));
    }

    #[test]
    fn fast_path_only_for_plain_statements() {
        assert!(is_plain_statement(
            "SELECT abalance FROM pgbench_accounts WHERE aid = 5;"
        ));
        assert!(is_plain_statement("  update t set x = 1  ;  "));
        assert!(!is_plain_statement("SELECT 1; SET x = 1"));
        assert!(!is_plain_statement("select pg_advisory_lock(1)"));
        assert!(!is_plain_statement("SET x = 1"));
        assert!(!is_plain_statement("/* c */ SET x = 1"));
        assert_eq!(analyze("SELECT 1; SET a = 1").changes.len(), 1);
    }

    #[test]
    fn lexer_survives_garbage() {
        for s in [
            "'", "\"", "$$", "$a$ x", "/* /* */", "E'\\", "$1", "é;ü", "--",
        ] {
            let _ = analyze(s);
        }
    }
}
