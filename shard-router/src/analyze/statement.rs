//! One parsed SQL statement: dispatch by statement type to the query, DML, COPY, DDL and utility
//! analyses, and the checks that keep the router from routing what it did not fully see.

use sqlparser::ast::{CopySource, CopyTarget, Statement as SqlStatement, Visit};

use super::analyzer::{Analyzer, Rel};
use super::names::{self, classify, TableClass};
use super::query::{self, RelationNames, Role};
use super::{copy_stmt, utility, Part};
use crate::plan::{KeyRoute, Route};
use crate::{RouteError, Router, StatementKind, Target};

/// Analyses one parsed statement.
pub(crate) fn analyze_statement(
    router: &Router,
    stmt: &SqlStatement,
    piece: &names::Piece<'_, '_>,
) -> Result<Part, RouteError> {
    use StatementKind as K;
    let utility = |reason: &str| Part::fixed(K::Utility, Target::Default, reason.to_owned());
    let part = match stmt {
        SqlStatement::Query(q) => {
            let mut an = Analyzer::new(router);
            let rel = an.query(q, None, Role::Top)?;
            check_relations(&an, q.as_ref())?;
            read_part(&an, rel, K::Read)?
        }
        SqlStatement::Insert(insert) => {
            let mut an = Analyzer::new(router);
            let part = an.insert(insert)?;
            check_relations(&an, stmt)?;
            part
        }
        SqlStatement::Update {
            table,
            assignments,
            from,
            selection,
            returning,
            ..
        } => {
            let mut an = Analyzer::new(router);
            let part = an.update(
                table,
                assignments,
                from.as_ref(),
                selection.as_ref(),
                returning.as_deref(),
            )?;
            check_relations(&an, stmt)?;
            part
        }
        SqlStatement::Delete(delete) => {
            let mut an = Analyzer::new(router);
            let part = an.delete(delete)?;
            check_relations(&an, stmt)?;
            part
        }
        SqlStatement::Copy {
            source: CopySource::Query(q),
            to: true,
            target,
            options,
            legacy_options,
            ..
        } => {
            let mut an = Analyzer::new(router);
            let rel = an.query(q, None, Role::Top)?;
            check_relations(&an, q.as_ref())?;
            let mut part = read_part(&an, rel, K::CopyOut)?;
            if !matches!(target, CopyTarget::Stdout) {
                if let Some(name) = an.sharded.first().or(an.reference.first()) {
                    return Err(RouteError::new(
                        "0A000",
                        format!(
                            "COPY TO a file or program on the database server cannot be used \
                             with {}: use COPY ... TO STDOUT",
                            names::describe_table(router, name)
                        ),
                    ));
                }
                part.kind = K::Read;
            }
            if copy_stmt::query_copy_framing(options, legacy_options) {
                part.merge = part.merge.or(Some(
                    "COPY TO STDOUT with a header line or in binary format",
                ));
            }
            part
        }
        SqlStatement::StartTransaction { .. } => transaction(K::Begin),
        SqlStatement::Commit { .. } => transaction(K::Commit),
        SqlStatement::Rollback {
            savepoint: Some(_), ..
        }
        | SqlStatement::Savepoint { .. }
        | SqlStatement::ReleaseSavepoint { .. } => transaction(K::Savepoint),
        SqlStatement::Rollback { .. } => transaction(K::Rollback),
        SqlStatement::Set(_)
        | SqlStatement::ShowVariable { .. }
        | SqlStatement::ShowVariables { .. }
        | SqlStatement::ShowStatus { .. }
        | SqlStatement::Discard { .. }
        | SqlStatement::LISTEN { .. }
        | SqlStatement::UNLISTEN { .. }
        | SqlStatement::NOTIFY { .. }
        | SqlStatement::Deallocate { .. }
        | SqlStatement::Fetch { .. }
        | SqlStatement::Close { .. } => utility("session or utility command -> default shard"),
        SqlStatement::Execute { .. } => Part::fixed(
            K::Write,
            Target::Default,
            "EXECUTE of a prepared statement -> default shard".to_owned(),
        ),
        SqlStatement::Prepare {
            statement: inner, ..
        } => {
            let inner = analyze_statement(router, inner, piece)?;
            if !matches!(
                inner.route,
                Route::Fixed {
                    target: Target::Default,
                    ..
                }
            ) {
                return Err(RouteError::new(
                    "0A000",
                    "PREPARE of a statement on sharded or reference tables is not supported: \
                     use the extended protocol (Parse/Bind) instead",
                ));
            }
            utility("PREPARE -> default shard")
        }
        SqlStatement::Declare { stmts } => {
            for declare in stmts.iter() {
                if let Some(q) = &declare.for_query {
                    let mut an = Analyzer::new(router);
                    let rel = an.query(q, None, Role::Top)?;
                    check_relations(&an, q.as_ref())?;
                    let inner = read_part(&an, rel, K::Read)?;
                    if !matches!(
                        inner.route,
                        Route::Fixed {
                            target: Target::Default,
                            ..
                        }
                    ) {
                        return Err(RouteError::new(
                            "0A000",
                            "a cursor over sharded or reference tables is not supported",
                        ));
                    }
                }
            }
            utility("DECLARE -> default shard")
        }
        SqlStatement::Explain {
            statement: inner,
            analyze,
            ..
        } => {
            let mut inner = analyze_statement(router, inner, piece)?;
            if !*analyze && matches!(inner.kind, K::Write | K::CopyIn | K::CopyOut) {
                inner.kind = K::Read;
            }
            if let Route::Insert(route) = &mut inner.route {
                route.split = Err("EXPLAIN output cannot be split by shard".to_owned());
            }
            inner.copy_in = None;
            inner.merge = inner.merge.or(Some("EXPLAIN output"));
            inner
        }
        SqlStatement::CreateTable(create) => {
            let table = names::TableName::from_object(&create.name)
                .ok_or_else(|| RouteError::new("0A000", "unsupported table name"))?;
            match &create.query {
                Some(q) => create_table_as(router, &table, q)?,
                None => utility::ddl_on(router, &[table], "CREATE TABLE"),
            }
        }
        SqlStatement::AlterTable { name, .. } => {
            utility::ddl_on(router, &utility::table_names([name]), "ALTER TABLE")
        }
        SqlStatement::CreateIndex(index) => utility::ddl_on(
            router,
            &utility::table_names([&index.table_name]),
            "CREATE INDEX",
        ),
        SqlStatement::Drop {
            object_type,
            names,
            if_exists,
            ..
        } => utility::drop(router, *object_type, names, *if_exists)?,
        SqlStatement::Truncate { table_names, .. } => utility::ddl_on(
            router,
            &utility::table_names(table_names.iter().map(|t| &t.name)),
            "TRUNCATE",
        ),
        SqlStatement::Comment {
            object_type,
            object_name,
            ..
        } => utility::comment(router, object_type, object_name),
        SqlStatement::CreateView { query, .. } | SqlStatement::AlterView { query, .. } => {
            let mut an = Analyzer::new(router);
            an.query(query, None, Role::Top)?;
            check_relations(&an, query.as_ref())?;
            if let Some(name) = an.sharded.first().or(an.reference.first()) {
                return Err(RouteError::new(
                    "0A000",
                    format!(
                        "a view over {} is not supported: it would exist on one shard and see \
                         only that shard's rows; query the table instead",
                        names::describe_table(router, name)
                    ),
                ));
            }
            Part::fixed(K::Ddl, Target::Default, "view -> default shard".to_owned())
        }
        SqlStatement::Merge { .. } => {
            let mut names = RelationNames::default();
            let _ = stmt.visit(&mut names);
            for name in &names.0 {
                if classify(router, name) != TableClass::DefaultOnly {
                    return Err(RouteError::new(
                        "0A000",
                        format!(
                            "MERGE on {} is not supported",
                            names::describe_table(router, &name.name)
                        ),
                    ));
                }
            }
            Part::fixed(
                K::Write,
                Target::Default,
                "MERGE -> default shard".to_owned(),
            )
        }
        _ => utility::token_rule(
            router,
            piece.tokens,
            "the router does not analyse this kind of statement",
        )?,
    };
    Ok(part)
}

fn transaction(kind: StatementKind) -> Part {
    Part::fixed(kind, Target::Default, "transaction control".to_owned())
}

/// `CREATE TABLE t AS SELECT ...`: the new table must be able to hold what each shard computes.
fn create_table_as(
    router: &Router,
    table: &names::TableName,
    q: &sqlparser::ast::Query,
) -> Result<Part, RouteError> {
    let mut an = Analyzer::new(router);
    an.query(q, None, Role::Top)?;
    check_relations(&an, q)?;
    let class = classify(router, table);
    let refuse = |why: String| {
        Err(RouteError::new(
            "0A000",
            format!(
                "CREATE TABLE {} AS ... is not supported here: {why}",
                table.name
            ),
        ))
    };
    match class {
        TableClass::Sharded { .. } => {
            refuse("it is a sharded table; create it, then INSERT".into())
        }
        TableClass::Reference if !an.sharded.is_empty() || !an.default_only.is_empty() => {
            refuse("a reference table can only be filled from reference tables or constants".into())
        }
        TableClass::Reference => Ok(Part::fixed(
            StatementKind::Ddl,
            Target::All,
            format!("CREATE TABLE {} AS -> all shards", table.name),
        )),
        TableClass::DefaultOnly => match an.sharded.first() {
            Some(sharded) => Err(an.mixed_error(sharded, &table.name)),
            None => Ok(Part::fixed(
                StatementKind::Ddl,
                Target::Default,
                format!("CREATE TABLE {} AS -> default shard", table.name),
            )),
        },
    }
}

/// The part of a read (SELECT, COPY (SELECT) TO) from its analysis.
fn read_part(an: &Analyzer<'_, '_>, rel: Rel, kind: StatementKind) -> Result<Part, RouteError> {
    if let (Some(sharded), Some(other)) = (an.sharded.first(), an.default_only.first()) {
        return Err(an.mixed_error(sharded, other));
    }
    if an.select_into {
        if let Some(name) = an.sharded.first().or(an.reference.first()) {
            return Err(RouteError::new(
                "0A000",
                format!(
                    "SELECT ... INTO from {} is not supported: the new table would exist on one \
                     shard only",
                    names::describe_table(an.router, name)
                ),
            ));
        }
    }
    let writes = an.writes || an.select_into;
    let kind = if writes && kind == StatementKind::Read {
        StatementKind::Write
    } else {
        kind
    };
    if !an.sharded.is_empty() {
        let merge = if rel.sharded() {
            rel.merge
        } else {
            Some(query::REPEATED_ROWS)
        };
        return Ok(Part {
            kind,
            route: Route::Keyed(KeyRoute {
                keys: rel.keys,
                subject: an.sharded.join(", "),
            }),
            copy_in: None,
            merge,
        });
    }
    let (target, reason) = if let Some(first) = an.default_only.first() {
        (
            Target::Default,
            format!("{first} (not a sharded or reference table) -> default shard"),
        )
    } else if an.reference.is_empty() {
        (
            Target::Default,
            "no sharded or reference table -> default shard".to_owned(),
        )
    } else if writes {
        (
            Target::Default,
            format!(
                "locking read of reference tables {} -> default shard",
                an.reference.join(", ")
            ),
        )
    } else {
        (
            Target::ReferenceRead,
            format!(
                "reference tables {} -> any one shard",
                an.reference.join(", ")
            ),
        )
    };
    Ok(Part::fixed(kind, target, reason))
}

/// Every sharded or reference table sqlparser sees as a relation must have been seen by the
/// analysis too: otherwise it sits somewhere the router does not look, and routing could be
/// wrong.
fn check_relations<T: Visit>(an: &Analyzer<'_, '_>, node: &T) -> Result<(), RouteError> {
    let mut names = RelationNames::default();
    let _ = node.visit(&mut names);
    check_names(an, names)
}

fn check_names(an: &Analyzer<'_, '_>, names: RelationNames) -> Result<(), RouteError> {
    for name in names.0 {
        if classify(an.router, &name) != TableClass::DefaultOnly && !an.seen.contains(&name.name) {
            return Err(RouteError::new(
                "0A000",
                format!(
                    "the router cannot tell how this statement uses {}",
                    names::describe_table(an.router, &name.name)
                ),
            ));
        }
    }
    if an.opaque && (!an.sharded.is_empty() || !an.reference.is_empty()) {
        return Err(RouteError::new(
            "0A000",
            "the router cannot look into part of this statement, which also uses sharded or \
             reference tables",
        ));
    }
    Ok(())
}
