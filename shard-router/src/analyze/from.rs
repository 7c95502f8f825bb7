//! FROM clauses: tables, CTE references, derived tables, table functions and joins, turned
//! into the sources column references resolve against and the sharded parts of a query level.

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, JoinConstraint, JoinOperator, TableAlias, TableFactor,
    TableWithJoins,
};

use super::analyzer::{Analyzer, Member, OutCol, Rel, Scope, Source};
use super::exprs::ExprScan;
use super::level::Level;
use super::names::{fold, TableClass, TableName};
use super::predicate::conjuncts;
use super::query::{rename, Role};
use crate::plan::Keys;
use crate::RouteError;

impl<'q> Analyzer<'_, 'q> {
    /// A FROM item with its joins.
    pub(crate) fn join_tree(
        &mut self,
        item: &'q TableWithJoins,
        scope: &mut Scope<'_>,
        level: &mut Level,
    ) -> Result<(), RouteError> {
        let start = scope.sources.len();
        self.factor(&item.relation, scope, level)?;
        for join in &item.joins {
            let split = scope.sources.len();
            self.factor(&join.relation, scope, level)?;
            let end = scope.sources.len();
            let (left, right) = (level.sharded_in(start..split), level.sharded_in(split..end));
            let (outer, constraint) = match &join.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::CrossJoin(c)
                | JoinOperator::StraightJoin(c) => (Outer::No, Some(c)),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (Outer::Left, Some(c)),
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (Outer::Right, Some(c)),
                JoinOperator::FullOuter(c) => (Outer::Full, Some(c)),
                _ if left || right => {
                    return Err(RouteError::new(
                        "0A000",
                        "this kind of join is not supported on sharded tables",
                    ))
                }
                _ => (Outer::No, None),
            };
            match outer {
                Outer::Left => {
                    level.mark_nullable(split..end);
                    level.repeats |= !left && right;
                }
                Outer::Right => {
                    level.mark_nullable(start..split);
                    level.repeats |= left && !right;
                }
                Outer::Full => {
                    level.mark_nullable(start..end);
                    level.repeats |= left != right;
                }
                Outer::No => {}
            }
            match constraint {
                Some(JoinConstraint::On(on)) => {
                    for c in conjuncts(on) {
                        level.correlated |= self.equality(c, scope)?;
                    }
                    if outer == Outer::No {
                        let keys = self.keys_of(on, scope)?;
                        level.join_keys.push((keys, start..end));
                    }
                    self.expr_members(on, scope, level)?;
                }
                Some(JoinConstraint::Using(columns)) => {
                    for column in columns {
                        let Some(name) = column.0.last().and_then(|p| p.as_ident()).map(fold)
                        else {
                            continue;
                        };
                        let l = scope
                            .sources
                            .get(start..split)
                            .and_then(|s| Scope::key_among(s, &name));
                        let r = scope
                            .sources
                            .get(split..end)
                            .and_then(|s| Scope::key_among(s, &name));
                        if let (Some(l), Some(r)) = (l, r) {
                            if let Some(&first) = l.first() {
                                for &x in l.iter().chain(r.iter()) {
                                    self.union(first, x)?;
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn factor(
        &mut self,
        factor: &'q TableFactor,
        scope: &mut Scope<'_>,
        level: &mut Level,
    ) -> Result<(), RouteError> {
        match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                if let Some(args) = args {
                    // A set-returning function: `FROM generate_series(1, 10)`.
                    let mut scan = ExprScan::default();
                    scan.call(name);
                    scan.exprs(args.args.iter().filter_map(arg_expr));
                    self.absorb(&scan);
                    for sub in scan.subqueries {
                        self.subquery_member(sub, scope, level)?;
                    }
                    let fallback = TableName::from_object(name).map(|t| t.name);
                    push_opaque(scope, level, alias_name(alias.as_ref()).or(fallback));
                    return Ok(());
                }
                let (table, alias) = match only_fixed(name, alias) {
                    Some(fixed) => (fixed, None),
                    None => {
                        let Some(table) = TableName::from_object(name) else {
                            push_opaque(scope, level, alias_name(alias.as_ref()));
                            return Ok(());
                        };
                        (table, alias.as_ref())
                    }
                };
                if table.schema.is_none() {
                    if let Some(index) = self.find_cte(&table.name) {
                        self.seen.push(table.name.clone());
                        let rel = self.cte_rel(index)?;
                        let name = alias.map_or_else(|| table.name.clone(), |a| fold(&a.name));
                        self.derived_source(rel, name, alias, scope, level);
                        return Ok(());
                    }
                }
                self.base_table(&table, alias, scope, level);
                Ok(())
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
            } => {
                let rel = if *lateral {
                    let visible = Scope {
                        parent: scope.parent,
                        sources: scope.sources.clone(),
                    };
                    self.query(subquery, Some(&visible), Role::Sub)?
                } else {
                    self.query(subquery, scope.parent, Role::Sub)?
                };
                let name = alias_name(alias.as_ref()).unwrap_or_default();
                self.derived_source(rel, name, alias.as_ref(), scope, level);
                Ok(())
            }
            TableFactor::Function {
                name, args, alias, ..
            } => {
                let mut scan = ExprScan::default();
                scan.call(name);
                scan.exprs(args.iter().filter_map(arg_expr));
                self.table_function(scan, alias.as_ref(), scope, level)
            }
            TableFactor::TableFunction { expr, alias } => {
                let mut scan = ExprScan::default();
                scan.expr(expr);
                self.table_function(scan, alias.as_ref(), scope, level)
            }
            TableFactor::UNNEST {
                alias, array_exprs, ..
            } => {
                let mut scan = ExprScan::default();
                scan.exprs(array_exprs);
                self.table_function(scan, alias.as_ref(), scope, level)
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.join_tree(table_with_joins, scope, level),
            other => {
                if super::exprs::contains_query(other) {
                    self.opaque = true;
                }
                push_opaque(scope, level, None);
                Ok(())
            }
        }
    }

    /// A table (not a CTE) in FROM.
    pub(crate) fn base_table(
        &mut self,
        table: &TableName,
        alias: Option<&TableAlias>,
        scope: &mut Scope<'_>,
        level: &mut Level,
    ) {
        let class = self.note_table(table);
        let name = alias.map_or_else(|| table.name.clone(), |a| fold(&a.name));
        let mut cols = Vec::new();
        if let TableClass::Sharded { map, key } = class {
            let occ = self.new_occ(&table.name, map, &key);
            // `t AS a(x, y)` renames columns by position, which we do not know.
            if alias.is_none_or(|a| a.columns.is_empty()) {
                cols.push(OutCol {
                    name: Some(key),
                    occs: vec![occ],
                });
            }
            level.members.push(Member {
                anchors: vec![occ],
                keys: Keys::Any,
                source: Some(scope.sources.len()),
                derived: false,
            });
        }
        scope.sources.push(Source { name, cols });
        level.nullable.push(false);
    }

    fn derived_source(
        &mut self,
        mut rel: Rel,
        name: String,
        alias: Option<&TableAlias>,
        scope: &mut Scope<'_>,
        level: &mut Level,
    ) {
        if let Some(alias) = alias {
            let columns: Vec<String> = alias.columns.iter().map(|c| fold(&c.name)).collect();
            rename(&mut rel, &columns);
        }
        level.repeats |= rel.repeats;
        if rel.sharded() {
            level.members.push(Member {
                anchors: rel.anchors,
                keys: rel.keys,
                source: Some(scope.sources.len()),
                derived: true,
            });
        }
        scope.sources.push(Source {
            name,
            cols: rel.cols,
        });
        level.nullable.push(false);
    }

    fn table_function(
        &mut self,
        scan: ExprScan<'q>,
        alias: Option<&TableAlias>,
        scope: &mut Scope<'_>,
        level: &mut Level,
    ) -> Result<(), RouteError> {
        self.absorb(&scan);
        for sub in scan.subqueries {
            self.subquery_member(sub, scope, level)?;
        }
        push_opaque(scope, level, alias_name(alias));
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outer {
    No,
    Left,
    Right,
    Full,
}

fn alias_name(alias: Option<&TableAlias>) -> Option<String> {
    alias.map(|a| fold(&a.name))
}

fn push_opaque(scope: &mut Scope<'_>, level: &mut Level, name: Option<String>) {
    scope.sources.push(Source {
        name: name.unwrap_or_default(),
        cols: Vec::new(),
    });
    level.nullable.push(false);
}

fn arg_expr(arg: &FunctionArg) -> Option<&Expr> {
    let (FunctionArg::Named { arg, .. }
    | FunctionArg::ExprNamed { arg, .. }
    | FunctionArg::Unnamed(arg)) = arg;
    match arg {
        FunctionArgExpr::Expr(e) => Some(e),
        _ => None,
    }
}

/// sqlparser reads `FROM ONLY users` as a table named `only` aliased `users`: undo that.
pub(crate) fn only_fixed(
    name: &sqlparser::ast::ObjectName,
    alias: &Option<TableAlias>,
) -> Option<TableName> {
    let [part] = name.0.as_slice() else {
        return None;
    };
    let ident = part.as_ident()?;
    let alias = alias.as_ref()?;
    (ident.quote_style.is_none()
        && ident.value.eq_ignore_ascii_case("only")
        && alias.columns.is_empty())
    .then(|| TableName {
        name: fold(&alias.name),
        schema: None,
    })
}
