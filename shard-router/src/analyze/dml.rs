//! INSERT, UPDATE and DELETE: the written table decides the target (a sharded table by its key
//! values, a reference table everywhere, an unlisted table the default shard), and the tables
//! the statement reads must be compatible with it.

use sqlparser::ast::{
    Assignment, AssignmentTarget, Delete, Expr, FromTable, Insert, ObjectName, OnConflictAction,
    OnInsert, SelectItem, SetExpr, TableAlias, TableFactor, TableObject, TableWithJoins,
    UpdateTableFromKind,
};

use super::analyzer::{Analyzer, Scope};
use super::exprs::ExprScan;
use super::from::only_fixed;
use super::level::Level;
use super::names::{classify, describe_table, fold, TableClass, TableName};
use super::predicate::{key_source, KeySrc};
use super::query::Role;
use super::Part;
use crate::keys::{self, KeyContext, KeyError};
use crate::placement::show_key;
use crate::plan::{null_key_error, InsertRoute, KeyRoute, Route, RowKey};
use crate::{RouteError, StatementKind, Target};

impl<'q> Analyzer<'_, 'q> {
    /// `UPDATE t SET ... [FROM ...] [WHERE ...] [RETURNING ...]`.
    pub(crate) fn update(
        &mut self,
        table: &'q TableWithJoins,
        assignments: &'q [Assignment],
        from: Option<&'q UpdateTableFromKind>,
        selection: Option<&'q Expr>,
        returning: Option<&'q [SelectItem]>,
    ) -> Result<Part, RouteError> {
        if !table.joins.is_empty() {
            return Err(unsupported("UPDATE of a join"));
        }
        let (target, alias) = write_target(&table.relation)?;
        let mut scope = Scope {
            parent: None,
            sources: Vec::new(),
        };
        let mut level = Level::new();
        let class = classify(self.router, &target);
        self.base_table(&target, alias, &mut scope, &mut level);
        if let Some(UpdateTableFromKind::BeforeSet(items) | UpdateTableFromKind::AfterSet(items)) =
            from
        {
            for item in items {
                self.join_tree(item, &mut scope, &mut level)?;
            }
        }
        for assignment in assignments {
            let columns: Vec<&ObjectName> = match &assignment.target {
                AssignmentTarget::ColumnName(name) => vec![name],
                AssignmentTarget::Tuple(names) => names.iter().collect(),
            };
            if let TableClass::Sharded { key, .. } = &class {
                refuse_key_update(&target.name, key, &columns)?;
            }
            self.expr_members(&assignment.value, &scope, &mut level)?;
        }
        if let Some(selection) = selection {
            self.where_clause(selection, &scope, &mut level)?;
        }
        self.returning(returning, &scope, &mut level)?;
        let finished = self.finish(level)?;
        self.write_part(&target, &class, finished.keys, "UPDATE")
    }

    /// `DELETE FROM t [USING ...] [WHERE ...] [RETURNING ...]`.
    pub(crate) fn delete(&mut self, delete: &'q Delete) -> Result<Part, RouteError> {
        if !delete.tables.is_empty() || !delete.order_by.is_empty() || delete.limit.is_some() {
            return Err(unsupported("DELETE with ORDER BY, LIMIT or several tables"));
        }
        let (FromTable::WithFromKeyword(items) | FromTable::WithoutKeyword(items)) = &delete.from;
        let [item] = items.as_slice() else {
            return Err(unsupported("DELETE from several tables"));
        };
        if !item.joins.is_empty() {
            return Err(unsupported("DELETE from a join"));
        }
        let (target, alias) = write_target(&item.relation)?;
        let mut scope = Scope {
            parent: None,
            sources: Vec::new(),
        };
        let mut level = Level::new();
        let class = classify(self.router, &target);
        self.base_table(&target, alias, &mut scope, &mut level);
        for item in delete.using.iter().flatten() {
            self.join_tree(item, &mut scope, &mut level)?;
        }
        if let Some(selection) = &delete.selection {
            self.where_clause(selection, &scope, &mut level)?;
        }
        self.returning(delete.returning.as_deref(), &scope, &mut level)?;
        let finished = self.finish(level)?;
        self.write_part(&target, &class, finished.keys, "DELETE")
    }

    /// `INSERT INTO t [(cols)] VALUES ... | SELECT ...`.
    pub(crate) fn insert(&mut self, insert: &'q Insert) -> Result<Part, RouteError> {
        let TableObject::TableName(name) = &insert.table else {
            return Err(unsupported("INSERT INTO a table function"));
        };
        let table = TableName::from_object(name)
            .ok_or_else(|| unsupported("INSERT into this kind of name"))?;
        let class = self.note_table(&table);
        let mysql_forms = !insert.assignments.is_empty()
            || insert.replace_into
            || insert.ignore
            || insert.or.is_some()
            || matches!(insert.on, Some(OnInsert::DuplicateKeyUpdate(_)));
        if mysql_forms && class != TableClass::DefaultOnly {
            return Err(unsupported("this INSERT form"));
        }
        let scope = Scope {
            parent: None,
            sources: Vec::new(),
        };
        let mut level = Level::new();
        let mut extra = ExprScan::default();
        if let Some(OnInsert::OnConflict(conflict)) = &insert.on {
            if let OnConflictAction::DoUpdate(update) = &conflict.action {
                for assignment in &update.assignments {
                    if let TableClass::Sharded { key, .. } = &class {
                        let columns: Vec<&ObjectName> = match &assignment.target {
                            AssignmentTarget::ColumnName(name) => vec![name],
                            AssignmentTarget::Tuple(names) => names.iter().collect(),
                        };
                        refuse_key_update(&table.name, key, &columns)?;
                    }
                    extra.expr(&assignment.value);
                }
                extra.exprs(update.selection.iter());
            }
        }
        for item in insert.returning.iter().flatten() {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                extra.expr(e);
            }
        }
        self.absorb(&extra);
        for sub in extra.subqueries {
            self.subquery_member(sub, &scope, &mut level)?;
        }
        match class {
            TableClass::Sharded { map, key } => {
                self.insert_sharded(insert, &table.name, map, &key, &scope, level)
            }
            other => {
                if let Some(source) = &insert.source {
                    self.query(source, None, Role::Top)?;
                }
                self.finish(level)?;
                self.write_part(&table, &other, crate::plan::Keys::Any, "INSERT")
            }
        }
    }

    fn insert_sharded(
        &mut self,
        insert: &'q Insert,
        table: &str,
        map: usize,
        key: &str,
        scope: &Scope<'_>,
        mut level: Level,
    ) -> Result<Part, RouteError> {
        let Some(source) = &insert.source else {
            return Err(null_key_error(table, key, 0, "DEFAULT"));
        };
        if insert.columns.is_empty() {
            return Err(RouteError::new(
                "0A000",
                format!(
                    "name the columns of an INSERT into sharded table {table}: without a column \
                     list the router cannot find the shard key column \"{key}\""
                ),
            ));
        }
        let Some(index) = insert.columns.iter().position(|c| fold(c) == key) else {
            return Err(RouteError::new(
                "23502",
                format!(
                    "null value in shard key column \"{key}\" of sharded table \"{table}\": the \
                     INSERT does not give it a value (add it to the column list)"
                ),
            ));
        };
        if source.with.is_some() {
            return Err(unsupported("WITH ... INSERT into a sharded table"));
        }
        let values = match source.body.as_ref() {
            SetExpr::Values(values)
                if source.order_by.is_none()
                    && source.limit_clause.is_none()
                    && source.fetch.is_none() =>
            {
                values
            }
            _ => return self.insert_select(source, table, map, key, index, level),
        };
        let shard_map = self.map(map)?;
        let mut rows = Vec::with_capacity(values.rows.len());
        let mut first_how = None;
        let mut scan = ExprScan::default();
        for (n, row) in values.rows.iter().enumerate() {
            let expr = row.get(index).ok_or_else(|| {
                RouteError::new("42601", "INSERT has more target columns than expressions")
            })?;
            scan.exprs(row.iter());
            let row_key = match key_source(expr)? {
                Some(KeySrc::Literal {
                    text,
                    is_string,
                    cast,
                }) => {
                    let value = keys::literal_key(
                        KeyContext::Assign,
                        shard_map.key_type(),
                        &text,
                        is_string,
                        cast.as_deref(),
                    )
                    .map_err(|e| match e {
                        KeyError::Null => null_key_error(table, key, n, "NULL"),
                        other => other.to_route_error(table, key),
                    })?;
                    let (how, shard) = shard_map.explain(&value).map_err(|e| {
                        RouteError::new(
                            e.sqlstate(),
                            format!("{table}.{key} = {}: {e}", show_key(&value)),
                        )
                    })?;
                    if n == 0 {
                        first_how = Some(how);
                    }
                    RowKey::Fixed {
                        shard,
                        shown: show_key(&value),
                    }
                }
                Some(KeySrc::Null) => return Err(null_key_error(table, key, n, "NULL")),
                Some(KeySrc::Default) => return Err(null_key_error(table, key, n, "DEFAULT")),
                Some(KeySrc::Param { index, cast }) => RowKey::Param { index, cast },
                None => {
                    return Err(RouteError::new(
                        "0A000",
                        format!(
                            "row {} of the INSERT into sharded table {table}: the shard key \
                             \"{key}\" must be a constant or a parameter, not {expr}",
                            n + 1
                        ),
                    ))
                }
            };
            rows.push(row_key);
        }
        self.absorb(&scan);
        for sub in scan.subqueries {
            self.subquery_member(sub, scope, &mut level)?;
        }
        let finished = self.finish(level)?;
        if let Some(&occ) = finished.anchors.first() {
            return Err(RouteError::new(
                "0A000",
                format!(
                    "an INSERT into sharded table {table} cannot read sharded table {} in a \
                     subquery",
                    self.table_of(occ)
                ),
            ));
        }
        self.refuse_default_only(table)?;
        let mut fixed = rows.iter().map(|r| match r {
            RowKey::Fixed { shard, .. } => Some(*shard),
            RowKey::Param { .. } => None,
        });
        let first = fixed.next().flatten();
        let same = first.is_some() && fixed.all(|s| s == first);
        if let (true, Some(shard)) = (same, first) {
            let name = self
                .router
                .shard_names()
                .get(shard)
                .map_or("?", String::as_str);
            let reason = match (rows.as_slice(), first_how) {
                ([RowKey::Fixed { shown, .. }], Some(how)) => {
                    format!("{table}.{key} = {shown} -> {name} ({how})")
                }
                _ => format!("{} rows of {table} -> {name}", rows.len()),
            };
            return Ok(Part::fixed(
                StatementKind::Write,
                Target::Shards(vec![shard]),
                reason,
            ));
        }
        Ok(Part {
            kind: StatementKind::Write,
            route: Route::Insert(InsertRoute {
                table: table.to_owned(),
                column: key.to_owned(),
                map,
                rows,
                split: Err("the statement text could not be prepared for splitting".to_owned()),
            }),
            copy_in: None,
            merge: None,
        })
    }

    /// `INSERT INTO sharded (...) SELECT ...`: each shard can run it on its own rows only when
    /// the selected key comes straight from a co-located table (the same map).
    fn insert_select(
        &mut self,
        source: &'q sqlparser::ast::Query,
        table: &str,
        map: usize,
        key: &str,
        index: usize,
        level: Level,
    ) -> Result<Part, RouteError> {
        let rel = self.query(source, None, Role::Top)?;
        self.finish(level)?;
        self.refuse_default_only(table)?;
        let co_located = rel.cols_complete
            && rel.cols.get(index).is_some_and(|c| {
                !c.occs.is_empty() && c.occs.iter().all(|&o| self.map_of(o) == map)
            })
            && rel.merge.is_none()
            && !rel.repeats;
        if !co_located {
            return Err(RouteError::new(
                "0A000",
                format!(
                    "INSERT ... SELECT into sharded table {table} is only supported when the \
                     SELECT takes the shard key \"{key}\" straight from a table on the same shard \
                     map and needs no merge across shards"
                ),
            ));
        }
        Ok(Part {
            kind: StatementKind::Write,
            route: Route::Keyed(KeyRoute {
                keys: rel.keys,
                subject: format!("INSERT INTO {table} ... SELECT"),
            }),
            copy_in: None,
            merge: None,
        })
    }

    fn returning(
        &mut self,
        items: Option<&'q [SelectItem]>,
        scope: &Scope<'_>,
        level: &mut Level,
    ) -> Result<(), RouteError> {
        for item in items.into_iter().flatten() {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                self.expr_members(e, scope, level)?;
            }
        }
        Ok(())
    }

    /// The part for a write to `target` given the keys that restrict the written rows.
    pub(crate) fn write_part(
        &self,
        target: &TableName,
        class: &TableClass,
        keys: crate::plan::Keys,
        verb: &str,
    ) -> Result<Part, RouteError> {
        let name = &target.name;
        match class {
            TableClass::Sharded { .. } => {
                self.refuse_default_only(name)?;
                Ok(Part {
                    kind: StatementKind::Write,
                    route: Route::Keyed(KeyRoute {
                        keys,
                        subject: format!("{verb} {name}"),
                    }),
                    copy_in: None,
                    merge: None,
                })
            }
            TableClass::Reference => {
                if let Some(other) = self.sharded.first() {
                    return Err(RouteError::new(
                        "0A000",
                        format!(
                            "a write to reference table {name} cannot read sharded table {other}: \
                             every shard would write different rows"
                        ),
                    ));
                }
                if let Some(other) = self.default_only.first() {
                    return Err(RouteError::new(
                        "0A000",
                        format!(
                            "a write to reference table {name} cannot read table {other}, which \
                             is not in [tables] and lives only on the default shard"
                        ),
                    ));
                }
                Ok(Part::fixed(
                    StatementKind::Write,
                    Target::ReferenceWrite,
                    format!("{verb} of reference table {name} -> all shards"),
                ))
            }
            TableClass::DefaultOnly => {
                if let Some(other) = self.sharded.first() {
                    return Err(self.mixed_error(other, name));
                }
                Ok(Part::fixed(
                    StatementKind::Write,
                    Target::Default,
                    format!("{verb} of {name} (not a sharded or reference table) -> default shard"),
                ))
            }
        }
    }

    /// Errors when the statement also uses a table that lives only on the default shard.
    pub(crate) fn refuse_default_only(&self, sharded: &str) -> Result<(), RouteError> {
        match self.default_only.first() {
            Some(other) => Err(self.mixed_error(sharded, other)),
            None => Ok(()),
        }
    }

    /// A sharded table and a default-shard-only table in one statement.
    pub(crate) fn mixed_error(&self, sharded: &str, other: &str) -> RouteError {
        RouteError::new(
            "0A000",
            format!(
                "{} and table {other} cannot be used in one statement: {other} is not in \
                 [tables], so it lives only on the default shard",
                describe_table(self.router, sharded)
            ),
        )
    }
}

/// The table an UPDATE or DELETE writes.
fn write_target(factor: &TableFactor) -> Result<(TableName, Option<&TableAlias>), RouteError> {
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = factor
    else {
        return Err(unsupported("a write to something other than a table"));
    };
    if let Some(table) = only_fixed(name, alias) {
        return Ok((table, None));
    }
    let table = TableName::from_object(name).ok_or_else(|| unsupported("this table name"))?;
    Ok((table, alias.as_ref()))
}

/// Refuses assignments to the shard key column.
fn refuse_key_update(table: &str, key: &str, columns: &[&ObjectName]) -> Result<(), RouteError> {
    for column in columns {
        let name = column.0.last().and_then(|p| p.as_ident()).map(fold);
        if name.as_deref() == Some(key) {
            return Err(RouteError::new(
                "0A000",
                format!(
                    "updating the shard key column \"{key}\" of sharded table \"{table}\" is not \
                     supported (it would move the row to another shard); delete the row and \
                     insert it again"
                ),
            ));
        }
    }
    Ok(())
}

fn unsupported(what: &str) -> RouteError {
    RouteError::new(
        "0A000",
        format!("{what} is not supported by the sharding router"),
    )
}
