//! `[tables]` validation and SQL name folding.
//!
//! Names follow PostgreSQL: unquoted names are folded to lower case, names in double quotes keep
//! their case (`'"MixedCase"' = {...}` in TOML), and a schema qualifier is dropped, so
//! `public.users`, `Users` and `users` are all the same table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use toml::Spanned;

use crate::error::Reporter;
use crate::raw::RawTable;
use crate::TableConfig;

/// PostgreSQL silently truncates longer identifiers (NAMEDATALEN - 1), so they would never match.
const MAX_IDENT_BYTES: usize = 63;

/// Validates every table entry; `maps` is `None` when the maps could not be read, in which case
/// map names are not checked (that would only repeat the maps' own errors).
pub(crate) fn validate_tables(
    raw: &[(Spanned<String>, RawTable)],
    maps: Option<&BTreeSet<&str>>,
    rep: &mut Reporter<'_>,
) -> BTreeMap<String, TableConfig> {
    let mut tables = BTreeMap::new();
    let mut seen: HashMap<String, (String, Range<usize>)> = HashMap::new();
    // Later entries are checked against earlier ones in file order.
    let mut ordered: Vec<&(Spanned<String>, RawTable)> = raw.iter().collect();
    ordered.sort_by_key(|(name, _)| name.span().start);
    for (name, entry) in ordered {
        let folded = match table_name(name.get_ref()) {
            Ok(n) => Some(n),
            Err(e) => {
                rep.error(
                    &name.span(),
                    format!("invalid table name {:?}: {e}", name.get_ref()),
                );
                None
            }
        };
        let config = table_entry(name, entry, maps, rep);
        let Some(folded) = folded else { continue };
        if let Some((first_written, first)) = seen.get(&folded) {
            rep.error(
                &name.span(),
                format!(
                    "table {:?} is configured twice: {:?} at {} names the same table",
                    name.get_ref(),
                    first_written,
                    rep.place(first)
                ),
            );
            continue;
        }
        seen.insert(folded.clone(), (name.get_ref().clone(), name.span()));
        if let Some(config) = config {
            tables.insert(folded, config);
        }
    }
    tables
}

/// One entry: `{ map, key }` or `{ reference = true }`.
fn table_entry(
    name: &Spanned<String>,
    entry: &RawTable,
    maps: Option<&BTreeSet<&str>>,
    rep: &mut Reporter<'_>,
) -> Option<TableConfig> {
    let table = name.get_ref();
    match (&entry.map, &entry.key, &entry.reference) {
        (Some(_), _, Some(r)) | (_, Some(_), Some(r)) => {
            rep.error(
                &r.span(),
                format!(
                    "table {table:?} has both `map`/`key` and `reference`: a table is either \
                     sharded (map + key) or a reference table (reference = true)"
                ),
            );
            None
        }
        (None, None, Some(r)) if *r.get_ref() => Some(TableConfig::Reference),
        (None, None, Some(r)) => {
            rep.error(
                &r.span(),
                format!(
                    "table {table:?} has reference = false: give `map` and `key` instead, or \
                     leave the table out to keep it on the default shard"
                ),
            );
            None
        }
        (None, None, None) => {
            rep.error(
                &name.span(),
                format!("table {table:?} needs `map` and `key`, or `reference = true`"),
            );
            None
        }
        (None, Some(_), None) => {
            rep.error(
                &name.span(),
                format!("table {table:?} has a `key` but no `map`"),
            );
            None
        }
        (Some(map), key, None) => {
            let map_ok = match maps {
                Some(maps) if !maps.contains(map.get_ref().as_str()) => {
                    let known: Vec<&str> = maps.iter().copied().collect();
                    rep.error(
                        &map.span(),
                        format!(
                            "unknown map {:?} (maps are: {})",
                            map.get_ref(),
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                    false
                }
                _ => true,
            };
            let Some(key) = key else {
                rep.error(
                    &name.span(),
                    format!("table {table:?} needs `key`: the shard key column"),
                );
                return None;
            };
            let column = match sql_name_parts(key.get_ref()) {
                Ok(parts) if parts.len() == 1 => parts.into_iter().next(),
                Ok(_) => {
                    rep.error(
                        &key.span(),
                        "the key is a column name, without a table or schema",
                    );
                    None
                }
                Err(e) => {
                    rep.error(
                        &key.span(),
                        format!("invalid key column {:?}: {e}", key.get_ref()),
                    );
                    None
                }
            };
            let column = column.filter(|_| map_ok)?;
            Some(TableConfig::Sharded {
                map: map.get_ref().clone(),
                key: column,
            })
        }
    }
}

/// The folded, unqualified table name of `[schema.]table`.
pub(crate) fn table_name(written: &str) -> Result<String, String> {
    let parts = sql_name_parts(written)?;
    if parts.len() > 2 {
        return Err("expected table or schema.table".to_owned());
    }
    parts
        .into_iter()
        .last()
        .ok_or_else(|| "empty name".to_owned())
}

/// Splits a dotted SQL name, folding unquoted parts to lower case as PostgreSQL does.
pub(crate) fn sql_name_parts(written: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = written.chars().peekable();
    loop {
        let part = if chars.peek() == Some(&'"') {
            chars.next();
            let mut p = String::new();
            loop {
                match chars.next() {
                    None => return Err("a double quote is not closed".to_owned()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        p.push('"');
                    }
                    Some('"') => break,
                    Some(c) => p.push(c),
                }
            }
            if p.is_empty() {
                return Err("a quoted name is empty".to_owned());
            }
            p
        } else {
            let mut p = String::new();
            while let Some(&c) = chars.peek() {
                if c == '.' || c == '"' {
                    break;
                }
                p.push(c);
                chars.next();
            }
            check_unquoted(&p)?;
            p.to_ascii_lowercase()
        };
        if part.len() > MAX_IDENT_BYTES {
            return Err(format!(
                "{part:?} is longer than PostgreSQL's {MAX_IDENT_BYTES}-byte limit"
            ));
        }
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => {}
            Some(c) => return Err(format!("unexpected {c:?} after a quoted name")),
        }
    }
}

/// PostgreSQL's rule for unquoted identifiers (non-ASCII letters are allowed, as there).
fn check_unquoted(part: &str) -> Result<(), String> {
    let mut chars = part.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || !c.is_ascii());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii());
    if part.is_empty() {
        Err("a name part is empty".to_owned())
    } else if first_ok && rest_ok {
        Ok(())
    } else {
        Err(format!(
            "{part:?} is not a plain SQL name; to use it as written, put it in double quotes \
             inside the TOML key, like '\"{part}\"'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_and_schema_stripping() {
        assert_eq!(table_name("users").unwrap(), "users");
        assert_eq!(table_name("Users").unwrap(), "users");
        assert_eq!(table_name("public.users").unwrap(), "users");
        assert_eq!(table_name("PUBLIC.USERS").unwrap(), "users");
        assert_eq!(table_name("\"MixedCase\"").unwrap(), "MixedCase");
        assert_eq!(table_name("public.\"MixedCase\"").unwrap(), "MixedCase");
        assert_eq!(table_name("\"My.Schema\".t").unwrap(), "t");
        assert_eq!(table_name("\"a\"\"b\"").unwrap(), "a\"b");
        assert_eq!(table_name("_t$1").unwrap(), "_t$1");
        assert_eq!(table_name("café").unwrap(), "café");
    }

    #[test]
    fn bad_names() {
        for bad in [
            "", "a.", ".a", "a..b", "1abc", "a b", "a-b", "\"\"", "\"abc", "\"a\"b", "a.b.c",
            "a\"b\"",
        ] {
            assert!(table_name(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(table_name(&"x".repeat(64)).is_err());
        assert!(table_name(&"x".repeat(63)).is_ok());
    }

    #[test]
    fn key_columns() {
        assert_eq!(sql_name_parts("User_ID").unwrap(), vec!["user_id"]);
        assert_eq!(sql_name_parts("\"UserId\"").unwrap(), vec!["UserId"]);
    }
}
