//! Statements other than queries and DML: DDL, and the token rule (INTERFACE.md section 4) for
//! statements the parser cannot read or the router does not look into.

use sqlparser::ast::{CommentObject, ObjectName, ObjectType};
use sqlparser::tokenizer::TokenWithSpan;

use super::names::{classify, leading_words, named_tables, TableClass, TableName};
use super::Part;
use crate::{RouteError, Router, StatementKind, Target};

/// What the leading keywords say a statement is, and whether it goes to every shard when it
/// names sharded or reference tables (maintenance commands, GRANT/REVOKE).
fn kind_of_words(words: &[String]) -> (StatementKind, bool) {
    use StatementKind::*;
    let w = |i: usize| words.get(i).map_or("", String::as_str);
    match w(0) {
        "BEGIN" | "START" => (Begin, false),
        "COMMIT" | "END" | "ROLLBACK" | "ABORT" if w(1) == "PREPARED" => (TwoPhase, false),
        "COMMIT" | "END" => (Commit, false),
        "ROLLBACK" | "ABORT" if w(1) == "TO" || w(2) == "TO" => (Savepoint, false),
        "ROLLBACK" | "ABORT" => (Rollback, false),
        "PREPARE" if w(1) == "TRANSACTION" => (TwoPhase, false),
        "SAVEPOINT" | "RELEASE" => (Savepoint, false),
        "VACUUM" | "ANALYZE" | "ANALYSE" | "REINDEX" | "CLUSTER" => (Utility, true),
        "GRANT" | "REVOKE" => (Ddl, true),
        "CREATE" | "ALTER" | "DROP" | "COMMENT" | "TRUNCATE" | "SECURITY" => (Ddl, false),
        "SET" | "SHOW" | "RESET" | "DISCARD" | "LISTEN" | "UNLISTEN" | "NOTIFY" | "DEALLOCATE"
        | "LOAD" | "CHECKPOINT" | "FETCH" | "MOVE" | "CLOSE" | "PREPARE" | "DECLARE" => {
            (Utility, false)
        }
        _ => (Write, false),
    }
}

/// True for the transaction-control kinds (the proxy decides where they go).
pub(crate) fn is_transaction_control(kind: StatementKind) -> bool {
    use StatementKind::*;
    matches!(kind, Begin | Commit | Rollback | Savepoint | TwoPhase)
}

/// The rule for a statement the router does not analyse: if none of its words names a sharded
/// or reference table it goes to the default shard; maintenance commands (and GRANT/REVOKE)
/// naming them go to every shard; anything else naming them is refused.
pub(crate) fn token_rule(
    router: &Router,
    tokens: &[TokenWithSpan],
    cause: &str,
) -> Result<Part, RouteError> {
    let words = leading_words(tokens, 3);
    let (kind, everywhere) = kind_of_words(&words);
    if is_transaction_control(kind) {
        return Ok(Part::fixed(
            kind,
            Target::Default,
            "transaction control".to_owned(),
        ));
    }
    let named = named_tables(router, tokens);
    let command = words.first().map_or("statement", String::as_str);
    if named.is_empty() {
        return Ok(Part::fixed(
            kind,
            Target::Default,
            format!("{command} naming no sharded or reference table -> default shard"),
        ));
    }
    if everywhere {
        return Ok(Part::fixed(
            kind,
            Target::All,
            format!("{command} of {} -> all shards", named.join(", ")),
        ));
    }
    let described: Vec<String> = named
        .iter()
        .map(|n| super::names::describe_table(router, n))
        .collect();
    Err(RouteError::new(
        "0A000",
        format!(
            "cannot route this {command} statement: it names {} and {cause}",
            described.join(", ")
        ),
    ))
}

/// DDL on these tables: every shard when one of them is sharded or reference.
pub(crate) fn ddl_on(router: &Router, tables: &[TableName], what: &str) -> Part {
    let distributed: Vec<&str> = tables
        .iter()
        .filter(|t| classify(router, t) != TableClass::DefaultOnly)
        .map(|t| t.name.as_str())
        .collect();
    if distributed.is_empty() {
        let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        Part::fixed(
            StatementKind::Ddl,
            Target::Default,
            format!("{what} {} -> default shard", names.join(", ")),
        )
    } else {
        Part::fixed(
            StatementKind::Ddl,
            Target::All,
            format!("{what} {} -> all shards", distributed.join(", ")),
        )
    }
}

/// Table names of sqlparser object names (names with function parts are skipped).
pub(crate) fn table_names<'a>(names: impl IntoIterator<Item = &'a ObjectName>) -> Vec<TableName> {
    names
        .into_iter()
        .filter_map(TableName::from_object)
        .collect()
}

/// `DROP ...`.
pub(crate) fn drop(
    router: &Router,
    object_type: ObjectType,
    names: &[ObjectName],
    if_exists: bool,
) -> Result<Part, RouteError> {
    match object_type {
        ObjectType::Table => Ok(ddl_on(router, &table_names(names), "DROP TABLE")),
        // An index name does not say which table it belongs to (no catalog here).
        ObjectType::Index if router.tables().is_empty() => Ok(Part::fixed(
            StatementKind::Ddl,
            Target::Default,
            "DROP INDEX -> default shard".to_owned(),
        )),
        ObjectType::Index if if_exists => Ok(Part::fixed(
            StatementKind::Ddl,
            Target::All,
            "DROP INDEX IF EXISTS -> all shards".to_owned(),
        )),
        ObjectType::Index => Err(RouteError::new(
            "0A000",
            "DROP INDEX does not say which table the index belongs to, so the router cannot \
             tell whether it exists on every shard: use DROP INDEX IF EXISTS to drop it on \
             every shard",
        )),
        other => Ok(Part::fixed(
            StatementKind::Ddl,
            Target::Default,
            format!("DROP {other} -> default shard"),
        )),
    }
}

/// `COMMENT ON TABLE t` / `COMMENT ON COLUMN t.c`.
pub(crate) fn comment(router: &Router, object: &CommentObject, name: &ObjectName) -> Part {
    let table = match object {
        CommentObject::Table => TableName::from_object(name),
        CommentObject::Column => {
            let mut parts = name.0.clone();
            parts.pop();
            TableName::from_object(&ObjectName(parts))
        }
        _ => None,
    };
    match table {
        Some(table) => ddl_on(router, &[table], "COMMENT ON"),
        None => Part::fixed(
            StatementKind::Ddl,
            Target::Default,
            "COMMENT -> default shard".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn leading_keywords() {
        use StatementKind::*;
        assert_eq!(kind_of_words(&words("COMMIT PREPARED")), (TwoPhase, false));
        assert_eq!(kind_of_words(&words("ROLLBACK TO x")), (Savepoint, false));
        assert_eq!(
            kind_of_words(&words("ROLLBACK WORK TO")),
            (Savepoint, false)
        );
        assert_eq!(kind_of_words(&words("ABORT")), (Rollback, false));
        assert_eq!(
            kind_of_words(&words("PREPARE TRANSACTION")),
            (TwoPhase, false)
        );
        assert_eq!(
            kind_of_words(&words("VACUUM ANALYZE users")),
            (Utility, true)
        );
        assert_eq!(kind_of_words(&words("DO")), (Write, false));
        assert_eq!(kind_of_words(&words("RESET ALL")), (Utility, false));
    }
}
